package memtier

import (
	"bytes"
	"fmt"
	"testing"

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
	c.SetOnEvict(func(string, tier.Record) { evicted++ })
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
	c.SetOnEvict(func(key string, _ tier.Record) { evicted[key] = true })
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
