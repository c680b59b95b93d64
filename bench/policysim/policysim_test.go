package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/policy"
)

// replay runs keys of unit size through c and returns the hit vector.
func replay(c cache, keys []int32, size int64) []bool {
	hits := make([]bool, len(keys))
	for i, k := range keys {
		hits[i] = c.request(i, k, size)
	}
	return hits
}

func count(hits []bool) int {
	n := 0
	for _, h := range hits {
		if h {
			n++
		}
	}
	return n
}

// textbook is the reference string of Belady's anomaly (Silberschatz,
// Operating System Concepts, ch. 10): 1 2 3 4 1 2 5 1 2 3 4 5.
var textbook = []int32{1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5}

func TestLRUTextbook(t *testing.T) {
	// 3 frames: 10 faults; 4 frames: 8 faults.
	for _, tc := range []struct {
		frames int64
		hits   []int // positions that hit
	}{
		{3, []int{7, 8}},
		{4, []int{4, 5, 7, 8}},
	} {
		got := replay(newLRU(tc.frames), textbook, 1)
		if want := positions(tc.hits, len(textbook)); !slices.Equal(got, want) {
			t.Errorf("LRU, %d frames: hits %v, want %v", tc.frames, got, want)
		}
	}
}

func TestFIFOTextbook(t *testing.T) {
	// 3 frames: 9 faults; 4 frames: 10 faults (Belady's anomaly).
	for _, tc := range []struct {
		frames int64
		hits   []int
	}{
		{3, []int{7, 8, 11}},
		{4, []int{4, 5}},
	} {
		got := replay(newFIFO(tc.frames), textbook, 1)
		if want := positions(tc.hits, len(textbook)); !slices.Equal(got, want) {
			t.Errorf("FIFO, %d frames: hits %v, want %v", tc.frames, got, want)
		}
	}
}

func TestOPTTextbook(t *testing.T) {
	// 3 frames: 7 faults under demand paging; bypass does no better here.
	got := replay(newBelady(nextUses(textbook), 3), textbook, 1)
	if n := count(got); n != 5 {
		t.Errorf("OPT, 3 frames: %d hits (%v), want 5", n, got)
	}
}

func TestLFUAging(t *testing.T) {
	// Capacity 2. A is counted 5 times, then B and C alternate. Without
	// aging A would stay forever and B and C evict each other. With
	// dynamic aging the age L rises by one per eviction (B1 → L=1, C2 →
	// 2, B3 → 3, C4 → 4) until the newcomer ties A at 5; A, requested
	// longer ago, goes, and B and C then hit.
	keys := []int32{'A', 'A', 'A', 'A', 'A', 'B', 'C', 'B', 'C', 'B', 'C', 'B', 'C'}
	got := replay(newLFU(2), keys, 1)
	want := positions([]int{1, 2, 3, 4, 11, 12}, len(keys))
	if !slices.Equal(got, want) {
		t.Errorf("LFU-DA: hits %v, want %v", got, want)
	}
}

// oneHitWonders is a frequent set of 20 keys, each requested twice in a
// row first, then in rounds, each request followed by a key never seen
// before. The reuse distance of a frequent key is 40 distinct keys.
func oneHitWonders() []int32 {
	var keys []int32
	for f := range int32(20) {
		keys = append(keys, f, f)
	}
	next := int32(1000)
	for range 50 {
		for f := range int32(20) {
			keys = append(keys, f, next)
			next++
		}
	}
	return keys
}

func TestScanResistance(t *testing.T) {
	// 30 entries of 100 bytes: LRU keeps the last 30 keys, never a
	// frequent key 40 requests later.
	keys := oneHitWonders()
	const size, capacity = 100, 3000
	lruHits := count(replay(newLRU(capacity), keys, size))
	s3 := count(replay(newS3FIFO(capacity, capacity-capacity/10, 0), keys, size))
	w := count(replay(newWTinyLFU(capacity, newSketch(30)), keys, size))
	// The warm-up's second requests and part of the first round.
	if lruHits > 40 {
		t.Errorf("LRU: %d hits, want at most 40", lruHits)
	}
	// Both keep the frequent set: a hit on each of its 1,000 requests
	// (S3-FIFO's main queue, W-TinyLFU's main, after the first round).
	if s3 < 1000 || w < 980 {
		t.Errorf("S3-FIFO %d hits, W-TinyLFU %d, LRU %d: want the frequent set kept", s3, w, lruHits)
	}
}

