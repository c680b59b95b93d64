package main

import "container/heap"

// lru is exact LRU over a byte capacity: a hit moves the key to the back,
// a miss inserts it there and evicts from the front until it fits.
type lru struct {
	cap  int64
	q    list
	m    map[int32]*node
	fifo bool // FIFO: a hit does not move the key
}

func newLRU(capacity int64) *lru  { return &lru{cap: capacity, m: make(map[int32]*node)} }
func newFIFO(capacity int64) *lru { return &lru{cap: capacity, m: make(map[int32]*node), fifo: true} }

func (c *lru) request(_ int, k int32, size int64) bool {
	if e := c.m[k]; e != nil {
		if !c.fifo {
			c.q.moveToBack(e)
		}
		return true
	}
	if size > c.cap {
		return false
	}
	e := &node{key: k, size: size, cost: size}
	c.q.pushBack(e)
	c.m[k] = e
	for c.q.bytes > c.cap {
		v := c.q.head
		c.q.remove(v)
		delete(c.m, v.key)
	}
	return false
}

func (c *lru) held() held { return held{Keys: len(c.m)} }

// lfu is LFU with dynamic aging (LFU-DA; Arlitt et al., 2000): an entry's
// priority is its count of requests since it was cached plus the cache's
// age L, and L rises to the priority of each entry evicted, so that
// entries counted long ago do not stay forever. The lowest priority goes
// first, the least recently requested among equals. A miss evicts until
// the new key fits, then caches it with count 1.
type lfu struct {
	cap   int64
	bytes int64
	age   int64
	clock int64
	m     map[int32]*node
	h     nodeHeap
}

func newLFU(capacity int64) *lfu {
	return &lfu{cap: capacity, m: make(map[int32]*node), h: nodeHeap{less: func(a, b *node) bool {
		if a.prio != b.prio {
			return a.prio < b.prio
		}
		return a.seq < b.seq
	}}}
}

func (c *lfu) request(_ int, k int32, size int64) bool {
	c.clock++
	if e := c.m[k]; e != nil {
		e.cnt++
		e.prio, e.seq = c.age+e.cnt, c.clock
		heap.Fix(&c.h, e.hidx)
		return true
	}
	if size > c.cap {
		return false
	}
	for c.bytes+size > c.cap {
		v := heap.Pop(&c.h).(*node)
		c.age = v.prio
		delete(c.m, v.key)
		c.bytes -= v.cost
	}
	e := &node{key: k, size: size, cost: size, cnt: 1, prio: c.age + 1, seq: c.clock}
	heap.Push(&c.h, e)
	c.m[k] = e
	c.bytes += size
	return false
}

func (c *lfu) held() held { return held{Keys: len(c.m)} }
