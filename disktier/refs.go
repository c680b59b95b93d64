package disktier

import (
	"hash/maphash"
	"sync"
)

// refShards is the number of independently locked parts of a refs set, so
// that concurrent readers marking entries seldom wait for each other.
const refShards = 16

// RefEntryBytes is what one mark of the referenced set costs in memory at
// most: a map entry of two uint64 with the map's load factor and growth
// (measured by TestRefsBytes).
const RefEntryBytes = 48

// RefEntries is how many marks a store of maxBytes keeps at most: one per
// 16 KiB of MaxBytes, between 1,024 and 4 Mi (the same sizing as the
// ghost of package policy). A store of smaller entries loses the marks
// past the bound: those entries get no second chance.
func RefEntries(maxBytes int64) int {
	return int(min(max(maxBytes/(16<<10), 1024), 4<<20))
}

// refs is the set of entries read since they were written: CLOCK's
// reference bits, kept in memory by 64-bit key hash with the generation
// the entry's pointer named when it was read; a write of the key clears
// it. When that generation is dropped, a marked entry still in it is
// rewritten into the current one instead of being evicted (see
// dropOldest). The marks of a generation are forgotten when it is dropped.
type refs struct {
	seed   maphash.Seed
	max    int // marks per shard at most
	shards [refShards]struct {
		sync.Mutex
		m map[uint64]uint64 // key hash → generation
	}
}

func newRefs(maxEntries int) *refs {
	r := &refs{seed: maphash.MakeSeed(), max: max(maxEntries/refShards, 1)}
	for i := range r.shards {
		r.shards[i].m = make(map[uint64]uint64)
	}
	return r
}

func (r *refs) hash(key []byte) uint64 { return maphash.Bytes(r.seed, key) }

// mark records that key was read while its pointer named generation gen.
// A full shard takes no new key.
func (r *refs) mark(key []byte, gen uint64) {
	h := r.hash(key)
	sh := &r.shards[h%refShards]
	sh.Lock()
	if _, ok := sh.m[h]; ok || len(sh.m) < r.max {
		sh.m[h] = gen
	}
	sh.Unlock()
}

// unmark forgets the mark of key (written again).
func (r *refs) unmark(key []byte) {
	h := r.hash(key)
	sh := &r.shards[h%refShards]
	sh.Lock()
	delete(sh.m, h)
	sh.Unlock()
}

// marked reports whether key was read while in generation gen.
func (r *refs) marked(key []byte, gen uint64) bool {
	h := r.hash(key)
	sh := &r.shards[h%refShards]
	sh.Lock()
	g, ok := sh.m[h]
	sh.Unlock()
	return ok && g == gen
}

// forget drops the marks of generations up to gen (dropped: their entries
// were rewritten or evicted).
func (r *refs) forget(gen uint64) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.Lock()
		for h, g := range sh.m {
			if g <= gen {
				delete(sh.m, h)
			}
		}
		sh.Unlock()
	}
}

// len returns the number of marks.
func (r *refs) len() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.Lock()
		n += len(sh.m)
		sh.Unlock()
	}
	return n
}
