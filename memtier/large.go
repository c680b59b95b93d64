package memtier

import (
	"sync"
	"sync/atomic"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/tier"
)

// large holds the records of SmallRecord bytes or more by reference: Set
// keeps the caller's record (it is immutable from then on) and Get returns
// it without copying, so a GET of a 4 MB embedding costs a map lookup and
// the socket write, and a SET no copy beyond reading the request. A record
// neither stored nor being written to a client is freed by the garbage
// collector, or its buffer reused when it came from bufs (the store holds
// a share of it from put until the entry is dropped); records hold no
// pointers, so they cost the collector no scanning.
//
// Eviction is CLOCK (second chance): entries are kept in write order, a Get
// marks its entry referenced, and eviction takes the oldest entry not
// referenced since the hand last passed it, moving referenced ones to the
// back. Hot entries survive a stream of one-off writes, as under LRU, without
// a list update on every read.
type large struct {
	mu struct {
		sync.RWMutex                   // guards the fields below and the entries' links
		m            map[string]*entry // key → entry
		head, tail   *entry            // write order; head is the hand
	}
	cost      atomic.Int64  // sum of entry.cost: what the entries take in memory
	bytes     atomic.Int64  // sum of len(key)+len(record), as Stats reports
	keys      atomic.Int64  // len(mu.m)
	evictions atomic.Uint64 // entries evicted for space
	bufs      *bufpool.Pool // the records' buffers, released as entries are dropped
}

// entry is one record of the large store. Its fields other than ref and
// the links never change after it is stored.
type entry struct {
	key        string
	rec        tier.Record
	cost       int64       // allocation sizes of key, record and entry
	ref        atomic.Bool // read since the hand last passed
	prev, next *entry
}

// entryCost is what an entry's bookkeeping takes besides its key and
// record: the entry itself and its slot in the map.
const entryCost = 128

// costOf returns the memory an entry of key and r takes: the allocations of
// the key, the record (with the room a request buffer may have in front of
// it, tier.ValueHeadroom, when it was built in place; or the whole pooled
// buffer it was built in, of bufSize bytes) and the entry.
func costOf(key []byte, r tier.Record, bufSize int) int64 {
	n := len(r)
	if n > maxSmallAlloc {
		n += tier.ValueHeadroom
	}
	return int64(allocSize(len(key)) + allocSize(max(n, bufSize)) + entryCost)
}

func newLarge(bufs *bufpool.Pool) *large {
	l := &large{bufs: bufs}
	l.mu.m = make(map[string]*entry)
	return l
}

// get returns the entry of key, or nil, and marks it referenced.
func (l *large) get(key string) *entry {
	l.mu.RLock()
	e := l.mu.m[key]
	l.mu.RUnlock()
	if e != nil && !e.ref.Load() {
		e.ref.Store(true) // written only when it changes: no cache-line traffic on hot keys
	}
	return e
}

// has reports whether key is stored, without marking it.
func (l *large) has(key string) bool {
	l.mu.RLock()
	_, ok := l.mu.m[key]
	l.mu.RUnlock()
	return ok
}

// put stores e, replacing any entry of its key, then evicts entries (never
// e) until the cost is within limit, passing each to evicted. It reports
// false, having stored nothing, when e alone exceeds limit.
func (l *large) put(e *entry, limit int64, evicted func(*entry)) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.mu.m[e.key]; old != nil {
		l.removeLocked(old)
		l.bufs.Release(old.rec)
	}
	if e.cost > limit {
		return false
	}
	l.mu.m[e.key] = e
	l.pushLocked(e)
	l.cost.Add(e.cost)
	l.bytes.Add(int64(len(e.key) + len(e.rec)))
	l.keys.Add(1)
	l.evictLocked(limit, evicted)
	return true
}

// evict evicts entries until the cost is within limit.
func (l *large) evict(limit int64, evicted func(*entry)) {
	if l.cost.Load() <= limit {
		return
	}
	l.mu.Lock()
	l.evictLocked(limit, evicted)
	l.mu.Unlock()
}

// evictLocked evicts entries, oldest unreferenced first, until the cost is
// within limit or one entry is left (the one just stored).
func (l *large) evictLocked(limit int64, evicted func(*entry)) {
	// Each pass of the hand clears the marks it passes, so at most two
	// passes over the entries find an unmarked one.
	for budget := 2*l.keys.Load() + 1; l.cost.Load() > limit && l.mu.head != l.mu.tail && budget > 0; budget-- {
		e := l.mu.head
		if e.ref.Load() {
			e.ref.Store(false)
			l.unlinkLocked(e)
			l.pushLocked(e)
			continue
		}
		l.removeLocked(e)
		l.evictions.Add(1)
		if evicted != nil {
			evicted(e) // may retain the record (demotion) before it is released
		}
		l.bufs.Release(e.rec)
	}
}

// remove deletes key's entry if it is e (nil: whatever entry key has) and
// reports whether it deleted one.
func (l *large) remove(key string, e *entry) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.mu.m[key]
	if cur == nil || (e != nil && cur != e) {
		return false
	}
	l.removeLocked(cur)
	l.bufs.Release(cur.rec)
	return true
}

func (l *large) removeLocked(e *entry) {
	delete(l.mu.m, e.key)
	l.unlinkLocked(e)
	l.cost.Add(-e.cost)
	l.bytes.Add(-int64(len(e.key) + len(e.rec)))
	l.keys.Add(-1)
}

func (l *large) pushLocked(e *entry) {
	e.prev, e.next = l.mu.tail, nil
	if l.mu.tail != nil {
		l.mu.tail.next = e
	} else {
		l.mu.head = e
	}
	l.mu.tail = e
}

func (l *large) unlinkLocked(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.mu.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.mu.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// snapshot returns the entries stored now, oldest first.
func (l *large) snapshot() []*entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*entry, 0, len(l.mu.m))
	for e := l.mu.head; e != nil; e = e.next {
		out = append(out, e)
	}
	return out
}

// reset removes every entry.
func (l *large) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.mu.m)
	for e := l.mu.head; e != nil; {
		next := e.next
		e.prev, e.next = nil, nil
		l.bufs.Release(e.rec)
		e = next
	}
	l.mu.head, l.mu.tail = nil, nil
	l.cost.Store(0)
	l.bytes.Store(0)
	l.keys.Store(0)
}
