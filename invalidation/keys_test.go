package invalidation

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// kvKeyRe is nats.go's rule for KV keys (jetstream/kv.go, validKeyRe), with
// its checks on dots.
var kvKeyRe = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func validKVKey(k string) bool {
	return kvKeyRe.MatchString(k) && k[0] != '.' && k[len(k)-1] != '.' && !strings.Contains(k, "..")
}

func TestEncodeModel(t *testing.T) {
	for _, tc := range []struct{ model, key string }{
		{"clip", "clip"},
		{"openai/clip-vit-large-patch14", "openai/clip-vit-large-patch14"},
		{"a.b=c_d", "a.b=c_d"},
		{"_m", "_m"},
		{"_mx.y", "_mx.y"},
		{"clip v1", "_m.Y2xpcCB2MQ"},
		{"a..b", "_m.YS4uYg"},
		{".a", "_m.LmE"},
		{"a.", "_m.YS4"},
		{"*", "_m.Kg"},
		{">", "_m.Pg"},
		{"a@b", "_m.YUBi"},
		{"modèle", "_m.bW9kw6hsZQ"},
		{"_m.x", "_m.X20ueA"},
		{"\x00\xff", "_m.AP8"},
	} {
		key, err := EncodeModel(tc.model)
		if err != nil || key != tc.key {
			t.Errorf("EncodeModel(%q) = %q, %v; want %q", tc.model, key, err, tc.key)
			continue
		}
		if !validKVKey(key) {
			t.Errorf("EncodeModel(%q) = %q: not a valid KV key", tc.model, key)
		}
		if m, err := DecodeModel(key); err != nil || m != tc.model {
			t.Errorf("DecodeModel(%q) = %q, %v; want %q", key, m, err, tc.model)
		}
	}
	for _, bad := range []string{"", "a{b", "}", "{clip}"} {
		if key, err := EncodeModel(bad); !errors.Is(err, ErrInvalidModel) {
			t.Errorf("EncodeModel(%q) = %q, %v; want ErrInvalidModel", bad, key, err)
		}
	}
	for _, bad := range []string{"", ".a", "a..b", "a b", "_m.", "_m.Y2xpcA", "_m.a", "_m.Y2xpcA==", "_m.e30", "_m.YS4uYg.x"} {
		if m, err := DecodeModel(bad); !errors.Is(err, ErrInvalidModel) {
			t.Errorf("DecodeModel(%q) = %q, %v; want ErrInvalidModel", bad, m, err)
		}
	}
	// The encoding alone (modelKey, decodeKey) is a different check: it
	// takes any non-empty name, and leaves the registry's rules to
	// DecodeModel and to the change an entry makes (tier.NewRollout).
	for _, name := range []string{"a{b", "}", "{clip}"} {
		key := modelKey(name)
		if got, err := decodeKey(key); err != nil || got != name || !validKVKey(key) {
			t.Errorf("decodeKey(modelKey(%q) = %q) = %q, %v", name, key, got, err)
		}
		if m, err := DecodeModel(key); !errors.Is(err, ErrInvalidModel) {
			t.Errorf("DecodeModel(%q) = %q, %v; want ErrInvalidModel", key, m, err)
		}
	}
	if m, err := decodeKey("_m."); err != nil || m != "" {
		t.Errorf(`decodeKey("_m.") = %q, %v; want "" (the empty name is the registry's to refuse)`, m, err)
	}
}

// FuzzEncodeModel checks that every valid model name has a valid KV key
// that decodes back to it.
func FuzzEncodeModel(f *testing.F) {
	for _, s := range []string{"clip", "openai/clip-vit-large-patch14", "a b", "_m.x", "a..b", ".", "é", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, model string) {
		key, err := EncodeModel(model)
		if err != nil {
			if !errors.Is(err, ErrInvalidModel) || tier.ValidateModel(model) == nil {
				t.Fatalf("EncodeModel(%q): %v", model, err)
			}
			return
		}
		if !validKVKey(key) {
			t.Fatalf("EncodeModel(%q) = %q: not a valid KV key", model, key)
		}
		if rawKey(model) != (key == model) {
			t.Fatalf("EncodeModel(%q) = %q: raw names must be their own key, others encoded", model, key)
		}
		got, err := DecodeModel(key)
		if err != nil || got != model {
			t.Fatalf("DecodeModel(EncodeModel(%q)) = %q, %v", model, got, err)
		}
	})
}

