package policy

import (
	"runtime"
	"testing"
)

func TestParse(t *testing.T) {
	for _, n := range Names() {
		e, err := Parse(n)
		if err != nil || e.String() != n || e.RedisName() != "allkeys-"+n {
			t.Errorf("Parse(%q) = %v (%s), %v", n, e, e.RedisName(), err)
		}
	}
	if Names()[0] != Default.String() {
		t.Errorf("Names()[0] = %q, want the default %q", Names()[0], Default)
	}
	if _, err := Parse("volatile-lru"); err == nil {
		t.Error("Parse accepted volatile-lru")
	}
	if !S3FIFO.Admits() || LRU.Admits() || LFU.Admits() || FIFO.Admits() {
		t.Error("only S3FIFO filters what is written to L2")
	}
}

// TestGhost: the ghost forgets its oldest keys past its byte bound and its
// entry bound, and a key taken or added again is remembered once.
func TestGhost(t *testing.T) {
	g := NewGhost(10 << 20) // 640 entries' worth at 16 KiB; GhostEntries gives 1,024
	if len(g.ring) != 1024 {
		t.Fatalf("%d slots, want 1024", len(g.ring))
	}
	for h := range uint64(30) {
		g.Add(h, 1<<20) // 1 MiB each: GhostSpan × 10 fit
	}
	if g.Len() != 20 || g.Take(9) || !g.Take(10) || !g.Take(29) || g.Take(29) {
		t.Fatalf("after 30 adds of 1 MiB to a ghost sized for 10 MiB: len %d, want keys 10..29", g.Len())
	}
	g.Reset()
	for h := range uint64(3000) {
		g.Add(h%1500, 1) // tiny entries: the slot bound holds
	}
	// The newest 1,024 slots hold keys 476..1499.
	if n := g.Len(); n != 1024 || g.Take(475) || !g.Take(476) || !g.Take(1499) || g.Take(0) {
		t.Fatalf("after 3,000 adds of 1 byte: len %d, want keys 476..1499", n)
	}
	// A key added again is remembered from its newest add: the older slot
	// leaving does not forget it.
	g.Reset()
	g.Add(7, 1<<20)
	g.Add(7, 1<<20)
	for h := range uint64(19) {
		g.Add(100+h, 1<<20)
	}
	if !g.Take(7) {
		t.Fatal("a key added twice was forgotten with its older slot")
	}
}

// TestGhostBytes measures a full ghost's memory per entry (Go heap after
// GC), which GhostEntryBytes must cover.
func TestGhostBytes(t *testing.T) {
	const n = 1 << 18
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := NewGhost(int64(n) * 16 << 10)
	for h := range uint64(n) {
		g.Add(h*0x9e3779b97f4a7c15, 16<<10)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.1f bytes per ghost entry (%d entries)", per, g.Len())
	if g.Len() != n || per > GhostEntryBytes {
		t.Fatalf("%d entries, %.1f bytes each: want %d within %d bytes each", g.Len(), per, n, GhostEntryBytes)
	}
}
