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
	c.SetOnEvict(func(_ string, r tier.Record) {
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
