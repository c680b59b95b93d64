package tier_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// send is what goes over the wire from an owner to a requester: a copy of
// the owner's record, which the requester then owns.
func send(t *testing.T, owner *tier.Hybrid, key string) tier.Record {
	t.Helper()
	r, err := owner.PeerGet([]byte(key))
	if err != nil {
		t.Fatalf("PeerGet(%s): %v", key, err)
	}
	return bytes.Clone(r)
}

// fill is a requester's miss of key answered by r: Fill with keep.
func fill(h *tier.Hybrid, key string, r tier.Record) ([]byte, error) {
	got, err := h.Fill([]byte(key), r, h.WriteSeq([]byte(key)), true)
	if err != nil {
		return nil, err
	}
	return got.Value(), nil
}

// TestFleetFencing: a record another cache sends is served only if it was
// stored under the version this cache has for its model now, in both
// orders of a rollout that one cache applied before the other.
func TestFleetFencing(t *testing.T) {
	a := openHybrid(t, hcfg{})
	defer a.Close()
	b := openHybrid(t, hcfg{})
	defer b.Close()
	roll := func(h *tier.Hybrid, version string, rev uint64) {
		t.Helper()
		if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", version)}, rev); err != nil {
			t.Fatal(err)
		}
	}
	roll(a, "v1", 1)
	roll(b, "v1", 1)
	mustSetValue(t, a, "{clip}k", []byte("v1 value"))
	mustSetValue(t, a, "{clip@v1}k", []byte("v1 value"))
	mustSetValue(t, a, "plain", []byte("plain value"))

	// Same version on both: served, and kept as a near copy.
	for _, k := range []string{"{clip}k", "{clip@v1}k", "plain"} {
		if v, err := fill(b, k, send(t, a, k)); err != nil || !bytes.Contains(v, []byte("value")) {
			t.Fatalf("fill %s at the same version: %q, %v", k, v, err)
		}
	}
	if v, err := getValue(b, "{clip}k"); err != nil || string(v) != "v1 value" {
		t.Fatalf("near copy of {clip}k: %q, %v", v, err)
	}

	// The requester applied v2 first: the owner's v1 records are refused.
	r1, r1v := send(t, a, "{clip}k"), send(t, a, "{clip@v1}k")
	roll(b, "v2", 2)
	for k, r := range map[string]tier.Record{"{clip}k": r1, "{clip@v1}k": r1v} {
		if v, err := fill(b, k, r); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("requester at v2 filled %s with a v1 record: %q, %v", k, v, err)
		}
	}
	// The owner applied v2 first: it serves no v1 record, and what it
	// writes under v2 is refused by a requester still at v1.
	c := openHybrid(t, hcfg{})
	defer c.Close()
	roll(c, "v1", 1)
	roll(a, "v2", 2)
	if _, err := a.PeerGet([]byte("{clip}k")); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("owner at v2 answered its v1 record: %v", err)
	}
	mustSetValue(t, a, "{clip}k", []byte("v2 value"))
	if v, err := fill(c, "{clip}k", send(t, a, "{clip}k")); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("requester at v1 filled {clip}k with a v2 record: %q, %v", v, err)
	}
	if v, err := fill(b, "{clip}k", send(t, a, "{clip}k")); err != nil || string(v) != "v2 value" {
		t.Fatalf("requester at v2 filled {clip}k: %q, %v", v, err)
	}
}

