package tier_test

import (
	"fmt"
	"testing"

	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// TestModelStats counts Gets by model: registered models on lines of their
// own (surviving a rollout), plain keys as unscoped, keys of models the
// registry does not know as unregistered; a purged model's line goes away.
func TestModelStats(t *testing.T) {
	h := openHybrid(t, hcfg{dir: t.TempDir(), memMax: 16 << 20})
	defer h.Close()
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v1"), tiertest.Rollout(t, "t5", "a")}, 1); err != nil {
		t.Fatal(err)
	}
	mustSetValue(t, h, "{clip}p1", []byte("x"))
	mustSetValue(t, h, "{clip@v1}p2", []byte("x"))
	mustSetValue(t, h, "plain", []byte("x"))
	mustSetValue(t, h, "{other}q", []byte("x"))
	get := func(keys ...string) {
		for _, k := range keys {
			_, _ = h.Get([]byte(k))
		}
	}
	get("{clip}p1", "{clip@v1}p2", "{clip}nope", "{clip@v0}p2", // 2 hits, 2 misses (one of an old version)
		"{t5}nope",                 // 1 miss
		"plain", "plain", "absent", // 2 hits, 1 miss
		"{other}q", "{other@v9}absent") // unregistered: 1 hit, 1 miss
	want := "clip@v1 2/2, t5@a 0/1; unscoped 2/1, unregistered 1/1"
	if got := summary(h.ModelStats()); got != want {
		t.Errorf("ModelStats = %s, want %s", got, want)
	}

	// A rollout keeps the counts; a purge removes the line.
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v2"), tiertest.Purge(t, "t5")}, 2); err != nil {
		t.Fatal(err)
	}
	get("{clip}p1", "{t5}nope") // clip's entries are gone: a miss; t5 is unregistered now
	want = "clip@v2 2/3; unscoped 2/1, unregistered 1/2"
	if got := summary(h.ModelStats()); got != want {
		t.Errorf("after rollout and purge: ModelStats = %s, want %s", got, want)
	}
	// Lookups made by writes are not counted.
	if _, err := h.SetWith([]byte("{clip}p3"), []byte("y"), tier.SetArgs{Cond: tier.IfAbsent}); err != nil {
		t.Fatal(err)
	}
	if got := summary(h.ModelStats()); got != want {
		t.Errorf("after SET NX: ModelStats = %s, want %s", got, want)
	}
}

func summary(s tier.ModelStats) string {
	out := ""
	for i, m := range s.Models {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s@%s %d/%d", m.Model, m.Version, m.Hits, m.Misses)
	}
	return out + fmt.Sprintf("; unscoped %d/%d, unregistered %d/%d", s.Unscoped.Hits, s.Unscoped.Misses, s.Unregistered.Hits, s.Unregistered.Misses)
}
