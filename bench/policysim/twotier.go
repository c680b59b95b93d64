package main

import "github.com/tiercache/tiercache/policy"

// tier1 is a policy used as L1 of a two-tier model.
type tier1 interface {
	get(k int32) bool
	insert(k int32, size, cost int64, dirty, proven bool)
	has(k int32) bool
	held() held
}

// twoTier composes an L1 policy and the disk model as tier.Hybrid does in
// write-back mode: a GET tries L1, then L2; an L2 hit is copied to L1
// (promotion, clean: L2 keeps its copy); a miss is followed by a SET into
// L1 (dirty). What L1 evicts goes to its eviction hook, which decides what
// is written to L2 (set by each constructor below). A value larger than
// L1's largest record is written to L2 only.
type twoTier struct {
	l1        tier1
	d         *disk
	cost      func(int64) int64
	maxRecord int64
	onL1Miss  func(k int32)
	rejected  int64 // dirty L1 evictions not written to L2
}

func (t *twoTier) request(_ int, k int32, size int64) bool {
	if t.l1.get(k) {
		return true
	}
	if t.onL1Miss != nil {
		t.onL1Miss(k)
	}
	if t.d.get(k) {
		if size <= t.maxRecord {
			t.l1.insert(k, size, t.cost(size), false, true)
		}
		return true
	}
	if size > t.maxRecord {
		t.d.write(k, size)
		return false
	}
	t.l1.insert(k, size, t.cost(size), true, false)
	return false
}

func (t *twoTier) held() held {
	h := held{L1: t.l1.held().Keys, L2: len(t.d.m)}
	h.Keys = h.L2
	for k := range t.l1.(interface{ keys() map[int32]*node }).keys() {
		if !t.d.has(k) {
			h.Keys++
		}
	}
	return h
}

func (t *twoTier) l2Written() (bytes, writes int64) { return t.d.written, t.d.writes }

func (c *clock) keys() map[int32]*node    { return c.m }
func (c *s3fifo) keys() map[int32]*node   { return c.m }
func (c *wtinylfu) keys() map[int32]*node { return c.m }

// accounting is how a two-tier model charges its capacity: L1's bytes,
// largest record and cost per value, L2's budget and cost per value, and
// the bound in entries of the daemon's S3-FIFO ghost.
type accounting struct {
	l1Limit, maxRecord, l2Budget int64
	l1Cost, l2Cost               func(int64) int64
	ghostEntries                 int
}

// daemonAccounting charges as tiercached does for --mem-max memMax and
// --disk-max diskMax (see daemon.go).
func daemonAccounting(memMax, diskMax int64) accounting {
	return accounting{l1Limit: l1Limit(memMax), maxRecord: l1MaxRecord(memMax), l2Budget: l2Budget(diskMax), l1Cost: l1Cost, l2Cost: l2Cost,
		ghostEntries: policy.GhostEntries(memMax + diskMax)}
}

// nominalAccounting charges each value its size against the nominal
// --mem-max and --disk-max.
func nominalAccounting(memMax, diskMax int64) accounting {
	id := func(s int64) int64 { return s }
	return accounting{l1Limit: memMax, maxRecord: memMax, l2Budget: diskMax, l1Cost: id, l2Cost: id,
		ghostEntries: policy.GhostEntries(memMax + diskMax)}
}

// clock is memtier's large store (large.go): CLOCK in write order, a Get
// marks its entry, eviction takes the oldest unmarked entry and moves
// marked ones to the back, unmarked. The 118 KB and 4 MiB records are all
// large records, so bigcache's FIFO rings (records under 1 KiB) take no
// part; they take no memory either, as they are only charged once written.
type clock struct {
	limit   int64
	q       list
	m       map[int32]*node
	onEvict func(e *node)
}

func (c *clock) get(k int32) bool {
	e := c.m[k]
	if e == nil {
		return false
	}
	e.ref = true
	return true
}

