package main

// Queues of the S3-FIFO and W-TinyLFU nodes.
const (
	qSmall = iota + 1
	qMain
	qWindow
	qProbation
	qProtected
)

// s3fifo is S3-FIFO (Yang et al., SOSP '23) over a byte capacity: a small
// FIFO of 10% of the bytes that new keys enter, a main FIFO of the rest
// with a 2-bit counter per entry (CLOCK with up to 3 passes), and a ghost
// FIFO of the keys the small queue dropped, holding as many bytes' worth
// of keys as the main queue (ghostBytes; the two-tier model's ghost is
// larger, see newS3FIFO2). A hit increments the counter
// (up to 3). A new key goes to main if the ghost has it, else to small.
// Eviction takes from small while it holds 10% or more: its oldest entry
// moves to main if it was hit while in small (the counter carries over),
// else leaves, its key going to the ghost; from main, the oldest entry
// with a zero counter leaves, those with a count are reinserted with one
// less.
//
// onEvict, when set, is called for every entry that leaves, with
// fromSmall true for the small queue's rejects: the two-tier variant
// writes to L2 only what leaves main.
type s3fifo struct {
	cap, smallCap int64
	small, main   list
	m             map[int32]*node
	g             *ghost
	onEvict       func(e *node, fromSmall bool)
}

// newS3FIFO returns S3-FIFO of capacity bytes whose ghost remembers
// ghostBytes' worth of keys, ghostEntries keys at most (0: no bound).
func newS3FIFO(capacity, ghostBytes int64, ghostEntries int) *s3fifo {
	return &s3fifo{cap: capacity, smallCap: capacity / 10, m: make(map[int32]*node), g: newGhost(ghostBytes, ghostEntries)}
}

func (c *s3fifo) get(k int32) bool {
	e := c.m[k]
	if e == nil {
		return false
	}
	if e.freq < 3 {
		e.freq++
	}
	return true
}

// insert caches k (not cached yet); toMain puts it straight in main (a
// promotion from L2: the key has proved itself).
func (c *s3fifo) insert(k int32, size, cost int64, dirty, toMain bool) {
	if cost > c.cap {
		return
	}
	if c.g.take(k) {
		toMain = true
	}
	e := &node{key: k, size: size, cost: cost, dirty: dirty, q: qSmall}
	if toMain {
		e.q = qMain
		c.main.pushBack(e)
	} else {
		c.small.pushBack(e)
	}
	c.m[k] = e
	for c.small.bytes+c.main.bytes > c.cap {
		if c.small.n > 0 && (c.small.bytes >= c.smallCap || c.main.n == 0) {
			c.evictSmall()
		} else {
			c.evictMain()
		}
	}
}

func (c *s3fifo) evictSmall() {
	t := c.small.head
	c.small.remove(t)
	if t.freq > 0 {
		t.q = qMain
		c.main.pushBack(t)
		return
	}
	delete(c.m, t.key)
	c.g.add(t.key, t.size)
	if c.onEvict != nil {
		c.onEvict(t, true)
	}
}

func (c *s3fifo) evictMain() {
	for {
		t := c.main.head
		if t.freq > 0 {
			t.freq--
			c.main.moveToBack(t)
			continue
		}
		c.main.remove(t)
		delete(c.m, t.key)
		if c.onEvict != nil {
			c.onEvict(t, false)
		}
		return
	}
}

func (c *s3fifo) request(_ int, k int32, size int64) bool {
	if c.get(k) {
		return true
	}
	c.insert(k, size, size, false, false)
	return false
}

func (c *s3fifo) has(k int32) bool { return c.m[k] != nil }
func (c *s3fifo) held() held       { return held{Keys: len(c.m)} }
