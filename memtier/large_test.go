package memtier

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/tier"
)

// TestLargeByReference checks that records of SmallRecord bytes or more are
// stored and returned without a copy, and smaller ones are copied.
func TestLargeByReference(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 64 << 20})
	big := record(118<<10, 0, 1)
	small := record(200, 0, 2)
	for k, r := range map[string]tier.Record{"big": big, "small": small} {
		if err := c.Set([]byte(k), r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Get([]byte("big"))
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &big[0] || len(got) != len(big) {
		t.Error("Get of a large record returned a copy")
	}
	got, err = c.Get([]byte("small"))
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] == &small[0] || !bytes.Equal(got, small) {
		t.Error("Get of a small record did not return a copy of it")
	}
	key := []byte("big")
	if n := testing.AllocsPerRun(100, func() {
		if _, err := c.Get(key); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Get of a large record: %v allocations, want 0", n)
	}
}

// TestRangeLargeByReference checks why Range forbids fn to modify the
// records it is handed: a large record is handed by reference, the stored
// record itself, so a write by fn would change what every later Get
// returns; a small one is a copy. The records are compared with ones built
// afresh, which no write through the cache can reach.
func TestRangeLargeByReference(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 64 << 20})
	sizes := map[string]int{"big": 118 << 10, "small": 200}
	stored := map[string]tier.Record{}
	for k, size := range sizes {
		stored[k] = record(size, 0, uint64(size))
		if err := c.Set([]byte(k), stored[k]); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	c.Range(func(key []byte, r tier.Record) bool {
		k := string(key)
		seen[k] = true
		if !bytes.Equal(r, record(sizes[k], 0, uint64(sizes[k]))) {
			t.Errorf("Range handed %q a record that differs from the one set", key)
		}
		switch byRef := &r[0] == &stored[k][0]; {
		case k == "big" && !byRef:
			t.Error("Range handed a copy of a large record: it is handed by reference, which is why fn must not modify it")
		case k == "small" && byRef:
			t.Error("Range handed a small record by reference")
		}
		return true
	})
	for k, size := range sizes {
		if !seen[k] {
			t.Errorf("Range did not hand %q", k)
		}
		checkGet(t, c, []byte(k), record(size, 0, uint64(size)))
	}
}

// TestKeyMovesBetweenStores writes one key with records on both sides of
// SmallRecord: it is always in one store only, with the last record.
func TestKeyMovesBetweenStores(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 64 << 20})
	k := []byte("k")
	for i, size := range []int{100, 5000, 300, 70 << 10, 1000, DefaultSmallRecord - len(k), DefaultSmallRecord - len(k) - 1} {
		r := record(size, 0, uint64(i))
		if err := c.Set(k, r); err != nil {
			t.Fatal(err)
		}
		checkGet(t, c, k, r)
		checkStats(t, c, map[string]tier.Record{"k": r})
	}
	if err := c.Delete(k); err != nil {
		t.Fatal(err)
	}
	checkGet(t, c, k, nil)
	checkStats(t, c, nil)
}

// TestSharedBudget checks that the rings and the large store together stay
// within MaxBytes: as the rings are first written, the large store gives
// up room, evicting.
func TestSharedBudget(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8 << 20, SmallBytes: 2 << 20, Shards: 2})
	evicted := 0
	c.SetOnEvict(func(string, tier.Record, bool) { evicted++ })
	within := func(when string) {
		t.Helper()
		if used := c.large.cost.Load() + c.pushed.Load(); used > c.maxBytes {
			t.Fatalf("%s: large store %d + rings %d > %d", when, c.large.cost.Load(), c.pushed.Load(), c.maxBytes)
		}
	}
	for i := range 70 {
		if err := c.Set(fmt.Appendf(nil, "large%d", i), record(100<<10, 0, uint64(i))); err != nil {
			t.Fatal(err)
		}
		within("filling the large store")
	}
	before := evicted
	for i := range 3000 {
		if err := c.Set(fmt.Appendf(nil, "small%d", i), record(900, 0, uint64(i))); err != nil {
			t.Fatal(err)
		}
		within("filling the rings")
	}
	if evicted == before {
		t.Error("filling the rings evicted nothing from the large store")
	}
	if c.pushed.Load() != c.smallBytes {
		t.Errorf("rings hold %d, want all of %d", c.pushed.Load(), c.smallBytes)
	}
}

