package disktier

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tiercache/tiercache/tier"
)

// oldestGen returns the id of the store's oldest live generation.
func oldestGen(s *Store) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.gens[0].id
}

// currentGen returns the id of the generation being written.
func currentGen(s *Store) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.gens[len(s.mu.gens)-1].id
}

// fillPast writes fresh 100 KiB entries named prefix-i until generation g
// has been dropped, and returns how many it wrote.
func fillPast(t *testing.T, s *Store, g uint64, prefix string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	n := 0
	for oldestGen(s) <= g {
		if time.Now().After(deadline) {
			t.Fatalf("generation %d not dropped after %d writes", g, n)
		}
		mustSet(t, s, []byte(fmt.Sprintf("%s-%d", prefix, n)), rec(randBytes(100*KiB), 0))
		n++
	}
	return n
}

func present(t *testing.T, s *Store, key string) bool {
	t.Helper()
	_, err := s.Get([]byte(key))
	if err != nil && !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Get %q: %v", key, err)
	}
	return err == nil
}

// TestSecondChanceAtDrop checks L2's CLOCK: an entry read since it was
// written is rewritten into the current generation when its own is
// dropped, once per read; an entry not read is evicted with its
// generation; so is one read, then written again (a write clears the
// mark).
func TestSecondChanceAtDrop(t *testing.T) {
	s := openTest(t, Options{FS: vfs.NewMem(), Dir: "/mem", MaxBytes: 16 * MiB, Generations: 8})
	g := currentGen(s)
	for _, k := range []string{"read", "cold", "overwritten", "deleted"} {
		mustSet(t, s, []byte(k), rec(randBytes(100*KiB), 0))
	}
	for _, k := range []string{"read", "overwritten", "deleted"} { // marks them
		if !present(t, s, k) {
			t.Fatalf("%s missing right after its write", k)
		}
	}
	mustSet(t, s, []byte("overwritten"), rec([]byte("new"), 0))
	if err := s.Write([]tier.Op{{Key: []byte("deleted")}}); err != nil {
		t.Fatal(err)
	}
	if currentGen(s) != g {
		t.Fatalf("generation rolled during setup (%d → %d): records too large for the test", g, currentGen(s))
	}
	before := s.Stats().SecondChances
	fillPast(t, s, g, "a")
	if got := s.Stats().SecondChances - before; got != 1 {
		t.Errorf("%d second chances at the drop of generation %d, want 1 (the entry read)", got, g)
	}
	// Check without reading "read" (a Get would mark it again).
	ptr, err := getCopy(s.h.db, appendPtrKey(nil, []byte("read")))
	if err != nil {
		t.Fatalf("the entry read since written was evicted with its generation: %v", err)
	}
	p, err := decodePointer(ptr)
	if err != nil || p.gen <= g {
		t.Fatalf("the entry read lives in generation %d (err %v), want one after %d", p.gen, err, g)
	}
	if present(t, s, "cold") {
		t.Error("an entry never read survived the drop of its generation")
	}
	if present(t, s, "overwritten") || present(t, s, "deleted") {
		t.Error("an entry written again since its read survived the drop of its generation")
	}
	// Not read again: evicted when its new generation is dropped ("read"
	// was looked at raw, not read).
	fillPast(t, s, p.gen, "b")
	if _, err := getCopy(s.h.db, appendPtrKey(nil, []byte("read"))); !errors.Is(err, pebble.ErrNotFound) {
		t.Errorf("an entry not read since its second chance survived its next drop (err %v)", err)
	}
	if n := s.refs.len(); n != 0 {
		t.Errorf("%d marks left after the drops, want none", n)
	}
}

// TestRefsBound checks that the marks stay within RefEntries: a full set
// takes no new key, and marks of dropped generations are forgotten.
func TestRefsBound(t *testing.T) {
	r := newRefs(refShards * 4)
	for i := range 1000 {
		r.mark([]byte(fmt.Sprint(i)), uint64(1+i%3))
	}
	if n := r.len(); n > refShards*4 {
		t.Fatalf("%d marks in a set of %d", n, refShards*4)
	}
	r.forget(2)
	for i := range 1000 {
		if g := uint64(1 + i%3); g <= 2 && r.marked([]byte(fmt.Sprint(i)), g) {
			t.Fatalf("mark of key %d in dropped generation %d kept", i, g)
		}
	}
	if r.len() == 0 {
		t.Fatal("forget(2) dropped the marks of generation 3")
	}
	if got := RefEntries(1 << 50); got != 4<<20 {
		t.Errorf("RefEntries caps at %d, want 4 Mi", got)
	}
}