// TestFleetFillKeepsNewerWrites: a near copy never replaces a write made
// after the lookup that missed, nor a key L1 holds; an expired record is
// not served.
func TestFleetFillKeepsNewerWrites(t *testing.T) {
	clock := tier.NewManualClock(time.Unix(1000, 0))
	a := openHybrid(t, hcfg{clock: clock})
	defer a.Close()
	b := openHybrid(t, hcfg{clock: clock})
	defer b.Close()
	mustSetValue(t, a, "k", []byte("owner's"))
	r := send(t, a, "k")

	seq := b.WriteSeq([]byte("k"))
	mustSetValue(t, b, "k", []byte("local, newer"))
	if got, err := b.Fill([]byte("k"), r, seq, true); err != nil || string(got.Value()) != "owner's" {
		t.Fatalf("Fill = %q, %v: the record sent is still what answers the miss", got.Value(), err)
	}
	if v, err := getValue(b, "k"); err != nil || string(v) != "local, newer" {
		t.Fatalf("after a Fill older than a local write: %q, %v", v, err)
	}

	if err := a.SetValue([]byte("ttl"), []byte("x"), clock.Now().Add(time.Second).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	r = send(t, a, "ttl")
	clock.Advance(2 * time.Second)
	if v, err := fill(b, "ttl", r); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("an expired record was served: %q, %v", v, err)
	}
}

// TestFleetNearCopyStaysInMemory: a near copy is clean, so neither an
// eviction nor a write-back Close writes it to this cache's L2.
func TestFleetNearCopyStaysInMemory(t *testing.T) {
	a := openHybrid(t, hcfg{})
	defer a.Close()
	dir := t.TempDir()
	b := openHybrid(t, hcfg{dir: dir, policy: tier.WriteBack})
	mustSetValue(t, a, "k", []byte("owner's"))
	if v, err := fill(b, "k", send(t, a, "k")); err != nil || string(v) != "owner's" {
		t.Fatalf("fill: %q, %v", v, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openHybrid(t, hcfg{dir: dir, policy: tier.WriteBack})
	defer b.Close()
	if v, err := getValue(b, "k"); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("the near copy reached L2: %q, %v", v, err)
	}
}

// TestFleetSetTagged: a forwarded write is stored only under the version
// its sender stored it under.
func TestFleetSetTagged(t *testing.T) {
	h := openHybrid(t, hcfg{})
	defer h.Close()
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v2")}, 1); err != nil {
		t.Fatal(err)
	}
	var stale *tier.StaleError
	if err := h.SetTagged([]byte("{clip}k"), []byte("old"), 0, "v1"); !errors.As(err, &stale) {
		t.Fatalf("SetTagged under v1 at v2: %v, want a StaleError", err)
	}
	if _, err := getValue(h, "{clip}k"); !errors.Is(err, tier.ErrNotFound) {
		t.Fatal("a refused forwarded write was stored")
	}
	if err := h.SetTagged([]byte("{clip}k"), []byte("new"), 0, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := h.SetTagged([]byte("plain"), []byte("p"), 0, ""); err != nil {
		t.Fatal(err)
	}
	if v, err := getValue(h, "{clip}k"); err != nil || string(v) != "new" {
		t.Fatalf("{clip}k = %q, %v", v, err)
	}
	res, err := h.SetWith([]byte("{clip}x"), []byte("x"), tier.SetArgs{})
	if err != nil || res.Tag != "v2" {
		t.Fatalf("SetWith: tag %q, %v; want v2", res.Tag, err)
	}
	if st := h.Stats(); st.StaleWrites != 1 {
		t.Errorf("stale writes %d, want 1", st.StaleWrites)
	}
}

// TestFleetNearWrite: a write of a key another member owns (SetArgs.Near)
// is served from L1, never written to this cache's L2, and deletes the
// older copy L2 had, so that the old value does not reappear once the near
// copy is gone; one too large for L1 is stored as any write.
func TestFleetNearWrite(t *testing.T) {
	for _, policy := range []tier.WritePolicy{tier.WriteBack, tier.WriteThrough} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := hcfg{dir: dir, policy: policy, memMax: 1 << 20}
			h := openHybrid(t, cfg)
			mustSetValue(t, h, "k", []byte("old"))
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			h = openHybrid(t, cfg)
			near := tier.SetArgs{Near: true}
			if res, err := h.SetWith([]byte("k"), []byte("new"), near); err != nil || !res.Stored {
				t.Fatalf("near SetWith: %+v, %v", res, err)
			}
			if v, err := getValue(h, "k"); err != nil || string(v) != "new" {
				t.Fatalf("after the near write: %q, %v", v, err)
			}
			big := bytes.Repeat([]byte("b"), 1<<20)
			if _, err := h.SetWith([]byte("big"), big, near); err != nil {
				t.Fatal(err)
			}
			if n := h.NearWrites(); n != 1 {
				t.Errorf("NearWrites = %d, want 1 (the large value was stored as any write)", n)
			}
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			h = openHybrid(t, cfg)
			defer h.Close()
			if v, err := getValue(h, "k"); !errors.Is(err, tier.ErrNotFound) {
				t.Fatalf("after a restart, k = %q, %v; want not found (the near copy is memory only, L2's old copy deleted)", v, err)
			}
			if v, err := getValue(h, "big"); err != nil || !bytes.Equal(v, big) {
				t.Fatalf("the value too large for L1 was not kept: %d bytes, %v", len(v), err)
			}
		})
	}
}