func (c *clock) insert(k int32, size, cost int64, dirty, _ bool) {
	if old := c.m[k]; old != nil {
		c.q.remove(old)
	}
	if cost > c.limit {
		delete(c.m, k)
		return
	}
	e := &node{key: k, size: size, cost: cost, dirty: dirty}
	c.q.pushBack(e)
	c.m[k] = e
	for budget := 2*c.q.n + 1; c.q.bytes > c.limit && c.q.head != c.q.tail && budget > 0; budget-- {
		v := c.q.head
		if v.ref {
			v.ref = false
			c.q.moveToBack(v)
			continue
		}
		c.q.remove(v)
		delete(c.m, v.key)
		c.onEvict(v)
	}
}

func (c *clock) has(k int32) bool { return c.m[k] != nil }
func (c *clock) held() held       { return held{Keys: len(c.m)} }

// newToday models tiercached before admission (write-back): memtier's
// CLOCK as L1, every dirty entry L1 evicts written to L2 (demotion),
// disktier's generations with second chance at read time as L2.
func newToday(a accounting) *twoTier {
	t := &twoTier{d: newDisk(a.l2Budget, a.l2Cost, readTime), cost: a.l1Cost, maxRecord: a.maxRecord}
	t.l1 = &clock{limit: a.l1Limit, m: make(map[int32]*node), onEvict: func(e *node) {
		if e.dirty {
			t.d.write(e.key, e.size)
		}
	}}
	return t
}

// newS3FIFO2 is S3-FIFO as L1 deciding what L2 gets: what leaves the
// small queue unread is not written once L2 is full (see disk.hasRoom;
// its key goes to the ghost), what leaves main is demoted. L2 is
// disktier's, whose generations with CLOCK at drop time are S3-FIFO's
// main queue on disk. The ghost covers both tiers and more: policy.GhostSpan
// × the bytes L1 and L2 hold, a.ghostEntries keys at most, so that a key
// asked again up to twice L2's span after it was dropped goes to main. A
// promotion goes to main.
func newS3FIFO2(a accounting) *twoTier {
	t := &twoTier{d: newDisk(a.l2Budget, a.l2Cost, atDrop), cost: a.l1Cost, maxRecord: a.maxRecord}
	c := newS3FIFO(a.l1Limit, policy.GhostSpan*(a.l1Limit+a.l2Budget), a.ghostEntries)
	c.onEvict = func(e *node, fromSmall bool) {
		switch {
		case !e.dirty:
		case fromSmall && !t.d.hasRoom(e.size):
			t.rejected++
		default:
			t.d.write(e.key, e.size)
		}
	}
	t.l1 = c
	return t
}

// newWTinyLFU2 is W-TinyLFU as L1 and as L2's admission filter: a dirty
// entry L1 evicts is written to L2 while L2 fills (disk.hasRoom), then
// only if its sketch count is 2 or more, that is if it was asked for
// again since its miss (or the counts last halved): one-hit wonders are
// not written. (Comparing with the count of
// the entry L2 would evict first, as W-TinyLFU's main does, rejects
// little more: L2 drops whole generations, so right after a drop it has
// room, and its oldest entries are mostly one-hit wonders too.) One
// sketch, sized for the entries both tiers hold (entries), counts every
// request. With split, L1 has its own sketch sized for its entries and
// L2's, sized for L2's, counts only the requests L1 missed. L2's
// generations have CLOCK at drop time, as S3-FIFO 2-tier's.
func newWTinyLFU2(a accounting, entries, l1Entries int, split bool) *twoTier {
	t := &twoTier{d: newDisk(a.l2Budget, a.l2Cost, atDrop), cost: a.l1Cost, maxRecord: a.maxRecord}
	l2sk := newSketch(entries)
	l1sk := l2sk
	if split {
		l1sk = newSketch(l1Entries)
		l2sk = newSketch(entries - l1Entries)
		t.onL1Miss = l2sk.add
	}
	c := newWTinyLFU(a.l1Limit, l1sk)
	c.onEvict = func(e *node) {
		if !e.dirty {
			return
		}
		if l2sk.freq(e.key) < 2 && !t.d.hasRoom(e.size) {
			t.rejected++
			return
		}
		t.d.write(e.key, e.size)
	}
	t.l1 = c
	return t
}