// TestSecondChance checks the large store's CLOCK eviction: an entry read
// since the hand last passed it survives a stream of new writes that
// evicts older unread ones.
func TestSecondChance(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8 << 20, SmallBytes: 1 << 20})
	evicted := map[string]bool{}
	c.SetOnEvict(func(key string, _ tier.Record, _ bool) { evicted[key] = true })
	hot, cold := []byte("hot"), []byte("cold")
	for _, k := range [][]byte{hot, cold} {
		if err := c.Set(k, record(100<<10, 0, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; !evicted["cold"]; i++ {
		if i > 1000 {
			t.Fatal("cold was never evicted")
		}
		if _, err := c.Get(hot); err != nil {
			t.Fatalf("hot was evicted after %d writes", i)
		}
		if err := c.Set(fmt.Appendf(nil, "new%d", i), record(100<<10, 0, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if evicted["hot"] {
		t.Error("hot, read before every write, was evicted")
	}
}

// pooledRecord returns a copy of r in a buffer of p, as the server reads a
// value, with its command already done: the cache's share is all that keeps
// the buffer from being retired.
func pooledRecord(p *bufpool.Pool, r tier.Record) tier.Record {
	b := p.Get(len(r))
	copy(b, r)
	return tier.Record(b)
}

// TestBufferShares checks that the large store holds a share of a pooled
// record's buffer exactly while it stores the record: an overwrite, a
// delete, an eviction (after the hook took its own share) and a reset each
// let go of it.
func TestBufferShares(t *testing.T) {
	p := bufpool.New(bufpool.Options{})
	var hooked []tier.Record
	c := newCache(t, Options{MaxBytes: 8 << 20, SmallBytes: 1 << 20, MaxRecord: 1 << 20, Buffers: p})
	c.SetOnEvict(func(_ string, r tier.Record, _ bool) {
		if _, ok := p.Retain(r); !ok {
			t.Error("the hook could not retain an evicted record")
		}
		hooked = append(hooked, r)
	})
	set := func(k string, r tier.Record) {
		t.Helper()
		if err := c.Set([]byte(k), r); err != nil {
			t.Fatal(err)
		}
		p.Done(r) // the command that read it has ended
	}
	retired := func() uint64 { return p.Stats().Retired }

	r1 := pooledRecord(p, record(100_000, 0, 1))
	set("a", r1)
	if retired() != 0 {
		t.Fatal("a stored record's buffer was retired")
	}
	if got, err := c.Get([]byte("a")); err != nil || &got[0] != &r1[0] {
		t.Fatal("Get does not return the pooled record")
	}
	set("a", pooledRecord(p, record(100_000, 0, 2))) // overwrite
	if retired() != 1 {
		t.Fatalf("overwrite: %d retired, want 1", retired())
	}
	if err := c.Delete([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if retired() != 2 {
		t.Fatalf("delete: %d retired, want 2", retired())
	}

	// Fill the large store (7 MiB beside the rings) until it evicts.
	for i := 0; len(hooked) == 0; i++ {
		set(fmt.Sprint("e", i), pooledRecord(p, record(500_000, 0, uint64(i))))
	}
	before := retired()
	for _, r := range hooked {
		p.Release(r) // the demotion is done
	}
	if got := retired() - before; got != uint64(len(hooked)) {
		t.Fatalf("%d of %d evicted buffers retired once the hook let go", got, len(hooked))
	}
	if st := c.Stats(); st.Bytes > st.MaxBytes {
		t.Fatalf("bytes %d over max %d", st.Bytes, st.MaxBytes)
	}
	keys := c.Stats().Keys
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if got := retired() - before - uint64(len(hooked)); got != uint64(keys) {
		t.Fatalf("reset retired %d buffers, want %d", got, keys)
	}
}
