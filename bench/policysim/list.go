package main

// node is one cached entry in the simulated policies' queues.
type node struct {
	key        int32
	size       int64 // the value's bytes
	cost       int64 // what it is charged against the capacity
	prev, next *node
	freq       uint8 // S3-FIFO's 2-bit counter
	ref        bool  // CLOCK's mark
	dirty      bool  // not in L2 yet (two-tier models)
	q          uint8 // which queue of its policy holds it
	prio       int64 // heap priority (OPT: next use; LFU: count + age)
	cnt        int64 // LFU's count of requests while cached
	seq        int64 // heap tie-break: last access
	hidx       int   // heap index
}

// list is a doubly linked queue: front is the oldest (the LRU or FIFO
// end), back the newest. bytes is the sum of its nodes' cost.
type list struct {
	head, tail *node
	bytes      int64
	n          int
}

func (l *list) pushBack(e *node) {
	e.prev, e.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
	l.bytes += e.cost
	l.n++
}

func (l *list) remove(e *node) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
	l.bytes -= e.cost
	l.n--
}

func (l *list) moveToBack(e *node) {
	l.remove(e)
	l.pushBack(e)
}

// nodeHeap is a binary heap of nodes; less orders them, the root first.
type nodeHeap struct {
	a    []*node
	less func(a, b *node) bool
}

func (h *nodeHeap) Len() int           { return len(h.a) }
func (h *nodeHeap) Less(i, j int) bool { return h.less(h.a[i], h.a[j]) }
func (h *nodeHeap) Swap(i, j int) {
	h.a[i], h.a[j] = h.a[j], h.a[i]
	h.a[i].hidx, h.a[j].hidx = i, j
}
func (h *nodeHeap) Push(x any) {
	e := x.(*node)
	e.hidx = len(h.a)
	h.a = append(h.a, e)
}
func (h *nodeHeap) Pop() any {
	e := h.a[len(h.a)-1]
	h.a[len(h.a)-1] = nil
	h.a = h.a[:len(h.a)-1]
	e.hidx = -1
	return e
}

// ghost is a FIFO of recently evicted keys (no values), bounded by the
// bytes the keys' values had and, when maxEntries is not 0, by its
// entries. As in policy.Ghost, an entry counts until it leaves the FIFO,
// even once taken or superseded by a newer entry of its key.
type ghost struct {
	q          []ghostEnt
	head       int
	m          map[int32]int64 // key → seq of its newest entry in q
	seq        int64
	bytes      int64
	limit      int64
	maxEntries int
}

// ghostEnt is one entry of the ghost's FIFO.
type ghostEnt struct {
	key  int32
	size int64
	seq  int64
}

// newGhost returns a ghost of limit bytes' worth of keys, maxEntries
// entries at most (0: no bound on entries).
func newGhost(limit int64, maxEntries int) *ghost {
	return &ghost{m: make(map[int32]int64), limit: limit, maxEntries: maxEntries}
}

// add remembers k, whose value had size bytes, forgetting the oldest
// entries past the bounds.
func (g *ghost) add(k int32, size int64) {
	g.seq++
	g.q = append(g.q, ghostEnt{k, size, g.seq})
	g.m[k] = g.seq
	g.bytes += size
	for g.head < len(g.q) && (g.bytes > g.limit || g.maxEntries > 0 && len(g.q)-g.head > g.maxEntries) {
		e := g.q[g.head]
		g.head++
		g.bytes -= e.size
		if g.m[e.key] == e.seq {
			delete(g.m, e.key)
		}
	}
	if g.head > 1024 && g.head > len(g.q)/2 {
		g.q = append(g.q[:0], g.q[g.head:]...)
		g.head = 0
	}
}

// take reports whether k is in the ghost and removes it.
func (g *ghost) take(k int32) bool {
	if _, ok := g.m[k]; ok {
		delete(g.m, k)
		return true
	}
	return false
}
