package memtier

import (
	"sync"
	"sync/atomic"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/policy"
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
// Eviction follows the store's policy (package policy):
//   - S3FIFO: new entries enter the small queue (a tenth of the budget), a
//     Get counts up to 3 reads per entry without a lock (an atomic add).
//     The small queue's oldest entry moves to main if it was read there,
//     else leaves unread (rejected: its key goes to the ghost, and the
//     eviction hook hears it was not proven). Main is a CLOCK: its oldest
//     entry leaves if its count is 0, else goes to the back with one less.
//     A key the ghost remembers, or a proven one (a promotion from L2),
//     enters main directly.
//   - LRU: one queue in recency order; a Get moves its entry to the back
//     (under the write lock).
//   - LFU: Redis' approximation: a logarithmic counter per entry that a
//     Get may increment and idle minutes decrement; eviction takes the
//     least frequent of lfuSamples entries drawn at random (of all of
//     them, the oldest first on a tie, when there are lfuExact or fewer).
//   - FIFO: one queue in write order; reads change nothing.
type large struct {
	policy policy.Eviction
	hash   func(string) uint64 // keys' hashes, for the ghost
	now    func() int64        // Unix minutes, for LFU's decay
	mu     struct {
		sync.RWMutex                   // guards the fields below and the entries' links
		m            map[string]*entry // key → entry
		small, main  queue             // small: S3FIFO only
		ghost        *policy.Ghost     // S3FIFO only
		sample       []*entry          // LFU only: every entry, for sampling
		rng          uint64            // LFU only: the sampler's xorshift state
	}
	cost      atomic.Int64  // sum of entry.cost: what the entries take in memory
	bytes     atomic.Int64  // sum of len(key)+len(record), as Stats reports
	keys      atomic.Int64  // len(mu.m)
	evictions atomic.Uint64 // entries evicted for space
	admitted  atomic.Uint64 // entries admitted to the main queue (every entry but S3FIFO's small ones)
	rejected  atomic.Uint64 // S3FIFO: entries that left the small queue unread
	bufs      *bufpool.Pool // the records' buffers, released as entries are dropped
}

// queue is a list of entries, oldest at head, with their total cost.
type queue struct {
	head, tail *entry
	cost       int64
}

// Queues an entry may be in.
const (
	inMain uint8 = iota
	inSmall
)

// entry is one record of the large store. Its key, record and cost never
// change after it is stored.
type entry struct {
	key        string
	rec        tier.Record
	cost       int64         // allocation sizes of key, record and entry
	freq       atomic.Uint32 // S3FIFO: reads counted, up to 3; LFU: the logarithmic counter
	access     atomic.Int64  // LFU: Unix minute of the last read
	q          uint8         // inMain or inSmall
	idx        int           // LFU: index in mu.sample
	prev, next *entry
}

// entryCost is what an entry's bookkeeping takes besides its key and
// record: the entry itself and its slot in the map.
const entryCost = 128

// S3-FIFO's parameters (SOSP '23): the small queue's share of the budget
// and the most reads an entry's counter holds.
const (
	smallShare = 10 // the small queue holds at most 1/smallShare of the budget
	maxFreq    = 3
)

// LFU's parameters, Redis' defaults: the samples an eviction compares,
// the counter of a new entry, the counter's logarithmic factor (about a
// million reads to saturate at 255) and its decay (one per idle minute).
const (
	lfuSamples   = 5
	lfuExact     = 16
	lfuInit      = 5
	lfuLogFactor = 10
)

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

// newLarge returns a store evicting by p; ghostBytes sizes S3FIFO's ghost
// (policy.NewGhost).
func newLarge(bufs *bufpool.Pool, p policy.Eviction, ghostBytes int64, hash func(string) uint64, now func() int64) *large {
	l := &large{bufs: bufs, policy: p, hash: hash, now: now}
	l.mu.m = make(map[string]*entry)
	l.mu.rng = 0x9e3779b97f4a7c15
	if p == policy.S3FIFO {
		l.mu.ghost = policy.NewGhost(ghostBytes)
	}
	return l
}

// get returns the entry of key, or nil, and counts the read as the policy
// does.
func (l *large) get(key string) *entry {
	l.mu.RLock()
	e := l.mu.m[key]
	l.mu.RUnlock()
	if e == nil {
		return nil
	}
	switch l.policy {
	case policy.S3FIFO:
		// Written only when it changes: no cache-line traffic on hot keys.
		if f := e.freq.Load(); f < maxFreq {
			e.freq.CompareAndSwap(f, f+1)
		}
	case policy.LRU:
		l.mu.Lock()
		if l.mu.m[key] == e {
			l.mu.main.unlink(e)
			l.mu.main.push(e)
		}
		l.mu.Unlock()
	case policy.LFU:
		now := l.now()
		c := lfuDecayed(e, now)
		l.mu.Lock() // the sampler's state; reads of one key race on the counter otherwise
		e.freq.Store(uint32(l.lfuIncr(c)))
		l.mu.Unlock()
		e.access.Store(now)
	}
	return e
}

// has reports whether key is stored, without counting a read.
func (l *large) has(key string) bool {
	l.mu.RLock()
	_, ok := l.mu.m[key]
	l.mu.RUnlock()
	return ok
}

// put stores e, replacing any entry of its key, then evicts entries (never
// e) until the cost is within limit, passing each to evicted. It reports
// false, having stored nothing, when e alone exceeds limit. proven says
// the key was asked for before (a promotion from L2): S3FIFO puts it in
// main.
func (l *large) put(e *entry, limit int64, proven bool, evicted func(*entry, bool)) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := inSmall
	old := l.mu.m[e.key]
	if old != nil {
		// An overwrite keeps its key's place in the policy's order.
		q = old.q
		e.freq.Store(old.freq.Load())
		e.access.Store(old.access.Load())
		l.removeLocked(old)
		l.bufs.Release(old.rec)
	} else if l.policy == policy.LFU {
		e.freq.Store(lfuInit)
		e.access.Store(l.now())
	}
	if e.cost > limit {
		return false
	}
	if l.policy != policy.S3FIFO || proven || l.mu.ghost.Take(l.hash(e.key)) {
		q = inMain
	}
	e.q = q
	l.mu.m[e.key] = e
	l.queueOf(e).push(e)
	if q == inMain && (old == nil || old.q != inMain) {
		l.admitted.Add(1)
	}
	if l.policy == policy.LFU {
		e.idx = len(l.mu.sample)
		l.mu.sample = append(l.mu.sample, e)
	}
	l.cost.Add(e.cost)
	l.bytes.Add(int64(len(e.key) + len(e.rec)))
	l.keys.Add(1)
	l.evictLocked(limit, e, evicted)
	return true
}

