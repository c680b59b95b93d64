package tier_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// TestRolloutManyEntries rolls out a model holding a million entries: the
// call returns without scanning, none of the stale entries is served after
// it, other keys are, and L2 gets the space back after compaction.
func TestRolloutManyEntries(t *testing.T) {
	n := 1_000_000
	if raceEnabled || testing.Short() {
		n = 200_000 // the same code path; CI also runs the full size without -race
	}
	dir := t.TempDir()
	h := openHybrid(t, hcfg{dir: dir, memMax: 64 << 20})
	defer h.Close()
	if err := h.ApplyModels([]tier.ModelChange{{Model: "clip", Version: "v1"}}, 1); err != nil {
		t.Fatal(err)
	}
	value := tiertest.Value(nil, 200, 1) // incompressible, like embeddings
	start := time.Now()
	for i := range n {
		if err := h.SetValue([]byte("{clip}prompt-"+strconv.Itoa(i)), value, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1000 {
		mustSetValue(t, h, "plain-"+strconv.Itoa(i), []byte("p"))
		mustSetValue(t, h, "{t5}prompt-"+strconv.Itoa(i), []byte("t"))
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	before := dirSize(t, dir)
	t.Logf("wrote %d entries in %v; L2 %d keys, %d MiB on disk", n, time.Since(start), h.Stats().L2.Keys, before>>20)

	start = time.Now()
	if err := h.ApplyModels([]tier.ModelChange{{Model: "clip", Version: "v2"}}, 2); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("rollout of %d entries returned in %v", n, took)

	for i := 0; i < n; i += max(1, n/20000) {
		k := "{clip}prompt-" + strconv.Itoa(i)
		if _, err := h.Get([]byte(k)); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("%s served after the rollout: %v", k, err)
		}
	}
	for i := range 1000 {
		for _, k := range []string{"plain-" + strconv.Itoa(i), "{t5}prompt-" + strconv.Itoa(i)} {
			if _, err := h.Get([]byte(k)); err != nil {
				t.Fatalf("%s lost by the rollout: %v", k, err)
			}
		}
	}
	waitFor(t, 2*time.Minute, "L2 to reclaim the stale entries' space", func() bool {
		return dirSize(t, dir) < before/2
	})
	waitFor(t, time.Minute, "the L2 key count to drop", func() bool {
		return h.Stats().L2.Keys <= 2000
	})
	t.Logf("after compaction: %d MiB on disk, %d L2 keys", dirSize(t, dir)>>20, h.Stats().L2.Keys)
}
