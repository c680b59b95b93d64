package disktier_test

import (
	"testing"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// TestConformance runs the suite every tier passes.
func TestConformance(t *testing.T) {
	tiertest.Run(t, func(t *testing.T, clock tier.Clock) tier.Tier {
		s, err := disktier.Open(disktier.Options{Dir: t.TempDir(), MaxBytes: 1 << 30, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
