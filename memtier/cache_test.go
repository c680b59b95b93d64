package memtier

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// newCache returns a Cache closed when the test ends.
func newCache(t testing.TB, o Options) *Cache {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// record returns a record of exactly size bytes (at least tier.HeaderSize+2)
// whose value is filled from seed.
func record(size int, expireAt int64, seed uint64) tier.Record {
	h := tier.Header{ExpireAt: expireAt, Tag: "v1", Epoch: 7}
	v := make([]byte, size-h.Size(0))
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	_, _ = rand.NewChaCha8(s).Read(v)
	return tier.NewRecord(h, v)
}

// checkGet fails unless key holds want (nil: holds nothing).
func checkGet(t *testing.T, c *Cache, key []byte, want tier.Record) {
	t.Helper()
	got, err := c.Get(key)
	switch {
	case want == nil && !errors.Is(err, tier.ErrNotFound):
		t.Fatalf("Get(%q) = %d bytes, %v; want ErrNotFound", trunc(key), len(got), err)
	case want != nil && err != nil:
		t.Fatalf("Get(%q): %v", trunc(key), err)
	case want != nil && !bytes.Equal(got, want):
		t.Fatalf("Get(%q) = %d bytes, want %d (differ)", trunc(key), len(got), len(want))
	}
}

func trunc(key []byte) []byte {
	if len(key) > 20 {
		return key[:20]
	}
	return key
}

// checkStats fails unless Bytes and Keys match the given live entries.
func checkStats(t *testing.T, c *Cache, live map[string]tier.Record) {
	t.Helper()
	var want int64
	for k, r := range live {
		want += int64(len(k) + len(r))
	}
	s := c.Stats()
	if s.Bytes != want || s.Keys != int64(len(live)) {
		t.Fatalf("Stats Bytes, Keys = %d, %d; want %d, %d", s.Bytes, s.Keys, want, len(live))
	}
	if s.Bytes > s.MaxBytes {
		t.Fatalf("Bytes %d > MaxBytes %d", s.Bytes, s.MaxBytes)
	}
}

func TestGetSetDelete(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8 << 20})
	k := []byte("key")
	checkGet(t, c, k, nil)
	if err := c.Delete(k); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}

	r1 := record(100, 0, 1)
	if err := c.Set(k, r1); err != nil {
		t.Fatal(err)
	}
	checkGet(t, c, k, r1)
	checkStats(t, c, map[string]tier.Record{"key": r1})

	// A small record is returned as a copy: changing it changes nothing stored.
	got, _ := c.Get(k)
	got[len(got)-1] ^= 0xff
	checkGet(t, c, k, r1)

	r2 := record(3000, 0, 2)
	if err := c.Set(k, r2); err != nil {
		t.Fatal(err)
	}
	checkGet(t, c, k, r2)
	checkStats(t, c, map[string]tier.Record{"key": r2})

	if err := c.Delete(k); err != nil {
		t.Fatal(err)
	}
	checkGet(t, c, k, nil)
	checkStats(t, c, nil)
	if err := c.Delete(k); err != nil {
		t.Fatalf("second Delete: %v", err)
	}

	s := c.Stats()
	if s.Hits != 4 || s.Misses != 2 || s.Evictions != 0 || s.MaxBytes != 8<<20 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestBinaryKeys(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8 << 20})
	keys := []string{"", "\x00", "\x00\x00", "a\x00b", "a\x00c", "\xff\xfe\x00", "{m@v}k\x00", strings.Repeat("\x00", 300)}
	live := map[string]tier.Record{}
	for i, k := range keys {
		r := record(50+i, 0, uint64(i))
		if err := c.Set([]byte(k), r); err != nil {
			t.Fatalf("Set(%q): %v", k, err)
		}
		live[k] = r
	}
	for k, r := range live {
		checkGet(t, c, []byte(k), r)
	}
	checkStats(t, c, live)
	seen := map[string]bool{}
	c.Range(func(key []byte, r tier.Record) bool {
		if !bytes.Equal(r, live[string(key)]) {
			t.Errorf("Range: %q has the wrong record", key)
		}
		seen[string(key)] = true
		return true
	})
	if len(seen) != len(keys) {
		t.Errorf("Range saw %d keys, want %d", len(seen), len(keys))
	}
}