// FuzzDecodeModel checks that a key that decodes is the one key of its
// model.
func FuzzDecodeModel(f *testing.F) {
	for _, s := range []string{"clip", "_m.Y2xpcCB2MQ", "_m.Y2xpcA", "_m.", "_m.a", "a..b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		model, err := DecodeModel(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidModel) {
				t.Fatalf("DecodeModel(%q): %v", key, err)
			}
			return
		}
		if again, err := EncodeModel(model); err != nil || again != key {
			t.Fatalf("EncodeModel(DecodeModel(%q) = %q) = %q, %v", key, model, again, err)
		}
	})
}

// TestEncodedKeysInBucket rolls out models with awkward names through a
// real bucket: nats.go accepts every key, and the daemons decode them.
func TestEncodedKeysInBucket(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	d := newDaemon(t, "d", testOptions(t, srv.ClientURL(), "names"))
	d.waitSynced()
	names := []string{"clip", "openai/clip-vit-large-patch14", "my model", "a..b", "_m.x", "*", ">", "a@b", "modèle", "\x00bin\xff"}
	for i, m := range names {
		v := "v" + string(rune('a'+i))
		d.rollout(m, v)
		if err := d.hasModel(m, v); err != nil {
			t.Fatal(err)
		}
	}
	js := connect(t, srv.ClientURL())
	kv, err := js.KeyValue(context.Background(), "names")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for k := range keys.Keys() {
		m, err := DecodeModel(k)
		if err != nil {
			t.Fatalf("bucket key %q: %v", k, err)
		}
		seen[m] = true
	}
	for _, m := range names {
		if !seen[m] {
			t.Errorf("model %q not in the bucket", m)
		}
	}
	// `nats kv del` of a raw name is a purge.
	if err := kv.Delete(ctx, "clip"); err != nil {
		t.Fatal(err)
	}
	d.waitModel("clip", "")
	if _, err := kv.Put(ctx, "a b", []byte("v1")); !errors.Is(err, jetstream.ErrInvalidKey) {
		t.Fatalf("nats.go accepted the raw key %q: %v", "a b", err)
	}
}

// TestCompress checks on random sequences that compress has the effect of
// the full sequence: each model ends at the same version, and its entries
// from before are dropped exactly when the full sequence drops them — all
// of them, or, after the first rollout of a model without a version, all
// but those written for that version (tier.ModelState.Kept).
func TestCompress(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	versions := []string{"", "v1", "v2", "v3"}
	models := []string{"a", "b", "c"}
	type state struct {
		version string
		// alive is what is left of the entries from before the changes:
		// "*" all (nothing dropped yet), a version (only those of its
		// versioned keys, kept by a first rollout), "-" none.
		alive   string
		changes int
	}
	apply := func(reg map[string]state, changes []tier.ModelChange) {
		for _, ch := range changes {
			st := reg[ch.Model()]
			if st.version == ch.Version() {
				continue
			}
			switch {
			case st.version == "" && ch.Version() != "" && st.alive == "*":
				st.alive = ch.Version()
			default:
				st.alive = "-"
			}
			st.version = ch.Version()
			st.changes++
			reg[ch.Model()] = st
		}
	}
	for range 20000 {
		start := map[string]state{}
		for _, m := range models {
			start[m] = state{version: versions[rng.IntN(len(versions))], alive: "*"}
		}
		var changes []tier.ModelChange
		for range rng.IntN(8) {
			model, version := models[rng.IntN(len(models))], versions[rng.IntN(len(versions))]
			if version == "" {
				changes = append(changes, tiertest.Purge(t, model))
			} else {
				changes = append(changes, tiertest.Rollout(t, model, version))
			}
		}
		full, short := maps.Clone(start), maps.Clone(start)
		apply(full, changes)
		c := compress(slices.Clone(changes), func(m string) (string, bool) { return start[m].version, start[m].version != "" })
		apply(short, c)
		for _, m := range models {
			f, s := full[m], short[m]
			limit := 2
			if start[m].version == "" {
				limit = 3
			}
			if f.version != s.version || f.alive != s.alive || s.changes > limit {
				t.Fatalf("start %v, changes %v: full %v, compressed %v (%v)", start, changes, full, short, c)
			}
		}
	}
}
