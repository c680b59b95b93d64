package memtier

import "hash/maphash"

// hasher maps keys to the 64-bit hashes bigcache identifies entries by.
//
// bigcache keeps one entry per hash: a second key with the same hash
// silently replaces the first. With its default FNV hash anyone choosing keys
// can craft such collisions and evict or shadow other clients' entries;
// maphash with a seed drawn at start-up cannot be predicted from outside.
type hasher struct{ seed maphash.Seed }

func newHasher() hasher { return hasher{seed: maphash.MakeSeed()} }

// Sum64 implements bigcache.Hasher. It never returns 0: bigcache marks a
// deleted entry by zeroing its hash, and an entry whose hash really is 0
// would be skipped at eviction while its index stayed in the shard's map,
// pointing at whatever the ring later stores there.
func (h hasher) Sum64(key string) uint64 {
	if x := maphash.String(h.seed, key); x != 0 {
		return x
	}
	return 1
}
