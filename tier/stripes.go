package tier

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// stripeCount is the number of stripes (see stripes).
const stripeCount = 256

// stripes order writes of a key against readers that act on what they
// read. Each key hashes to one stripe. A writer bumps its stripe's seq
// under the stripe's mu, after its write is visible; a reader that saw seq
// before looking the key up and still sees it under mu knows no write of
// the stripe overlapped its lookup. Promotion relies on it (an older copy
// is never promoted over a newer write), and so do read-modify-writes
// (Hybrid.lockedGet) and the warm-up. The bump must come after the write:
// a reader loading seq in the middle of a write could otherwise miss the
// write and then see seq unchanged. A demotion bumps it too, once the
// record is queued: L1 no longer holds the key, and L2 will have a newer
// copy than it has now, which the warm-up, unlike a client's read, does
// not find in L1 first.
//
// The stripes also hold the lookup counters of their keys: every GET
// counts, so one shared counter would be a cache line that all cores
// write.
type stripes struct {
	seed maphash.Seed // set once by the owner (maphash.MakeSeed) before use
	s    [stripeCount]stripe
}

type stripe struct {
	mu  sync.Mutex
	seq atomic.Uint64

	// The lookup counters of the stripe's keys (see lookupCounts).
	hits, misses     atomic.Uint64
	l1Hits, l1Misses atomic.Uint64
	l2Hits, l2Misses atomic.Uint64

	_ [128 - 64]byte // keep stripes on separate cache lines
}

// index returns the index of key's stripe.
func (ss *stripes) index(key []byte) uint64 { return maphash.Bytes(ss.seed, key) % stripeCount }

// of returns key's stripe.
func (ss *stripes) of(key []byte) *stripe { return &ss.s[ss.index(key)] }

// ofString returns the stripe of key given as a string.
func (ss *stripes) ofString(key string) *stripe {
	return &ss.s[maphash.String(ss.seed, key)%stripeCount]
}

// seqs returns every stripe's seq, to compare later with seqs[index(key)].
func (ss *stripes) seqs() *[stripeCount]uint64 {
	var out [stripeCount]uint64
	for i := range ss.s {
		out[i] = ss.s[i].seq.Load()
	}
	return &out
}

// lockAll locks every stripe, for a write of every key (FLUSHALL); the
// function it returns bumps every seq and unlocks them.
func (ss *stripes) lockAll() (unlock func()) {
	for i := range ss.s {
		ss.s[i].mu.Lock()
	}
	return func() {
		for i := range ss.s {
			// After the write, before unlocking: no promotion or
			// read-modify-write that looked a key up before it acts on
			// it after.
			ss.s[i].seq.Add(1)
			ss.s[i].mu.Unlock()
		}
	}
}

// lookupCounts are the Get outcomes summed over the stripes.
type lookupCounts struct {
	hits, misses     uint64
	l1Hits, l1Misses uint64
	l2Hits, l2Misses uint64
}

func (ss *stripes) counts() lookupCounts {
	var c lookupCounts
	for i := range ss.s {
		st := &ss.s[i]
		c.hits += st.hits.Load()
		c.misses += st.misses.Load()
		c.l1Hits += st.l1Hits.Load()
		c.l1Misses += st.l1Misses.Load()
		c.l2Hits += st.l2Hits.Load()
		c.l2Misses += st.l2Misses.Load()
	}
	return c
}

// l2Lookups returns the number of L2 lookups clients' reads made.
func (ss *stripes) l2Lookups() uint64 {
	var n uint64
	for i := range ss.s {
		n += ss.s[i].l2Hits.Load() + ss.s[i].l2Misses.Load()
	}
	return n
}
