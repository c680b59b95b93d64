package server

import (
	"strconv"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/tier"
)

// TestInfoWarmup reopens a cache on a filled directory and reads INFO
// tiers while L1 is warmed: l1_warmup_bytes and l1_warmup_keys only grow,
// l1_warmup_done ends at 1 with every entry warmed, and the figures are
// the Hybrid's.
func TestInfoWarmup(t *testing.T) {
	dir := t.TempDir()
	const n, size = 200, 32 << 10
	open := func(warm int64) *tier.Hybrid {
		t.Helper()
		l1, err := memtier.New(memtier.Options{MaxBytes: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		l2, err := disktier.Open(disktier.Options{Dir: dir, MaxBytes: 256 << 20})
		if err != nil {
			t.Fatal(err)
		}
		h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2, WarmBytes: warm})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := open(-1)
	for i := range n {
		if err := h.SetValue([]byte("w:"+strconv.Itoa(i)), make([]byte, size), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	h = open(0)
	defer h.Close()
	s, err := New(Options{Cache: h, Models: tier.NewLocalRegistry(h.Registry)})
	if err != nil {
		t.Fatal(err)
	}
	field := func(info, name string) int64 {
		t.Helper()
		v, ok := infoField(info, name)
		if !ok {
			t.Fatalf("INFO tiers has no %s:\n%s", name, info)
		}
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s:%s", name, v)
		}
		return x
	}
	var bytes, keys int64
	waitFor(t, 60*time.Second, "l1_warmup_done:1", func() bool {
		info := s.info(map[string]bool{"tiers": true})
		b, k, done := field(info, "l1_warmup_bytes"), field(info, "l1_warmup_keys"), field(info, "l1_warmup_done")
		if b < bytes || k < keys {
			t.Fatalf("l1_warmup_bytes %d → %d, l1_warmup_keys %d → %d: went back", bytes, b, keys, k)
		}
		bytes, keys = b, k
		return done == 1
	})
	st := h.Stats()
	if keys != n || bytes != st.WarmupBytes || bytes != st.L1.Bytes {
		t.Errorf("INFO: %d keys, %d bytes warmed; want %d keys, %d bytes (L1 %d)", keys, bytes, n, st.WarmupBytes, st.L1.Bytes)
	}
}