// TestRefsBytes measures what a mark costs against RefEntryBytes, the
// figure the memory bound counts.
func TestRefsBytes(t *testing.T) {
	const n = 1 << 18
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := newRefs(n)
	var k [8]byte
	for i := range uint64(n) {
		for j := range k {
			k[j] = byte(i >> (8 * j))
		}
		r.mark(k[:], 1)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.1f bytes per mark (%d marks)", per, r.len())
	if r.len() < n*9/10 || per > RefEntryBytes {
		t.Fatalf("%d marks, %.1f bytes each: want about %d within %d bytes each", r.len(), per, n, RefEntryBytes)
	}
	runtime.KeepAlive(r)
}

// TestSecondChanceYields: a write or a delete of a key between the second
// chance's read of its entry and the rewrite wins; the key is handed back
// for unlinking (which leaves the newer pointer alone).
func TestSecondChanceYields(t *testing.T) {
	for _, del := range []bool{false, true} {
		t.Run(fmt.Sprint("delete=", del), func(t *testing.T) {
			s := openTest(t, Options{FS: vfs.NewMem(), Dir: "/mem", MaxBytes: 16 * MiB, Generations: 8})
			g := currentGen(s)
			k := []byte("k")
			mustSet(t, s, k, rec([]byte("old"), 0))
			e, ok := s.readChance(s.h, g, k, s.nowMs())
			if !ok {
				t.Fatal("readChance refused a fresh entry")
			}
			op := tier.Op{Key: k, Record: rec([]byte("new"), 0)}
			if del {
				op.Record = nil
			}
			if err := s.Write([]tier.Op{op}); err != nil {
				t.Fatal(err)
			}
			left, _ := s.applyChances(s.h, []chance{e}, false)
			if len(left) != 1 || s.rewrites.Load() != 0 {
				t.Fatalf("applyChances after a write: left %q, %d rewrites; want the key back, none", left, s.rewrites.Load())
			}
			r, err := s.Get(k)
			switch {
			case del && err == nil:
				t.Errorf("a deleted key came back with %q", r.Value())
			case !del && (err != nil || string(r.Value()) != "new"):
				t.Errorf("after a write of %q: Get = %q, %v", "new", r.Value(), err)
			}
		})
	}
}

// TestSecondChanceLeftUnlinked: a marked entry the drop does not rewrite
// (expired, or its record corrupt) is unlinked like an unmarked one, and
// the key and expiring counts stay exact; one rewritten keeps its expiry.
func TestSecondChanceLeftUnlinked(t *testing.T) {
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	s := openTest(t, Options{FS: vfs.NewMem(), Dir: "/mem", MaxBytes: 16 * MiB, Generations: 8, Clock: clock})
	g := currentGen(s)
	soon, later := clock.Now().UnixMilli()+1000, clock.Now().UnixMilli()+3600_000
	mustSet(t, s, []byte("expired"), rec(randBytes(100*KiB), soon))
	mustSet(t, s, []byte("corrupt"), rec(randBytes(100*KiB), 0))
	mustSet(t, s, []byte("kept"), rec(randBytes(100*KiB), later))
	mustSet(t, s, []byte("kept-inline"), rec([]byte("x"), later))
	for _, k := range []string{"expired", "corrupt", "kept", "kept-inline"} {
		if !present(t, s, k) {
			t.Fatalf("%s missing", k)
		}
	}
	if err := s.h.db.Set(appendGenKey(nil, nsData, g, []byte("corrupt")), randBytes(100*KiB), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	fillPast(t, s, g, "a")
	for _, k := range []string{"expired", "corrupt"} {
		if _, err := getCopy(s.h.db, appendPtrKey(nil, []byte(k))); !errors.Is(err, pebble.ErrNotFound) {
			t.Errorf("%s: its pointer outlived its generation (err %v)", k, err)
		}
	}
	for _, k := range []string{"kept", "kept-inline"} {
		raw, err := getCopy(s.h.db, appendPtrKey(nil, []byte(k)))
		if err != nil {
			t.Fatalf("%s: rewritten entry missing: %v", k, err)
		}
		if p, _ := decodePointer(raw); p.gen <= g || p.expireAt != later {
			t.Errorf("%s: generation %d, expiry %d; want after %d, %d", k, p.gen, p.expireAt, g, later)
		}
	}
	checkScan(t, s, "after the second chances")
}

// TestSecondChanceCloseDuringDrop: a drop under way when Close begins
// gives no second chance (the rewrites fail with ErrClosed) and unlinks
// the marked entries with the rest: no pointer names the dropped
// generation, inline or not.
func TestSecondChanceCloseDuringDrop(t *testing.T) {
	s := openTest(t, Options{FS: vfs.NewMem(), Dir: "/mem", MaxBytes: 16 * MiB, Generations: 8})
	g := currentGen(s)
	mustSet(t, s, []byte("big"), rec(randBytes(100*KiB), 0))
	mustSet(t, s, []byte("small"), rec([]byte("x"), 0))
	present(t, s, "big")
	present(t, s, "small")
	s.closed.Store(true) // as Close does first, before it waits for the maintainer
	dropped, err := s.dropOldest(&maintState{}, s.h, true)
	s.closed.Store(false)
	if !dropped || err != nil || oldestGen(s) == g {
		t.Fatalf("dropOldest = %v, %v; oldest generation %d (was %d)", dropped, err, oldestGen(s), g)
	}
	for _, k := range []string{"big", "small"} {
		if raw, err := getCopy(s.h.db, appendPtrKey(nil, []byte(k))); err == nil {
			p, _ := decodePointer(raw)
			t.Errorf("%s: pointer left naming generation %d", k, p.gen)
		}
	}
	checkScan(t, s, "after the drop")
}

// TestSecondChanceEveryEntryRead: every entry read right after its write,
// or read over and over by a reader racing the writer. Each drop rewrites
// at most maxChanceShare quarters of its generation, and beyond its first
// entry only while the directory's estimate is within MaxBytes: writes
// never wait out WriteTimeout, and the directory stays within 1.1 ×
// MaxBytes.
func TestSecondChanceEveryEntryRead(t *testing.T) {
	t.Run("read once", func(t *testing.T) {
		const maxBytes, recSize = 64 * MiB, 120832
		dir := t.TempDir()
		s := openTest(t, Options{Dir: dir, MaxBytes: maxBytes})
		var peak int64
		for i := range int(3 * maxBytes / recSize) {
			mustSet(t, s, key(i), rec(randBytes(recSize), 0))
			mustGet(t, s, key(i))
			peak = max(peak, dirSize(t, dir))
		}
		t.Logf("peak directory %.3f × MaxBytes, %d second chances, %d evictions", float64(peak)/maxBytes, s.rewrites.Load(), s.Stats().Evictions)
		if peak > maxBytes*11/10 {
			t.Errorf("directory reached %.3f × MaxBytes, bound 1.1", float64(peak)/maxBytes)
		}
		if s.rewrites.Load() == 0 || s.Stats().Evictions == 0 {
			t.Error("no second chance or no eviction")
		}
	})
	t.Run("read again and again", func(t *testing.T) {
		const maxBytes, recSize = 16 * MiB, 100 * KiB
		s := openTest(t, Options{FS: vfs.NewMem(), Dir: "/mem", MaxBytes: maxBytes, Generations: 8, WriteTimeout: 5 * time.Second})
		var written atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range int(written.Load()) {
					_, _ = s.Get(key(i))
				}
				runtime.Gosched()
			}
		})
		defer func() { close(stop); wg.Wait() }()
		for i := range int(3 * maxBytes / recSize) {
			if err := s.Set(key(i), rec(randBytes(recSize), 0)); err != nil {
				t.Fatalf("write %d: %v (%d second chances, %d evictions)", i, err, s.rewrites.Load(), s.evictions.Load())
			}
			written.Store(int64(i + 1))
		}
		if s.evictions.Load() == 0 {
			t.Error("nothing evicted while every entry was read")
		}
	})
}
