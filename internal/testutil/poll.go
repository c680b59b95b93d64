package testutil

import (
	"errors"
	"testing"
	"time"
)

// maxPause is the longest pause between two checks of CheckFor.
const maxPause = 20 * time.Millisecond

// CheckFor calls f until it returns nil, and fails the test with f's last
// error if total passes first: nats-server's checkFor. The pause between
// calls grows from 1 ms to 20 ms. f may fail the test itself (t.Fatal) when
// waiting longer is pointless.
func CheckFor(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for pause := time.Millisecond; ; pause = min(2*pause, maxPause) {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %v", total, err)
		}
		time.Sleep(pause) // the interval between checks, not a wait for an event
	}
}

// WaitFor is CheckFor for a condition that has no error to tell: it polls
// cond until it holds, and fails the test naming what it waited for if
// total passes first.
func WaitFor(t testing.TB, total time.Duration, what string, cond func() bool) {
	t.Helper()
	notYet := errors.New("waiting for " + what)
	CheckFor(t, total, func() error {
		if cond() {
			return nil
		}
		return notYet
	})
}
