package tier_test

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/race"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// TestRolloutManyEntries rolls out a model holding a million entries: the
// call returns without scanning, none of the stale entries is served after
// it, other keys are, and L2 gets the space back after compaction.
func TestRolloutManyEntries(t *testing.T) {
	n := 1_000_000
	if race.Enabled || testing.Short() {
		n = 200_000 // the same code path; CI also runs the full size without -race
	}
	dir := t.TempDir()
	h := openHybrid(t, hcfg{dir: dir, memMax: 64 << 20})
	defer h.Close()
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v1")}, 1); err != nil {
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
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v2")}, 2); err != nil {
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

// TestFirstRolloutKeepsItsVersion: a model's first rollout to V (the
// registry did not know the model, or had purged it) keeps the {MODEL@V}…
// entries written before it, in L1 and L2 and across a restart; the
// model's other entries from before are neither served nor left on disk.
// Its next change drops them all, and rolling back does not bring them
// back.
func TestFirstRolloutKeepsItsVersion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy tier.WritePolicy
		async  bool // as the NATS follower applies changes
	}{
		{"WriteThrough", tier.WriteThrough, false},
		{"WriteThroughAsync", tier.WriteThrough, true},
		{"WriteBack", tier.WriteBack, false},
		{"WriteBackAsync", tier.WriteBack, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := hcfg{dir: dir, policy: tc.policy, memMax: 8 << 20}
			h := openHybrid(t, cfg)
			apply := func(model, version string, rev uint64) { // version "": a purge
				t.Helper()
				ch := []tier.ModelChange{tiertest.Purge(t, model)}
				if version != "" {
					ch[0] = tiertest.Rollout(t, model, version)
				}
				if tc.async {
					h.ApplyModelsAsync(ch, rev)
					return
				}
				if err := h.ApplyModels(ch, rev); err != nil {
					t.Fatal(err)
				}
			}
			check := func(when string, want map[string][]byte, gone []string) {
				t.Helper()
				for k, v := range want {
					if got, err := getValue(h, k); err != nil || !bytes.Equal(got, v) {
						t.Errorf("%s: %s = %.20q, %v; want %.20q", when, k, got, err, v)
					}
				}
				for _, k := range gone {
					if got, err := getValue(h, k); !errors.Is(err, tier.ErrNotFound) {
						t.Errorf("%s: %s = %.20q, %v; want not found", when, k, got, err)
					}
				}
			}

			// Written while the registry does not know clip. The large
			// value is too large for this L1: it lives in L2 only.
			big := tiertest.Value([]byte("big"), 4<<20, 1)
			before := map[string][]byte{
				"{clip@v1}a": []byte("a1"), "{clip@v1}big": big, "{clip@v1}del": []byte("d"),
				"{clip@v2}b": []byte("b2"), "{clip}c": []byte("c"), "{clip@v1x}d": []byte("d"),
				"{t5@v1}e": []byte("e"), "plain": []byte("p"),
			}
			for k, v := range before {
				mustSetValue(t, h, k, v)
			}
			if err := h.Flush(); err != nil {
				t.Fatal(err)
			}
			apply("clip", "v1", 1)
			kept := map[string][]byte{"{clip@v1}a": []byte("a1"), "{clip@v1}big": big, "{t5@v1}e": []byte("e"), "plain": []byte("p")}
			stale := []string{"{clip@v2}b", "{clip}c", "{clip@v1x}d"}
			check("after the first rollout", kept, stale)
			if err := h.SetValue([]byte("{clip@v2}x"), []byte("x"), 0); err == nil {
				t.Errorf("a write of {clip@v2} accepted after the rollout to v1")
			}
			// A kept entry is deleted where it lives; new entries of both
			// kinds are served.
			if ok, err := h.Remove([]byte("{clip@v1}del")); err != nil || !ok {
				t.Fatalf("DEL {clip@v1}del: %v, %v", ok, err)
			}
			kept["{clip@v1}n"], kept["{clip}u"] = []byte("n"), []byte("u")
			mustSetValue(t, h, "{clip@v1}n", []byte("n"))
			mustSetValue(t, h, "{clip}u", []byte("u"))
			stale = append(stale, "{clip@v1}del")
			check("after writes", kept, stale)
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}

			// L2 holds the kept entries where they were written, under the
			// epoch clip had while unknown (0), and none of the stale ones.
			l2, err := disktier.Open(disktier.Options{Dir: dir, MaxBytes: 4 << 30, Clock: tier.SystemClock{}})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"{clip@v1}a", "{clip@v1}big", "{clip@v1}n"} {
				if _, err := l2.Get(tier.ModelKey("clip", 0, []byte(k))); err != nil {
					t.Errorf("L2 has no %s under epoch 0: %v", k, err)
				}
			}
			for _, k := range []string{"{clip@v2}b", "{clip}c", "{clip@v1x}d", "{clip@v1}del"} {
				if _, err := l2.Get(tier.ModelKey("clip", 0, []byte(k))); !errors.Is(err, tier.ErrNotFound) {
					t.Errorf("L2 still has %s under epoch 0: %v", k, err)
				}
			}
			if err := l2.Close(); err != nil {
				t.Fatal(err)
			}

			h = openHybrid(t, cfg)
			defer func() { h.Close() }()
			check("after a restart", kept, stale)

			// The next change drops them all; rolling back does not bring
			// them back.
			apply("clip", "v2", 2)
			apply("clip", "v1", 3)
			check("after v2 and back to v1", map[string][]byte{"plain": []byte("p")},
				[]string{"{clip@v1}a", "{clip@v1}big", "{clip@v1}n", "{clip}u"})

			// After a purge the next rollout is a first one again.
			apply("clip", "", 4)
			mustSetValue(t, h, "{clip@v3}p", []byte("p3"))
			mustSetValue(t, h, "{clip@v4}q", []byte("q4"))
			apply("clip", "v3", 5)
			check("after a purge and a rollout to v3", map[string][]byte{"{clip@v3}p": []byte("p3")}, []string{"{clip@v4}q", "{clip@v1}a"})
		})
	}
}
