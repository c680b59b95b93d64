package tier_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// openRegistry opens a Registry alone on a real disk tier in dir.
func openRegistry(t *testing.T, dir string) (*tier.Registry, *disktier.Store) {
	t.Helper()
	st, err := disktier.Open(disktier.Options{Dir: dir, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := tier.OpenRegistry(st, func(op string, err error) { t.Errorf("registry error: %s: %v", op, err) })
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Close(); err != nil {
			t.Error(err)
		}
		st.Close()
	})
	return reg, st
}

// TestRegistryAlone drives the registry without a cache around it: the
// first rollout keeps what was written for its version, the next change
// drops everything older, revisions only move forward (but on a resync),
// replayed changes are no-ops, and the state survives a reopen.
func TestRegistryAlone(t *testing.T) {
	dir := t.TempDir()
	reg, st := openRegistry(t, dir)
	rec := tier.NewRecord(tier.Header{}, []byte("v"))
	// Written while the registry did not know clip: epoch 0.
	keys := map[string][]byte{
		"kept":        tier.ModelKey("clip", 0, []byte("{clip@v1}a")),
		"unversioned": tier.ModelKey("clip", 0, []byte("{clip}a")),
		"other":       tier.ModelKey("clip", 0, []byte("{clip@v0}a")),
		"prefix":      tier.ModelKey("clip", 0, []byte("{clip@v1x}a")),
		"plain":       tier.PlainKey([]byte("{clip@v1}a")),
	}
	var ops []tier.Op
	for _, k := range keys {
		ops = append(ops, tier.Op{Key: k, Record: rec})
	}
	if err := st.Write(ops); err != nil {
		t.Fatal(err)
	}
	present := func(name string) bool {
		_, err := st.Get(keys[name])
		if err != nil && !errors.Is(err, tier.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	if err := reg.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v1")}, 3); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"kept": true, "unversioned": false, "other": false, "prefix": false, "plain": true} {
		if got := present(name); got != want {
			t.Errorf("after the first rollout, %s present = %v, want %v", name, got, want)
		}
	}
	if v, ok := reg.Model("clip"); !ok || v != "v1" || reg.ModelsRevision() != 3 {
		t.Fatalf("Model(clip) = %q, %v at revision %d", v, ok, reg.ModelsRevision())
	}

	// A replay changes nothing; an older revision does not move it back.
	before := reg.ModelStats()
	if err := reg.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v1")}, 2); err != nil {
		t.Fatal(err)
	}
	if reg.ModelsRevision() != 3 || !present("kept") {
		t.Fatalf("replay at revision 2: revision %d, kept entry present %v", reg.ModelsRevision(), present("kept"))
	}
	if after := reg.ModelStats(); len(after.Models) != len(before.Models) {
		t.Fatalf("ModelStats changed on a replay: %+v -> %+v", before, after)
	}

	// The next change drops everything older, the kept entry too; async
	// changes are visible at once and reach the disk in the background.
	reg.ApplyModelsAsync([]tier.ModelChange{tiertest.Rollout(t, "clip", "v2"), tiertest.Rollout(t, "t5", "a")}, 4)
	if v, _ := reg.Model("clip"); v != "v2" || reg.ModelsRevision() != 4 {
		t.Fatalf("after ApplyModelsAsync: clip=%q revision %d", v, reg.ModelsRevision())
	}
	waitFor(t, 10*time.Second, "the kept entry dropped", func() bool { return !present("kept") })
	if got := reg.Models(); len(got) != 2 || got[0] != [2]string{"clip", "v2"} || got[1] != [2]string{"t5", "a"} {
		t.Fatalf("Models() = %q", got)
	}

	// A resync may move the revision back; a purge forgets the model.
	if err := reg.ResyncModels([]tier.ModelChange{tiertest.Purge(t, "t5")}, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.Model("t5"); ok || reg.ModelsRevision() != 1 {
		t.Fatalf("after the resync: t5 known %v, revision %d", ok, reg.ModelsRevision())
	}

	// The state survives a reopen; a closed registry refuses changes.
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reg.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v3")}, 9); !errors.Is(err, tier.ErrClosed) {
		t.Fatalf("ApplyModels after Close: %v, want ErrClosed", err)
	}
	again, err := tier.OpenRegistry(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if v, _ := again.Model("clip"); v != "v2" || again.ModelsRevision() != 1 || len(again.Models()) != 1 {
		t.Fatalf("reopened: clip=%q revision %d models %q", v, again.ModelsRevision(), again.Models())
	}
}