func TestTodayDemotesEveryEviction(t *testing.T) {
	// L1 holds 2 values, L2 plenty: of 10 new keys, 8 are evicted from
	// L1, and today every one is written to L2.
	c := newToday(nominalAccounting(2*SmallValue, 100*SmallValue))
	for i := range int32(10) {
		c.request(int(i), i, SmallValue)
	}
	if b, w := c.l2Written(); w != 8 || b != 8*SmallValue {
		t.Errorf("L2 writes %d (%d bytes), want 8", w, b)
	}
	// A hit on L2 promotes: the key is then in L1 (clean) and L2.
	if !c.request(10, 0, SmallValue) || !c.l1.has(0) || !c.d.has(0) {
		t.Error("an L2 hit was not promoted")
	}
	// Evicting the clean copy writes nothing.
	c.request(11, 20, SmallValue)
	c.request(12, 21, SmallValue)
	if _, w := c.l2Written(); w != 10 {
		t.Errorf("L2 writes %d, want 10 (two dirty evictions, the clean copy dropped)", w)
	}
}

func TestTwoTierAdmission(t *testing.T) {
	// Keys asked once are written to L2 by the admission policies only
	// while it fills: L2 of 32 values, generations of 1, so 31 writes.
	a := nominalAccounting(2*SmallValue, 32*SmallValue)
	for _, c := range []*twoTier{newS3FIFO2(a), newWTinyLFU2(a, 34, 2, false)} {
		for i := range int32(100) {
			c.request(int(i), i, SmallValue)
		}
		if _, w := c.l2Written(); w != 31 || c.rejected < 60 {
			t.Errorf("%T: %d L2 writes, %d rejected; want 31 and at least 60", c.l1, w, c.rejected)
		}
	}
}

func TestDiskGenerations(t *testing.T) {
	// 32 generations of 1 value: the 33rd write drops the oldest
	// generation, the first key.
	d := newDisk(32*SmallValue, func(s int64) int64 { return s }, readTime)
	for k := range int32(33) {
		d.write(k, SmallValue)
	}
	if d.has(0) || !d.has(1) || !d.has(2) || len(d.m) != 32 {
		t.Errorf("after 33 writes: has(0)=%v has(1)=%v has(2)=%v, %d keys; want the first generation dropped", d.has(0), d.has(1), d.has(2), len(d.m))
	}
	// Key 1 is in the oldest generation, at risk: a hit rewrites it.
	w := d.writes
	if !d.get(1) || d.writes != w+1 {
		t.Error("a hit at risk was not given a second chance")
	}
	if !d.get(32) || d.writes != w+1 {
		t.Error("a hit on the newest generation was rewritten")
	}
}

