package memtier_test

import (
	"testing"

	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// TestConformance runs the suite every tier passes.
func TestConformance(t *testing.T) {
	tiertest.Run(t, func(t *testing.T, clock tier.Clock) tier.Tier {
		c, err := memtier.New(memtier.Options{MaxBytes: 256 << 20, MaxRecord: 9 << 20, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}
