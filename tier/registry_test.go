package tier_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

func TestValidateModel(t *testing.T) {
	for _, ok := range []string{"clip", "openai/clip-vit-large-patch14", "clip v1", "a@b", "modèle"} {
		if err := tier.ValidateModel(ok); err != nil {
			t.Errorf("ValidateModel(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a{b", "}", "{clip}"} {
		if err := tier.ValidateModel(bad); !errors.Is(err, tier.ErrInvalidModel) {
			t.Errorf("ValidateModel(%q) = %v, want ErrInvalidModel", bad, err)
		}
	}
}

func TestValidateVersion(t *testing.T) {
	for _, ok := range []string{"v1", "2024-06-01", "sha256:abc", "a/b.c"} {
		if err := tier.ValidateVersion(ok); err != nil {
			t.Errorf("ValidateVersion(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "v@1", "{v}", "v}", strings.Repeat("v", tier.MaxTagLen+1)} {
		if err := tier.ValidateVersion(bad); !errors.Is(err, tier.ErrInvalidVersion) {
			t.Errorf("ValidateVersion(%.20q) = %v, want ErrInvalidVersion", bad, err)
		}
	}
}

// TestLocalRegistry rolls a model out twice and purges it on a standalone
// cache: each change is the next revision, applied when the call returns,
// and the registry survives a restart.
func TestLocalRegistry(t *testing.T) {
	dir := t.TempDir()
	h := openHybrid(t, hcfg{dir: dir})
	defer h.Close()
	reg := tier.NewLocalRegistry(h.Registry)
	ctx := context.Background()
	rollout := func(model, version string) uint64 {
		t.Helper()
		rev, err := reg.Rollout(ctx, tiertest.Rollout(t, model, version))
		if err != nil {
			t.Fatalf("Rollout(%s, %s): %v", model, version, err)
		}
		return rev
	}
	wantMissing := func(key string) {
		t.Helper()
		if v, err := getValue(h, key); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("GET %s = %q, %v; want not found", key, v, err)
		}
	}

	mustSetValue(t, h, "{clip}k", []byte("old"))
	r1 := rollout("clip", "v1")
	wantMissing("{clip}k")
	mustSetValue(t, h, "{clip@v1}k", []byte("v1"))
	mustSetValue(t, h, "{clip}k", []byte("v1"))
	r2 := rollout("clip", "v2")
	wantMissing("{clip@v1}k")
	wantMissing("{clip}k")
	var stale *tier.StaleError
	if err := h.SetValue([]byte("{clip@v1}x"), []byte("x"), 0); !errors.As(err, &stale) || stale.Current != "v2" {
		t.Fatalf("SET {clip@v1}x at v2: %v, want a StaleError", err)
	}
	if v, ok := h.Model("clip"); !ok || v != "v2" {
		t.Fatalf("Model(clip) = %q, %v; want v2", v, ok)
	}
	r3, err := reg.Purge(ctx, tiertest.Purge(t, "clip"))
	if err != nil {
		t.Fatal(err)
	}
	if !(r1 == 1 && r2 == 2 && r3 == 3) {
		t.Fatalf("revisions %d %d %d, want 1 2 3", r1, r2, r3)
	}
	if v, ok := h.Model("clip"); ok {
		t.Fatalf("Model(clip) = %q after the purge", v)
	}
	st := h.Stats()
	if st.ModelsRevision != 3 || st.ModelsKnown != 0 || st.RolloutsApplied != 3 {
		t.Fatalf("stats: revision %d, known %d, applied %d; want 3, 0, 3", st.ModelsRevision, st.ModelsKnown, st.RolloutsApplied)
	}
	// Invalid changes cannot be made, so they never reach the registry.
	if _, err := tier.NewRollout("clip", "v@1"); !errors.Is(err, tier.ErrInvalidVersion) {
		t.Fatalf("Rollout of v@1: %v, want ErrInvalidVersion", err)
	}
	if _, err := tier.NewRollout("a{b}", "v1"); !errors.Is(err, tier.ErrInvalidModel) {
		t.Fatalf("Rollout of a{b}: %v, want ErrInvalidModel", err)
	}
	if _, err := tier.NewPurge(""); !errors.Is(err, tier.ErrInvalidModel) {
		t.Fatalf("Purge of an empty name: %v, want ErrInvalidModel", err)
	}

	// The state survives a restart.
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h = openHybrid(t, hcfg{dir: dir})
	defer h.Close()
	reg = tier.NewLocalRegistry(h.Registry)
	if v, ok := h.Model("clip"); ok {
		t.Fatalf("Model(clip) = %q after a restart", v)
	}
	if r := rollout("clip", "v3"); r != 4 {
		t.Fatalf("revision after restart %d, want 4", r)
	}
	if _, err := reg.Rollout(ctx, tiertest.Rollout(t, "clip", "v4")); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Rollout(ctx, tiertest.Rollout(t, "clip", "v5")); !errors.Is(err, tier.ErrClosed) {
		t.Fatalf("Rollout after Close: %v, want ErrClosed", err)
	}
}

// TestModelChange: a change is made only from a valid name and version,
// and a refused one is refused with ValidateModel's or ValidateVersion's
// own error (the model checked first), the text every edge reports.
func TestModelChange(t *testing.T) {
	long := strings.Repeat("v", tier.MaxTagLen+1)
	for _, tc := range []struct {
		model, version string
		err            error // ValidateModel's or ValidateVersion's; nil for a valid rollout
	}{
		{"openai/clip-vit-large-patch14", "2024-06", nil},
		{"a@b", "v1", nil},
		{"", "v1", tier.ValidateModel("")},
		{"a{b", "v@1", tier.ValidateModel("a{b")},
		{"}", "", tier.ValidateModel("}")},
		{"clip", "", tier.ValidateVersion("")},
		{"clip", "v@1", tier.ValidateVersion("v@1")},
		{"clip", "{v}", tier.ValidateVersion("{v}")},
		{"clip", long, tier.ValidateVersion(long)},
	} {
		ch, err := tier.NewRollout(tc.model, tc.version)
		if tc.err == nil {
			if err != nil || ch.Model() != tc.model || ch.Version() != tc.version || !ch.IsRollout() || ch.IsPurge() {
				t.Errorf("NewRollout(%q, %q) = %v, %v", tc.model, tc.version, ch, err)
			}
			if p := ch.AsPurge(); p.Model() != tc.model || p.Version() != "" || !p.IsPurge() || p.IsRollout() {
				t.Errorf("%v.AsPurge() = %v", ch, p)
			}
			continue
		}
		if err == nil || err.Error() != tc.err.Error() || ch != (tier.ModelChange{}) {
			t.Errorf("NewRollout(%q, %.20q) = %v, %v; want the error %v", tc.model, tc.version, ch, err, tc.err)
		}
	}
	if ch, err := tier.NewPurge("openai/clip-vit-large-patch14"); err != nil || ch.Model() != "openai/clip-vit-large-patch14" || ch.Version() != "" || !ch.IsPurge() || ch.IsRollout() {
		t.Errorf("NewPurge = %v, %v", ch, err)
	}
	for _, bad := range []string{"", "a{b", "{clip}"} {
		if ch, err := tier.NewPurge(bad); err == nil || err.Error() != tier.ValidateModel(bad).Error() || ch != (tier.ModelChange{}) {
			t.Errorf("NewPurge(%q) = %v, %v; want the error %v", bad, ch, err, tier.ValidateModel(bad))
		}
	}
	var zero tier.ModelChange
	if zero.IsRollout() || zero.IsPurge() || zero.String() != "no change" {
		t.Errorf("the zero ModelChange is a rollout (%v) or a purge (%v): %v", zero.IsRollout(), zero.IsPurge(), zero)
	}
}

// TestLocalRegistryWrongChange: a LocalRegistry takes a rollout only as a
// rollout and a purge only as a purge; anything else is a programmer
// error, which panics before the registry changes.
func TestLocalRegistryWrongChange(t *testing.T) {
	h := openHybrid(t, hcfg{})
	defer h.Close()
	reg := tier.NewLocalRegistry(h.Registry)
	ctx := context.Background()
	for name, call := range map[string]func(){
		"Rollout of a purge": func() { _, _ = reg.Rollout(ctx, tiertest.Purge(t, "clip")) },
		"Rollout of nothing": func() { _, _ = reg.Rollout(ctx, tier.ModelChange{}) },
		"Purge of a rollout": func() { _, _ = reg.Purge(ctx, tiertest.Rollout(t, "clip", "v1")) },
		"Purge of nothing":   func() { _, _ = reg.Purge(ctx, tier.ModelChange{}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			call()
		}()
	}
	if rev := h.ModelsRevision(); rev != 0 {
		t.Errorf("registry at revision %d after refused changes, want 0", rev)
	}
}