// evict evicts entries until the cost is within limit.
func (l *large) evict(limit int64, evicted func(*entry, bool)) {
	if l.cost.Load() <= limit {
		return
	}
	l.mu.Lock()
	l.evictLocked(limit, nil, evicted)
	l.mu.Unlock()
}

// evictLocked evicts entries as the policy says until the cost is within
// limit or only keep (the entry just stored) is left, passing each to
// evicted with whether the policy admitted it (false: S3FIFO's small
// queue let it go unread).
func (l *large) evictLocked(limit int64, keep *entry, evicted func(*entry, bool)) {
	// A CLOCK pass lowers every count it passes, so maxFreq+1 passes over
	// the entries find one to evict.
	for budget := (maxFreq+2)*l.keys.Load() + 2; l.cost.Load() > limit && budget > 0; budget-- {
		var victim *entry
		admitted := true
		switch l.policy {
		case policy.S3FIFO:
			s, m := &l.mu.small, &l.mu.main
			smallOK := s.head != nil && s.head != keep
			mainOK := m.head != nil && !(m.head == keep && m.tail == keep)
			switch {
			case smallOK && (s.cost >= limit/smallShare || !mainOK):
				e := s.head
				if e.freq.Load() > 0 {
					// Read while new: on to main, its count kept.
					s.unlink(e)
					e.q = inMain
					m.push(e)
					l.admitted.Add(1)
					continue
				}
				victim, admitted = e, false
				l.mu.ghost.Add(l.hash(e.key), e.cost)
				l.rejected.Add(1)
			case mainOK:
				e := m.head
				if e == keep {
					m.unlink(e)
					m.push(e)
					continue
				}
				if f := e.freq.Load(); f > 0 {
					e.freq.Store(f - 1)
					m.unlink(e)
					m.push(e)
					continue
				}
				victim = e
			}
		case policy.LFU:
			victim = l.lfuVictim(keep)
		default: // LRU, FIFO: the oldest
			if e := l.mu.main.head; e != keep {
				victim = e
			} else if e != nil && e.next != nil {
				victim = e.next
			}
		}
		if victim == nil {
			return
		}
		l.removeLocked(victim)
		l.evictions.Add(1)
		if evicted != nil {
			evicted(victim, admitted) // may retain the record (demotion) before it is released
		}
		l.bufs.Release(victim.rec)
	}
}

