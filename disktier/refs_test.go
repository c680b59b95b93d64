package disktier

import (
	"errors"
	"fmt"
	"runtime"
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
	before := s.rewrites.Load()
	fillPast(t, s, g, "a")
	if got := s.rewrites.Load() - before; got != 1 {
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