func TestRecordSizes(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 64 << 20, MaxRecord: 6 << 20})
	empty := tier.NewRecord(tier.Header{}, nil) // a 0-byte value
	big := record(5<<20, 0, 5)                  // a multi-MB one
	if err := c.Set([]byte("empty"), empty); err != nil {
		t.Fatal(err)
	}
	if err := c.Set([]byte("big"), big); err != nil {
		t.Fatal(err)
	}
	checkGet(t, c, []byte("empty"), empty)
	checkGet(t, c, []byte("big"), big)
	checkStats(t, c, map[string]tier.Record{"empty": empty, "big": big})
}

func TestTooLarge(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8 << 20, MaxRecord: 128 << 10})
	if c.MaxRecord() != 128<<10 {
		t.Fatalf("MaxRecord = %d", c.MaxRecord())
	}
	r := record(100, 0, 1)

	// Keys of 65536 bytes and more: their length does not fit bigcache's
	// 16-bit field, though key and record are well under MaxRecord. Nor do
	// keys of 65518 or more: bigcache adds its 18-byte header to the
	// length in 16 bits and panics reading them back.
	long := bytes.Repeat([]byte{'k'}, 1<<16)
	for _, n := range []int{1 << 16, 1<<16 - 1, MaxKeyLen + 1} {
		if err := c.Set(long[:n], r); !errors.Is(err, tier.ErrTooLarge) {
			t.Fatalf("Set of a %d-byte key = %v, want ErrTooLarge", n, err)
		}
		checkGet(t, c, long[:n], nil)
		if err := c.Delete(long[:n]); err != nil {
			t.Fatal(err)
		}
	}
	// The longest key accepted.
	if err := c.Set(long[:MaxKeyLen], r); err != nil {
		t.Fatalf("Set of a %d-byte key: %v", MaxKeyLen, err)
	}
	checkGet(t, c, long[:MaxKeyLen], r)
	checkStats(t, c, map[string]tier.Record{string(long[:MaxKeyLen]): r})

	// A record above MaxRecord is refused and drops the older value.
	k := []byte("k")
	if err := c.Set(k, r); err != nil {
		t.Fatal(err)
	}
	exact := record(c.MaxRecord()-len(k), 0, 2)
	if err := c.Set(k, exact); err != nil {
		t.Fatalf("Set of exactly MaxRecord: %v", err)
	}
	tooBig := record(c.MaxRecord()-len(k)+1, 0, 3)
	if err := c.Set(k, tooBig); !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("Set above MaxRecord = %v, want ErrTooLarge", err)
	}
	checkGet(t, c, k, nil)
	checkStats(t, c, map[string]tier.Record{string(long[:MaxKeyLen]): r})
}

func TestMalformedRecord(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8 << 20})
	k := []byte("k")
	good := record(100, 0, 1)
	if err := c.Set(k, good); err != nil {
		t.Fatal(err)
	}
	bad := append(tier.Record(nil), good...)
	bad[0] = 99 // unknown format version
	if err := c.Set(k, bad); !errors.Is(err, tier.ErrCorrupt) {
		t.Fatalf("Set of a malformed record = %v, want ErrCorrupt", err)
	}
	checkGet(t, c, k, nil)
	if err := c.Set(k, tier.Record("short")); !errors.Is(err, tier.ErrCorrupt) {
		t.Fatalf("Set of a short record = %v, want ErrCorrupt", err)
	}

	// Bypass the check, as memory corruption would: Get drops the entry.
	if err := c.set(k, bad, false); err != nil {
		t.Fatal(err)
	}
	checkStats(t, c, map[string]tier.Record{"k": bad})
	checkGet(t, c, k, nil)
	checkStats(t, c, nil)
	n := 0
	c.Range(func([]byte, tier.Record) bool { n++; return true })
	if n != 0 {
		t.Errorf("Range saw %d records", n)
	}
}

