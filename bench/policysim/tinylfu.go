package main

// sketch is Caffeine's frequency sketch: a count-min sketch of 4 rows of
// 4-bit counters (here a byte each, capped at 15), 16 counters per entry
// the cache holds in all, every count halved after 10 × entries additions
// (aging). No doorkeeper.
type sketch struct {
	rows         [4][]uint8
	mask         uint64
	adds, sample int64
}

func newSketch(entries int) *sketch {
	entries = max(entries, 16)
	w := 1
	for w < 4*entries {
		w <<= 1
	}
	s := &sketch{mask: uint64(w - 1), sample: 10 * int64(entries)}
	for i := range s.rows {
		s.rows[i] = make([]uint8, w)
	}
	return s
}

var sketchSeeds = [4]uint64{0xc3a5c85c97cb3127, 0xb492b66fbe98f273, 0x9ae16a3b2f90404f, 0xcbf29ce484222325}

func (s *sketch) slot(k int32, row int) uint64 {
	return mix64(uint64(uint32(k))*0x9e3779b97f4a7c15+sketchSeeds[row]) & s.mask
}

// add counts one request of k.
func (s *sketch) add(k int32) {
	added := false
	for r := range s.rows {
		i := s.slot(k, r)
		if s.rows[r][i] < 15 {
			s.rows[r][i]++
			added = true
		}
	}
	if !added {
		return
	}
	if s.adds++; s.adds >= s.sample {
		for r := range s.rows {
			for i := range s.rows[r] {
				s.rows[r][i] >>= 1
			}
		}
		s.adds /= 2
	}
}

// freq is k's estimated count: the least of its counters.
func (s *sketch) freq(k int32) uint8 {
	f := uint8(15)
	for r := range s.rows {
		f = min(f, s.rows[r][s.slot(k, r)])
	}
	return f
}

// wtinylfu is W-TinyLFU as in Caffeine, over a byte capacity: a window
// LRU of 1% of the bytes that new keys enter, and a segmented LRU main of
// the rest (probation 20%, protected 80%). Every request counts in the
// sketch (a miss is the key's first appearance: the SET that follows is
// not counted again). The window's oldest entries become candidates for
// main; while main is over its share, a candidate is compared with
// probation's oldest entry (protected's when probation holds only the
// candidate) and the one with the lower sketch count leaves (the
// candidate when equal). A hit in probation moves the entry to protected,
// whose oldest go back to probation when it is over its share. The
// window's share is fixed (Caffeine adapts it by hill climbing) and
// Caffeine's random admission of warm candidates, a defence against
// attacks, is left out: runs are deterministic.
//
// onEvict, when set, is called for every entry that leaves.
type wtinylfu struct {
	sk                       *sketch
	count                    bool // get adds to sk (false: the caller does)
	winCap, mainCap, protCap int64
	win, prob, prot          list
	m                        map[int32]*node
	onEvict                  func(e *node)
}

func newWTinyLFU(capacity int64, sk *sketch) *wtinylfu {
	win := capacity / 100
	main := capacity - win
	return &wtinylfu{sk: sk, count: true, winCap: win, mainCap: main, protCap: main * 8 / 10, m: make(map[int32]*node)}
}

func (c *wtinylfu) get(k int32) bool {
	if c.count {
		c.sk.add(k)
	}
	e := c.m[k]
	if e == nil {
		return false
	}
	switch e.q {
	case qWindow:
		c.win.moveToBack(e)
	case qProtected:
		c.prot.moveToBack(e)
	case qProbation:
		c.prob.remove(e)
		e.q = qProtected
		c.prot.pushBack(e)
		for c.prot.bytes > c.protCap && c.prot.head != e {
			v := c.prot.head
			c.prot.remove(v)
			v.q = qProbation
			c.prob.pushBack(v)
		}
	}
	return true
}

// insert caches k (not cached yet) in the window.
func (c *wtinylfu) insert(k int32, size, cost int64, dirty, _ bool) {
	if cost > c.winCap+c.mainCap {
		return
	}
	e := &node{key: k, size: size, cost: cost, dirty: dirty, q: qWindow}
	c.win.pushBack(e)
	c.m[k] = e
	for c.win.bytes > c.winCap {
		cand := c.win.head
		c.win.remove(cand)
		cand.q = qProbation
		c.prob.pushBack(cand)
		c.admit(cand)
	}
}

// admit evicts from main until it is within its share, the candidate
// cand (just added to probation) competing with each victim.
func (c *wtinylfu) admit(cand *node) {
	for c.prob.bytes+c.prot.bytes > c.mainCap {
		v := c.prob.head
		if v == cand { // cand is probation's newest: it is alone there
			v = c.prot.head
		}
		if v == nil || cand.cost > c.mainCap || c.sk.freq(cand.key) <= c.sk.freq(v.key) {
			c.evict(cand)
			return
		}
		c.evict(v)
	}
}

func (c *wtinylfu) evict(e *node) {
	switch e.q {
	case qWindow:
		c.win.remove(e)
	case qProbation:
		c.prob.remove(e)
	case qProtected:
		c.prot.remove(e)
	}
	delete(c.m, e.key)
	if c.onEvict != nil {
		c.onEvict(e)
	}
}

func (c *wtinylfu) request(_ int, k int32, size int64) bool {
	if c.get(k) {
		return true
	}
	c.insert(k, size, size, false, false)
	return false
}

func (c *wtinylfu) has(k int32) bool { return c.m[k] != nil }
func (c *wtinylfu) held() held       { return held{Keys: len(c.m)} }
