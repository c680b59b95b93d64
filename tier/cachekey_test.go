package tier_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/tiercache/tiercache/tier"
)

// TestCacheKeyVectors: the Go CacheKey reproduces the Python client's keys
// (clients/testdata/cache_key_vectors.json, which the Python tests check
// too), integers beyond int64, -0.0 and subnormals included.
func TestCacheKeyVectors(t *testing.T) {
	b, err := os.ReadFile("../clients/testdata/cache_key_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // ints stay exact; 1.0 stays a float, 1 an int
	var f struct {
		Vectors []struct {
			Model, Version, Stage string
			Inputs                any
			EncodingHex           string `json:"encoding_hex"`
			Key                   string
		}
	}
	if err := d.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for i, v := range f.Vectors {
		enc, err := tier.EncodeInputs(v.Inputs)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if got := hex.EncodeToString(enc); got != v.EncodingHex {
			t.Errorf("vector %d: encoding\n%s\nwant\n%s", i, got, v.EncodingHex)
		}
		k, err := tier.CacheKey(v.Model, v.Version, v.Stage, v.Inputs)
		if err != nil || string(k) != v.Key {
			t.Errorf("vector %d: key %s, %v; want %s", i, k, err, v.Key)
		}
	}
}

// TestCacheKeyGoTypes: native Go values encode as their JSON twins do.
func TestCacheKeyGoTypes(t *testing.T) {
	type M = map[string]any
	native, err := tier.CacheKey("clip", "v1", "enc", M{"prompt": "a cat", "n": int64(77), "w": float32(0.5), "ls": []string{"x"}, "raw": []byte{0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	twin, err := tier.CacheKey("clip", "v1", "enc", M{"prompt": "a cat", "n": json.Number("77"), "w": 0.5, "ls": []any{"x"}, "raw": []byte{0, 1}})
	if err != nil || !bytes.Equal(native, twin) {
		t.Errorf("native %s, twin %s (%v)", native, twin, err)
	}
	for _, bad := range []any{M{"x": struct{}{}}, map[int]any{1: 2}, M{"nan": json.Number("1e999")}} {
		if _, err := tier.EncodeInputs(bad); err == nil {
			t.Errorf("EncodeInputs(%v) accepted", bad)
		}
	}
	if _, err := tier.CacheKey("a{b", "v", "s", nil); err == nil {
		t.Error("a model with '{' accepted")
	}
	if _, err := tier.CacheKey("a", "v@1", "s", nil); err == nil {
		t.Error("a version with '@' accepted")
	}
}