func TestDiskClockAtDrop(t *testing.T) {
	// 32 generations of 1 value. Key 0 is read, key 1 is not: the 33rd
	// write drops generation 1, rewriting key 0 (one write more), which
	// takes generation 2 and key 1 with it.
	d := newDisk(32*SmallValue, func(s int64) int64 { return s }, atDrop)
	for k := range int32(32) {
		d.write(k, SmallValue)
	}
	if !d.get(0) || d.writes != 32 {
		t.Fatalf("a hit: %d writes, want 32 (no rewrite when read)", d.writes)
	}
	d.write(32, SmallValue)
	if !d.has(0) || d.has(1) || !d.has(2) || d.writes != 34 {
		t.Fatalf("after the drops: has(0)=%v has(1)=%v has(2)=%v, %d writes; want key 0 rewritten (34 writes), key 1 dropped", d.has(0), d.has(1), d.has(2), d.writes)
	}
	// Key 0 is now the newest but one: not read again, it goes when its
	// new generation does, 32 writes later, without a rewrite.
	for k := range int32(31) {
		d.write(100+k, SmallValue)
	}
	if !d.has(0) {
		t.Fatal("key 0 dropped before its new generation")
	}
	d.write(131, SmallValue)
	if d.has(0) || d.writes != 34+32 {
		t.Errorf("has(0)=%v, %d writes; want key 0 dropped with its new generation, no rewrite (66 writes)", d.has(0), d.writes)
	}

	// A write clears the mark: key 5, read then written again, is dropped
	// with the generation of its newer write; the older generation's
	// drop leaves it be.
	d = newDisk(32*SmallValue, func(s int64) int64 { return s }, atDrop)
	for k := range int32(32) {
		d.write(k, SmallValue)
	}
	d.get(5)
	d.write(5, SmallValue) // generation 33; generation 1 goes
	for k := range int32(31) {
		d.write(100+k, SmallValue)
	}
	if !d.has(5) || d.writes != 64 {
		t.Fatalf("has(5)=%v, %d writes; want key 5 kept by its newer write, no rewrite (64 writes)", d.has(5), d.writes)
	}
	d.write(131, SmallValue)
	if d.has(5) || d.writes != 65 {
		t.Errorf("has(5)=%v, %d writes; want key 5 dropped with generation 33, unread since written (65 writes)", d.has(5), d.writes)
	}

	// Every entry read: one write more rewrites each once and ends, the
	// rewrites unmarked; the new key, older than the rewrites, goes.
	d = newDisk(32*SmallValue, func(s int64) int64 { return s }, atDrop)
	for k := range int32(32) {
		d.write(k, SmallValue)
		d.get(k)
	}
	d.write(32, SmallValue)
	if d.writes != 33+32 || len(d.m) != 32 || d.has(32) || d.live > d.budget {
		t.Errorf("%d writes, %d keys, has(32)=%v, %d of %d bytes; want 65 writes, the 32 read keys kept", d.writes, len(d.m), d.has(32), d.live, d.budget)
	}
}

func TestGhostEntryCap(t *testing.T) {
	// Room for a thousand keys' bytes, but 3 entries: the ghost forgets by
	// count.
	g := newGhost(1000*SmallValue, 3)
	for k := range int32(5) {
		g.add(k, SmallValue)
	}
	for k, want := range []bool{false, false, true, true, true} {
		if got := g.take(int32(k)); got != want {
			t.Errorf("take(%d) = %v, want %v", k, got, want)
		}
	}
	// A key taken still holds its entry until it leaves the FIFO, as in
	// policy.Ghost: with 10 and 11 added and 11 taken, adding 12 and 13
	// forgets 10 (four entries), though only three keys were remembered.
	g = newGhost(1000*SmallValue, 3)
	g.add(10, SmallValue)
	g.add(11, SmallValue)
	g.take(11)
	g.add(12, SmallValue)
	g.add(13, SmallValue)
	if g.take(10) || !g.take(12) || !g.take(13) {
		t.Error("a taken entry did not count against the cap")
	}
	// No cap: bytes alone bound it.
	g = newGhost(2*SmallValue, 0)
	for k := range int32(5) {
		g.add(k, SmallValue)
	}
	if g.take(2) || !g.take(3) || !g.take(4) {
		t.Error("the byte bound did not hold")
	}
}

func TestS3FIFO2Ghost(t *testing.T) {
	// The two-tier ghost spans policy.GhostSpan × both tiers' bytes, the
	// daemon's entry bound at most.
	a := daemonAccounting(64*MiB, 640*MiB)
	c := newS3FIFO2(a).l1.(*s3fifo)
	if c.g.limit != policy.GhostSpan*(a.l1Limit+a.l2Budget) || c.g.maxEntries != policy.GhostEntries(704*MiB) {
		t.Errorf("ghost of %d bytes, %d entries; want %d and %d", c.g.limit, c.g.maxEntries, policy.GhostSpan*(a.l1Limit+a.l2Budget), policy.GhostEntries(704*MiB))
	}
	if c := newToday(a); c.d.mode != readTime {
		t.Error("the today model's L2 does not rewrite at read time")
	}
	for _, c := range []*twoTier{newS3FIFO2(a), newWTinyLFU2(a, 6000, 545, false), newWTinyLFU2(a, 6000, 545, true)} {
		if c.d.mode != atDrop {
			t.Errorf("%T: L2 mode %d, want CLOCK at drop time", c.l1, c.d.mode)
		}
	}
}