// lfuVictim returns the least frequent of lfuSamples entries drawn at
// random other than keep, the first drawn on a tie; nil when keep is the
// only entry.
func (l *large) lfuVictim(keep *entry) *entry {
	n := len(l.mu.sample)
	if n == 0 || (n == 1 && l.mu.sample[0] == keep) {
		return nil
	}
	now := l.now()
	var best *entry
	bestC := uint8(0)
	if n <= lfuExact {
		for e := l.mu.main.head; e != nil; e = e.next {
			if c := lfuDecayed(e, now); e != keep && (best == nil || c < bestC) {
				best, bestC = e, c
			}
		}
		return best
	}
	for range lfuSamples {
		e := l.mu.sample[l.rand()%uint64(n)]
		if e == keep {
			continue
		}
		if c := lfuDecayed(e, now); best == nil || c < bestC {
			best, bestC = e, c
		}
	}
	if best == nil { // every draw was keep
		for _, e := range l.mu.sample {
			if e != keep {
				return e
			}
		}
	}
	return best
}

// lfuDecayed returns e's counter less one per minute since its last read.
func lfuDecayed(e *entry, now int64) uint8 {
	c := int64(e.freq.Load())
	if idle := now - e.access.Load(); idle > 0 {
		c = max(0, c-idle)
	}
	return uint8(c)
}

// lfuIncr returns counter c after a read: incremented with probability
// 1/((c-lfuInit)×lfuLogFactor+1), as Redis does. The caller holds mu.
func (l *large) lfuIncr(c uint8) uint8 {
	if c == 255 {
		return c
	}
	base := max(int(c)-lfuInit, 0)
	if l.rand()%uint64(base*lfuLogFactor+1) == 0 {
		c++
	}
	return c
}

// rand returns the next number of the store's xorshift64 sequence: the
// same operations draw the same numbers. The caller holds mu.
func (l *large) rand() uint64 {
	x := l.mu.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	l.mu.rng = x
	return x
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
	l.queueOf(e).unlink(e)
	if l.policy == policy.LFU {
		last := l.mu.sample[len(l.mu.sample)-1]
		l.mu.sample[e.idx], last.idx = last, e.idx
		l.mu.sample[len(l.mu.sample)-1] = nil
		l.mu.sample = l.mu.sample[:len(l.mu.sample)-1]
	}
	l.cost.Add(-e.cost)
	l.bytes.Add(-int64(len(e.key) + len(e.rec)))
	l.keys.Add(-1)
}

func (l *large) queueOf(e *entry) *queue {
	if e.q == inSmall {
		return &l.mu.small
	}
	return &l.mu.main
}

func (q *queue) push(e *entry) {
	e.prev, e.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = e
	} else {
		q.head = e
	}
	q.tail = e
	q.cost += e.cost
}

func (q *queue) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		q.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		q.tail = e.prev
	}
	e.prev, e.next = nil, nil
	q.cost -= e.cost
}

// snapshot returns the entries stored now: main's oldest first, then the
// small queue's.
func (l *large) snapshot() []*entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*entry, 0, len(l.mu.m))
	for _, q := range []*queue{&l.mu.main, &l.mu.small} {
		for e := q.head; e != nil; e = e.next {
			out = append(out, e)
		}
	}
	return out
}

// reset removes every entry; the ghost forgets every key.
func (l *large) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.mu.m)
	for _, q := range []*queue{&l.mu.main, &l.mu.small} {
		for e := q.head; e != nil; {
			next := e.next
			e.prev, e.next = nil, nil
			l.bufs.Release(e.rec)
			e = next
		}
		*q = queue{}
	}
	clear(l.mu.sample)
	l.mu.sample = l.mu.sample[:0]
	if l.mu.ghost != nil {
		l.mu.ghost.Reset()
	}
	l.cost.Store(0)
	l.bytes.Store(0)
	l.keys.Store(0)
}
