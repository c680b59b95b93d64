package testutil

import (
	"errors"
	"testing"
	"time"
)

func TestCheckFor(t *testing.T) {
	calls := 0
	CheckFor(t, time.Minute, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("%d calls, want 3", calls)
	}
	n := 0
	WaitFor(t, time.Minute, "the fifth call", func() bool { n++; return n == 5 })
	if n != 5 {
		t.Fatalf("%d calls, want 5", n)
	}
}