// TestFleetKeepNear: a near copy whose forward was dropped is stored in L2
// by KeepNear, and survives a restart; KeepNear leaves alone a key L1 does
// not hold, a copy with another value or tag (a later write), a dirty
// record (write-back's own write, which L2 gets when evicted) and a copy a
// rollout has made stale.
func TestFleetKeepNear(t *testing.T) {
	for _, policy := range []tier.WritePolicy{tier.WriteBack, tier.WriteThrough} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			cfg := hcfg{dir: dir, policy: policy}
			h := openHybrid(t, cfg)
			near := tier.SetArgs{Near: true}
			set := func(key, value string, a tier.SetArgs) string {
				t.Helper()
				res, err := h.SetWith([]byte(key), []byte(value), a)
				if err != nil || !res.Stored {
					t.Fatalf("SetWith %s: %+v, %v", key, res, err)
				}
				return res.Tag
			}
			set("kept", "v", near)
			set("rewritten", "old", near)
			set("rewritten", "new", near)
			set("{clip@v1}scoped", "s", near)
			set("{clip@v1}stale", "s", near)
			set("own", "o", tier.SetArgs{})
			for _, c := range []struct {
				key, value, tag string
				want            bool
			}{
				{"kept", "v", "", true},
				{"absent", "v", "", false},
				{"rewritten", "old", "", false},
				{"{clip@v1}scoped", "s", "v2", false},
				{"{clip@v1}scoped", "s", "v1", true},
				{"own", "o", "", policy == tier.WriteThrough}, // clean: L2 has it already, a rewrite is harmless
			} {
				if got := h.KeepNear([]byte(c.key), []byte(c.value), c.tag); got != c.want {
					t.Errorf("KeepNear(%s, %s, %q) = %v, want %v", c.key, c.value, c.tag, got, c.want)
				}
			}
			if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v2")}, 1); err != nil {
				t.Fatal(err)
			}
			if h.KeepNear([]byte("{clip@v1}stale"), []byte("s"), "v1") {
				t.Error("KeepNear stored a copy of a version rolled out since")
			}
			want := uint64(2)
			if policy == tier.WriteThrough {
				want = 3
			}
			if n := h.NearKept(); n != want {
				t.Errorf("NearKept = %d, want %d", n, want)
			}
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			if h.KeepNear([]byte("kept"), []byte("v"), "") {
				t.Error("KeepNear after Close reported a write")
			}
			h = openHybrid(t, cfg)
			defer h.Close()
			if v, err := getValue(h, "kept"); err != nil || string(v) != "v" {
				t.Fatalf("after a restart, kept = %q, %v; want v", v, err)
			}
			if v, err := getValue(h, "rewritten"); !errors.Is(err, tier.ErrNotFound) {
				t.Fatalf("after a restart, rewritten = %q, %v; want not found (its near copies were never kept)", v, err)
			}
			if v, err := getValue(h, "own"); err != nil || string(v) != "o" {
				t.Fatalf("after a restart, own = %q, %v; want o", v, err)
			}
		})
	}
}