func TestExpiry(t *testing.T) {
	start := time.UnixMilli(1_700_000_000_000)
	clock := tier.NewManualClock(start)
	c := newCache(t, Options{MaxBytes: 8 << 20, MaxRecord: 128 << 10, Clock: clock})
	now := start.UnixMilli()
	a := record(100, now+1000, 1)
	b := record(100, 0, 2)
	d := record(100, now+2000, 3)
	for k, r := range map[string]tier.Record{"a": a, "b": b, "d": d} {
		if err := c.Set([]byte(k), r); err != nil {
			t.Fatal(err)
		}
	}
	checkGet(t, c, []byte("a"), a)

	clock.Advance(999 * time.Millisecond)
	checkGet(t, c, []byte("a"), a)
	clock.Advance(time.Millisecond) // ExpireAt <= now: expired
	checkGet(t, c, []byte("a"), nil)
	// Get deleted a; d is expired too but nobody looked.
	clock.Advance(time.Second)
	checkStats(t, c, map[string]tier.Record{"b": b, "d": d})
	var seen []string
	c.Range(func(key []byte, _ tier.Record) bool {
		seen = append(seen, string(key))
		return true
	})
	if len(seen) != 1 || seen[0] != "b" {
		t.Errorf("Range saw %q, want [b]", seen)
	}

	// An expired record evicted for space still reaches the hook, from
	// either store: e is large, d is in a ring.
	e := record(120<<10, now+2500, 4)
	if err := c.Set([]byte("e"), e); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	evicted := map[string]bool{}
	c.SetOnEvict(func(key string, r tier.Record, _ bool) { evicted[key] = true })
	for i := 0; !evicted["e"]; i++ {
		if i > 1000 {
			t.Fatal("e was never evicted")
		}
		if err := c.Set(fmt.Appendf(nil, "large%d", i), record(100<<10, 0, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; !evicted["d"]; i++ {
		if i > 10000 {
			t.Fatal("d was never evicted")
		}
		if err := c.Set(fmt.Appendf(nil, "small%d", i), record(900, 0, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDropStaleKeepsNewRecord covers the race Get resolves under the lock:
// it saw an expired record, then a Set replaced it before the delete.
func TestDropStaleKeepsNewRecord(t *testing.T) {
	clock := tier.NewManualClock(time.UnixMilli(1_000_000))
	c := newCache(t, Options{MaxBytes: 8 << 20, Clock: clock})
	k := []byte("k")
	if err := c.Set(k, record(100, 1_000_000, 1)); err != nil {
		t.Fatal(err)
	}
	fresh := record(100, 2_000_000, 2)
	if err := c.Set(k, fresh); err != nil {
		t.Fatal(err)
	}
	c.dropStale(k)
	checkGet(t, c, k, fresh)
	checkStats(t, c, map[string]tier.Record{"k": fresh})
}

func TestEviction(t *testing.T) {
	const (
		maxBytes = 8 << 20
		size     = 118_000
		n        = 300 // ~35 MB through an 8 MiB cache
	)
	c := newCache(t, Options{MaxBytes: maxBytes, MaxRecord: 128 << 10})
	evicted := map[string]tier.Record{}
	dups := 0
	c.SetOnEvict(func(key string, r tier.Record, _ bool) {
		if _, ok := evicted[key]; ok {
			dups++
		}
		evicted[key] = append(tier.Record(nil), r...) // r is only valid during the call
	})

	all := map[string]tier.Record{}
	for i := range n {
		k := fmt.Sprintf("key-%03d", i)
		all[k] = record(size, 0, uint64(i))
		if err := c.Set([]byte(k), all[k]); err != nil {
			t.Fatal(err)
		}
		if s := c.Stats(); s.Bytes > maxBytes {
			t.Fatalf("after %d sets Bytes %d > %d", i+1, s.Bytes, maxBytes)
		}
	}
	if dups != 0 {
		t.Errorf("%d keys evicted twice", dups)
	}
	live := map[string]tier.Record{}
	for k, r := range all {
		got, err := c.Get([]byte(k))
		ev, wasEvicted := evicted[k]
		switch {
		case err == nil && wasEvicted:
			t.Errorf("%s both live and evicted", k)
		case err == nil:
			if !bytes.Equal(got, r) {
				t.Errorf("%s: wrong record", k)
			}
			live[k] = r
		case !wasEvicted:
			t.Errorf("%s neither live nor evicted: %v", k, err)
		case !bytes.Equal(ev, r):
			t.Errorf("%s evicted with the wrong bytes", k)
		}
	}
	if len(evicted) < n-maxBytes/size {
		t.Errorf("only %d evictions", len(evicted))
	}
	checkStats(t, c, live)
	if s := c.Stats(); s.Evictions != uint64(len(evicted)) {
		t.Errorf("Stats().Evictions = %d, hook saw %d", s.Evictions, len(evicted))
	}
	t.Logf("%d live (%d bytes), %d evicted", len(live), c.Stats().Bytes, len(evicted))

	// Removing the hook stops the calls, not the evictions.
	c.SetOnEvict(nil)
	before := c.Stats().Evictions
	for i := range 100 {
		if err := c.Set(fmt.Appendf(nil, "more-%d", i), record(size, 0, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Stats().Evictions == before {
		t.Error("no evictions counted without a hook")
	}
}

// TestModel runs random operations against a map and compares after each.
func TestModel(t *testing.T) {
	// Both stores evict: rings of 16 × 64 KiB, and the large store's
	// share of 2 MiB.
	c := newCache(t, Options{MaxBytes: 2 << 20, SmallBytes: 1 << 20, Shards: 16, MaxRecord: 64 << 10})
	model := map[string]tier.Record{}
	c.SetOnEvict(func(key string, r tier.Record, _ bool) {
		if !bytes.Equal(r, model[key]) {
			t.Errorf("evicted %q with the wrong record", key)
		}
		delete(model, key)
	})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 10000 {
		k := fmt.Sprintf("k%d", rng.IntN(150))
		switch op := rng.IntN(10); {
		case op < 6:
			size := 40 + rng.IntN(DefaultSmallRecord-40) // a ring's
			if rng.IntN(2) == 0 {
				size = DefaultSmallRecord + rng.IntN(c.MaxRecord()-DefaultSmallRecord+200) // the large store's
			}
			r := record(size, 0, rng.Uint64())
			err := c.Set([]byte(k), r)
			switch {
			case len(k)+len(r) > c.MaxRecord():
				if !errors.Is(err, tier.ErrTooLarge) {
					t.Fatalf("op %d: Set of %d bytes = %v", i, len(r), err)
				}
				delete(model, k)
			case err != nil:
				t.Fatalf("op %d: %v", i, err)
			default:
				model[k] = r
			}
		case op < 8:
			if err := c.Delete([]byte(k)); err != nil {
				t.Fatal(err)
			}
			delete(model, k)
		default:
			checkGet(t, c, []byte(k), model[k])
		}
		checkStats(t, c, model)
	}
	for k, r := range model {
		checkGet(t, c, []byte(k), r)
	}
	if c.Stats().Evictions == 0 {
		t.Error("the model test never evicted")
	}
}

// TestConcurrent hammers one cache from several goroutines (run with
// -race), then checks the accounting against what Range sees.
func TestConcurrent(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 2 << 20})
	var mu sync.Mutex
	hooked := 0
	c.SetOnEvict(func(string, tier.Record, bool) { mu.Lock(); hooked++; mu.Unlock() })

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for range 3000 {
				k := fmt.Appendf(nil, "k%d", rng.IntN(200))
				switch op := rng.IntN(10); {
				case op < 5:
					if err := c.Set(k, record(40+rng.IntN(40000), 0, rng.Uint64())); err != nil {
						t.Error(err)
						return
					}
				case op < 7:
					if err := c.Delete(k); err != nil {
						t.Error(err)
						return
					}
				default:
					if r, err := c.Get(k); err == nil {
						if _, err := r.Header(); err != nil {
							t.Errorf("Get returned a bad record: %v", err)
						}
					} else if !errors.Is(err, tier.ErrNotFound) {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			c.Range(func([]byte, tier.Record) bool { return true })
			_ = c.Stats()
		}
	})
	wg.Wait()

	live := map[string]tier.Record{}
	c.Range(func(key []byte, r tier.Record) bool {
		live[string(key)] = r
		return true
	})
	checkStats(t, c, live)
	s := c.Stats()
	if s.Evictions == 0 || s.Evictions != uint64(hooked) {
		t.Errorf("Evictions = %d, hook saw %d", s.Evictions, hooked)
	}
}

func TestRangeStops(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8 << 20})
	for i := range 10 {
		if err := c.Set(fmt.Appendf(nil, "k%d", i), record(64, 0, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	c.Range(func(key []byte, _ tier.Record) bool {
		n++
		// fn owns key, a copy, and may use the cache. It must not modify
		// the record (TestRangeLargeByReference).
		key[0] = 'x'
		_, _ = c.Get(key)
		return n < 3
	})
	if n != 3 {
		t.Errorf("Range called fn %d times, want 3", n)
	}
	for i := range 10 {
		checkGet(t, c, fmt.Appendf(nil, "k%d", i), record(64, 0, uint64(i)))
	}
}

func TestClose(t *testing.T) {
	c, err := New(Options{MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set([]byte("k"), record(64, 0, 1)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if _, err := c.Get([]byte("k")); !errors.Is(err, tier.ErrClosed) {
		t.Errorf("Get after Close = %v", err)
	}
	if err := c.Set([]byte("k"), record(64, 0, 1)); !errors.Is(err, tier.ErrClosed) {
		t.Errorf("Set after Close = %v", err)
	}
	if err := c.Delete([]byte("k")); !errors.Is(err, tier.ErrClosed) {
		t.Errorf("Delete after Close = %v", err)
	}
	c.Range(func([]byte, tier.Record) bool { t.Error("Range after Close called fn"); return true })
	if s := c.Stats(); s.Bytes != 0 || s.Keys != 0 {
		t.Errorf("Stats after Close = %+v", s)
	}
}

// TestCloseWhileBusy closes a cache under concurrent writers: they must see
// ErrClosed, not a panic, and the accounting must stay empty.
func TestCloseWhileBusy(t *testing.T) {
	c, err := New(Options{MaxBytes: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Appendf(nil, "k%d-%d", g, i%50)
				err := c.Set(k, record(1000, 0, uint64(i)))
				if err == nil {
					_ = c.Delete(k)
				}
				once.Do(func() { close(started) })
				if errors.Is(err, tier.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if s := c.Stats(); s.Bytes != 0 || s.Keys != 0 {
		t.Errorf("Stats after Close = %+v", s)
	}
}

func TestMaxBytesRoundedToMiB(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8<<20 + 12345})
	if got := c.Stats().MaxBytes; got != 8<<20 {
		t.Errorf("Stats().MaxBytes = %d, want %d", got, 8<<20)
	}
}

// TestContains: Contains follows Set and Delete in both stores, counts no
// lookup and does not mark a large entry read (it would outlive a pass of
// the eviction hand).
func TestContains(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8 << 20})
	for _, size := range []int{100, 3000} {
		k := []byte(fmt.Sprintf("key-%d", size))
		if c.Contains(k) {
			t.Fatalf("%s: Contains before Set", k)
		}
		if err := c.Set(k, record(size, 0, 1)); err != nil {
			t.Fatal(err)
		}
		if !c.Contains(k) {
			t.Fatalf("%s: not Contains after Set", k)
		}
		if e := c.large.mu.m[string(k)]; e != nil && e.freq.Load() != 0 {
			t.Errorf("%s: Contains marked the entry read", k)
		}
		if err := c.Delete(k); err != nil {
			t.Fatal(err)
		}
		if c.Contains(k) {
			t.Fatalf("%s: Contains after Delete", k)
		}
	}
	if s := c.Stats(); s.Hits != 0 || s.Misses != 0 {
		t.Errorf("Contains counted lookups: %+v", s)
	}
	if err := c.Set([]byte("k"), record(100, 0, 1)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.Contains([]byte("k")) {
		t.Error("Contains after Close")
	}
}

// TestFits: a large Set that Fits approved evicts nothing, and the first
// Set it refused evicts; small records fit until the rings took their share.
func TestFits(t *testing.T) {
	c := newCache(t, Options{MaxBytes: 8 << 20})
	var n int
	for ; ; n++ {
		k := []byte(fmt.Sprintf("large-%d", n))
		r := record(60<<10, 0, 1)
		fits := c.Fits(k, r)
		if err := c.Set(k, r); err != nil {
			t.Fatal(err)
		}
		ev := c.Stats().Evictions
		if fits && ev != 0 {
			t.Fatalf("Set %d: Fits said yes, yet %d evictions", n, ev)
		}
		if !fits {
			if ev == 0 {
				t.Fatalf("Set %d: Fits said no, yet nothing was evicted", n)
			}
			break
		}
	}
	if used := c.Stats().Bytes; used < 6<<20 {
		t.Errorf("Fits said no at %d records, %d bytes of 8 MiB", n, used)
	}

	s := newCache(t, Options{MaxBytes: 8 << 20, SmallBytes: 1 << 20})
	if !s.Fits([]byte("small"), record(100, 0, 1)) {
		t.Fatal("a small record does not fit an empty cache")
	}
	for i := 0; i < 20000; i++ { // 2.4 MB of small records: past the rings' 1 MiB
		if err := s.Set([]byte(fmt.Sprintf("small-%d", i)), record(100, 0, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Fits([]byte("small"), record(100, 0, 1)) {
		t.Error("a small record fits rings that took their whole share")
	}
}