// small is a shape for tests: 3,000 prompts, 4,000 + 8,000 requests.
func small() Shape {
	return Shape{Keys: 3000, Warm: 4000, Measured: 8000, LoopFactor: 1.1, Seed: 7}
}

func TestBounds(t *testing.T) {
	// 1 MiB + 10 MiB: about 95 values of 118 KB, 2 of 4 MiB.
	cfg := Config{Shape: small(), Values: []Values{Uniform, Mixed}, MemMax: []int64{1 * MiB, 3 * MiB},
		DiskFactor: 10, Policies: Policies, Workers: 2}
	cells := Simulate(cfg, nil)
	if len(cells) != 2*6*2 {
		t.Fatalf("%d cells, want 24", len(cells))
	}
	for _, c := range cells {
		name := c.Trace + " " + string(c.Values) + " " + capacity(c.MemMax, 10)
		if c.Bound > c.Compulsory+1e-9 {
			t.Errorf("%s: bound %.4f above the compulsory ceiling %.4f", name, c.Bound, c.Compulsory)
		}
		for _, r := range c.Results {
			if r.Hit > c.Bound+1e-9 {
				t.Errorf("%s: %s %.4f above the bound %.4f", name, r.Policy, r.Hit, c.Bound)
			}
			// OPT is optimal for one value size only.
			if c.Values == Uniform && r.Hit > c.OPT()+1e-9 {
				t.Errorf("%s: %s %.4f above OPT %.4f", name, r.Policy, r.Hit, c.OPT())
			}
		}
		if c.Trace == "loop" {
			lru := c.Results[1]
			if lru.Hit != 0 {
				t.Errorf("%s: LRU hits %.4f on a loop larger than the cache, want 0", name, lru.Hit)
			}
		}
	}
}

func TestReport(t *testing.T) {
	cfg := Config{Shape: small(), Values: []Values{Uniform}, MemMax: []int64{1 * MiB}, DiskFactor: 10, Policies: Policies[:2], Workers: 1}
	var b strings.Builder
	Report(&b, cfg, Simulate(cfg, nil))
	if !strings.Contains(b.String(), "| zipf-1.0 | 1 + 10 MiB |") {
		t.Errorf("report lacks the zipf-1.0 row:\n%s", b.String())
	}
}

func positions(at []int, n int) []bool {
	v := make([]bool, n)
	for _, i := range at {
		v[i] = true
	}
	return v
}

// TestRollout: from a trace's rollout on, a policy starts empty (the
// daemon drops the old version's keys), and what both instances wrote to
// L2 is counted.
func TestRollout(t *testing.T) {
	tr := Trace{Name: "tiny", Keys: []int32{1, 2, 1, 2, 1, 2}, Warm: 0, Rollout: 4}
	c := &rolledOut{before: newLRU(10 * SmallValue), after: newLRU(10 * SmallValue), at: tr.Rollout}
	if hit, _, _ := run(c, tr, Uniform); hit != 2.0/6 {
		t.Errorf("hit ratio %.3f, want 2/6: the keys asked again after the rollout miss", hit)
	}
	a := daemonAccounting(64*MiB, 640*MiB)
	two := &rolledOut{before: newS3FIFO2(a), after: newS3FIFO2(a), at: 2}
	big := Trace{Name: "big", Keys: []int32{1, 2, 3, 4}, Rollout: 2}
	run(two, big, Uniform)
	if b, w := two.l2Written(); b != 0 || w != 0 {
		t.Errorf("L2 written %d bytes in %d writes with nothing evicted", b, w)
	}
}
