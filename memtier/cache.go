package memtier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/allegro/bigcache/v3"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/tier"
)

// Cache is the in-memory tier (L1): records under SmallRecord bytes in
// bigcache's rings, larger ones by reference in the large store, with
// per-record expiry, exact byte accounting, one memory budget for both and
// an eviction hook. It is safe for concurrent use.
type Cache struct {
	bc          atomic.Pointer[bigcache.BigCache] // nil once closed
	large       *large
	hash        hasher
	mask        uint64  // Shards-1: a key's shard is hash&mask, as in bigcache
	shards      []shard // one per bigcache shard, same index
	clock       tier.Clock
	maxRecord   int
	smallRecord int
	maxBytes    int64
	smallBytes  int64        // the rings' capacity
	pushed      atomic.Int64 // bytes ever written to the rings, up to smallBytes: what they hold in memory

	onEvict atomic.Pointer[func(key string, r tier.Record, admitted bool)]
}

var _ tier.Mem = (*Cache)(nil)

// shard holds the accounting of one bigcache shard.
//
// bigcache does not report overwrites (nor keys replaced by a colliding
// hash), so the size of the entry a Set replaces is kept here. mu is held
// around every bigcache call that changes the shard (Set, Delete), which
// makes the read of the old size, the write and the update one step, and
// puts the eviction callback, which bigcache runs inside Set, under mu too.
//
// Measured cost, medians of 6 runs on 2 cores (BenchmarkSet vs
// BenchmarkBigcacheSet, overwriting keys that fill half the cache): 1 KB
// records 1163 vs 890 ns (+31%; ~100 ns of it is hashing, the record check
// and the mutex, the rest the map's cache misses); 118 KB and 4 MB records
// within noise (0.95–0.98×), the copies dominate. When every Set evicts
// (BenchmarkSetEvict), 1 KB records cost +53%: the map is probed for the new
// key and again for the evicted one. Learning the old size the other way, a
// Delete before each Set with a Deleted callback, costs +20% at 1 KB but
// 3.1× at 118 KB and 2.1× at 4 MB, because bigcache copies the whole deleted
// record to hand it to the callback (BenchmarkBigcacheDeleteSet).
type shard struct {
	mu        sync.Mutex        // guards sizes; held around bigcache writes to the shard
	sizes     map[uint64]uint32 // hash → len(key)+len(record) of the live entry
	bytes     atomic.Int64      // sum of sizes; written under mu, read by Stats
	keys      atomic.Int64      // len(sizes); written under mu, read by Stats
	evictions atomic.Uint64     // entries evicted for space; written under mu
	hits      atomic.Uint64     // Gets of the shard's keys (either store) that found a record
	misses    atomic.Uint64     // and that did not
	_         [128 - 56]byte    // keep shards on separate cache lines
}

// New returns a Cache configured by opts (see Options for the defaults).
func New(opts Options) (*Cache, error) {
	o := opts
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c := &Cache{
		hash:        newHasher(),
		mask:        uint64(o.Shards - 1),
		shards:      make([]shard, o.Shards),
		clock:       o.Clock,
		maxRecord:   o.MaxRecord,
		smallRecord: o.SmallRecord,
		maxBytes:    capacity(o.MaxBytes),
		smallBytes:  capacity(o.SmallBytes),
	}
	c.large = newLarge(o.Buffers, o.Eviction, o.GhostBytes, c.hash.Sum64, func() int64 { return c.clock.Now().Unix() / 60 })
	for i := range c.shards {
		c.shards[i].sizes = make(map[uint64]uint32)
	}
	bc, err := bigcache.New(context.Background(), bigcacheConfig(o, c.hash, c.evictedLocked))
	if err != nil {
		return nil, fmt.Errorf("memtier: %w", err)
	}
	c.bc.Store(bc)
	return c, nil
}

// bigcacheConfig returns the bigcache configuration for validated options.
func bigcacheConfig(o Options, h hasher, onEvict func(key string, entry []byte, reason bigcache.RemoveReason)) bigcache.Config {
	sb := shardBytes(o.SmallBytes, o.Shards)
	cfg := bigcache.Config{
		Shards: o.Shards,
		// With CleanWindow 0 bigcache still drops the oldest entry on
		// every Set once it is older than LifeWindow; records expire by
		// their own header instead, so make that window ~292 years.
		LifeWindow:  time.Duration(math.MaxInt64),
		CleanWindow: 0, // no clean-up goroutine
		// The initial ring is 10 × MaxEntrySize, capped at the shard size:
		// this allocates each ring whole at start, so it never grows by
		// doubling and copying. The pages stay untouched (and out of RSS)
		// until entries are written. It also sizes each shard's copy
		// buffer, which is only touched as far as the largest entry.
		MaxEntrySize:     int((sb + recordsPerShard - 1) / recordsPerShard),
		HardMaxCacheSize: int(capacity(o.SmallBytes) / mib),
		Hasher:           h,
		Logger:           log.New(io.Discard, "", 0),
	}
	if onEvict != nil {
		cfg.OnRemoveWithReason = onEvict
		// Deletes are accounted by Delete itself; filtering them out
		// spares bigcache copying the deleted record for the callback.
		// Expired (LifeWindow) never happens, see above, but would be
		// an eviction all the same.
		cfg = cfg.OnRemoveFilterSet(bigcache.NoSpace, bigcache.Expired)
	}
	return cfg
}

// MaxRecord returns the largest len(key)+len(record) Set accepts.
func (c *Cache) MaxRecord() int { return c.maxRecord }

// Get returns the record stored under key, or tier.ErrNotFound if there is
// none or it has expired. The record must not be modified: a large one is
// the stored record itself (shared with other readers, and kept alive for
// as long as the caller holds it, even after it is overwritten or evicted:
// by the garbage collector, or, for a record in a buffer of
// Options.Buffers, by the caller's pinned bufpool.Guard); a small one is a
// copy. A record that does not
// parse (which Set never stores) is dropped and reported as not found.
func (c *Cache) Get(key []byte) (tier.Record, error) {
	bc := c.bc.Load()
	if bc == nil {
		return nil, tier.ErrClosed
	}
	if len(key) > MaxKeyLen {
		return nil, tier.ErrNotFound // never stored
	}
	k := unsafeString(key)
	_, sh := c.shard(k)
	if e := c.large.get(k); e != nil {
		if !c.live(e.rec, 0) {
			c.dropStaleLarge(k, e)
			sh.misses.Add(1)
			return nil, tier.ErrNotFound
		}
		sh.hits.Add(1)
		return e.rec, nil
	}
	if sh.keys.Load() == 0 {
		sh.misses.Add(1)
		return nil, tier.ErrNotFound
	}
	v, err := bc.Get(k)
	if err != nil {
		sh.misses.Add(1)
		return nil, tier.ErrNotFound
	}
	r := tier.Record(v)
	if !c.live(r, 0) {
		c.dropStale(key)
		sh.misses.Add(1)
		return nil, tier.ErrNotFound
	}
	sh.hits.Add(1)
	return r, nil
}

// Contains reports whether a record is stored under key, without reading
// it, marking it read for eviction or counting a lookup. A record that has
// expired but was not dropped yet counts. In the rings entries are known by
// their key's 64-bit hash, so a small key colliding with a stored one
// counts too (see Caveats): Contains may say yes for a key Get misses, never
// no for a key it finds.
func (c *Cache) Contains(key []byte) bool {
	if c.bc.Load() == nil || len(key) > MaxKeyLen {
		return false
	}
	k := unsafeString(key)
	if c.large.has(k) {
		return true
	}
	h, sh := c.shard(k)
	if sh.keys.Load() == 0 {
		return false
	}
	sh.mu.Lock()
	_, ok := sh.sizes[h]
	sh.mu.Unlock()
	return ok
}

// Fits reports whether a Set of key and r now would evict nothing. For a
// record kept by reference (SmallRecord bytes or more with its key) it is
// exact at the time of the call, counting r at the cost of a record not
// built in a pooled buffer (see Accounting); for a small record it reports
// false once the rings have taken their whole share, after which every
// small Set may evict (each shard evicts its own oldest entries).
func (c *Cache) Fits(key []byte, r tier.Record) bool {
	if len(key)+len(r) >= c.smallRecord {
		return c.large.cost.Load()+costOf(key, r, 0) <= c.largeLimit()
	}
	return c.pushed.Load() < c.smallBytes
}

// live reports whether r parses and has not expired. nowMs 0 means "ask the
// clock if needed": most records are read without a clock call.
func (c *Cache) live(r tier.Record, nowMs int64) bool {
	if err := r.Check(); err != nil {
		return false
	}
	exp := r.ExpireAt()
	if exp == 0 {
		return true
	}
	if nowMs == 0 {
		nowMs = c.clock.Now().UnixMilli()
	}
	return exp > nowMs
}

// dropStale deletes key if its record is still expired or malformed. Get
// saw it so without the shard lock, and a Set may have replaced it since.
func (c *Cache) dropStale(key []byte) {
	k, h, sh, bc := c.lockKey(key)
	defer sh.mu.Unlock()
	if bc == nil {
		return
	}
	if v, err := bc.Get(k); err == nil && !c.live(tier.Record(v), 0) {
		_ = c.deleteLocked(bc, sh, h, k) // the next Get retries if this failed
	}
}

// dropStaleLarge deletes the large entry e of k if it is still stored.
func (c *Cache) dropStaleLarge(k string, e *entry) {
	_, sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c.large.remove(k, e)
}

// Set stores r under key, replacing any previous record. A record of
// SmallRecord bytes or more (with its key) is kept as it is, so the caller
// must not modify r afterwards; a smaller one is copied into a ring. A
// key longer than MaxKeyLen, or a key and record larger than MaxRecord, is
// refused with an error wrapping tier.ErrTooLarge, and a record that does not
// parse with one wrapping tier.ErrCorrupt; either way the cache then holds
// nothing under key, so an older value cannot be served in its place.
//
// Set may evict other entries for space, calling the SetOnEvict hook for
// each before it returns.
func (c *Cache) Set(key []byte, r tier.Record) error { return c.store(key, r, false) }

// SetProven is Set for a record whose key has been asked for before (a
// promotion from L2): the eviction policy treats it as read again (S3FIFO
// puts it in its main queue).
func (c *Cache) SetProven(key []byte, r tier.Record) error { return c.store(key, r, true) }

func (c *Cache) store(key []byte, r tier.Record, proven bool) error {
	if c.bc.Load() == nil {
		return tier.ErrClosed
	}
	if len(key) > MaxKeyLen {
		// Never stored, so there is no older value to drop.
		return fmt.Errorf("%w: key of %d bytes, L1 keys are at most %d", tier.ErrTooLarge, len(key), MaxKeyLen)
	}
	if err := r.Check(); err != nil {
		if derr := c.Delete(key); derr != nil {
			return derr
		}
		return fmt.Errorf("memtier: set: %w", err)
	}
	if n := len(key) + len(r); n > c.maxRecord {
		if derr := c.Delete(key); derr != nil {
			return derr
		}
		return fmt.Errorf("%w: key and record of %d bytes, L1 takes at most %d", tier.ErrTooLarge, n, c.maxRecord)
	}
	return c.set(key, r, proven)
}

// set stores r under key without checking it. The key's shard lock orders
// it against every other write of the key, whichever store each goes to,
// so a key is in at most one of them.
func (c *Cache) set(key []byte, r []byte, proven bool) error {
	k, h, sh, bc := c.lockKey(key)
	defer sh.mu.Unlock()
	if bc == nil {
		return tier.ErrClosed
	}
	size := len(key) + len(r)
	if size >= c.smallRecord {
		if sh.keys.Load() > 0 {
			if err := c.deleteLocked(bc, sh, h, k); err != nil {
				return err
			}
		}
		bufSize, ok := c.large.bufs.Retain(r)
		if !ok {
			// r's buffer is retired: the caller found r in a tier
			// and holds it under a pinned guard, but nothing owns it
			// any more, so the buffer is reused once the guard is
			// unpinned. Keep a copy.
			r = bytes.Clone(r)
		}
		e := &entry{key: string(key), rec: r, cost: costOf(key, r, bufSize)}
		if !c.large.put(e, c.largeLimit(), proven, c.evictedLarge) {
			c.large.bufs.Release(r)
			return fmt.Errorf("%w: key and record of %d bytes, L1 has room for %d beside its small records", tier.ErrTooLarge, size, c.largeLimit())
		}
		return nil
	}
	if c.large.has(k) { // a read lock: small writes do not serialize on the large store
		c.large.remove(k, nil)
	}
	err := bc.Set(k, r) // may call evictedLocked for other keys of sh
	// bigcache has dropped the entry Set replaces (even if Set then failed)
	// without telling, and never evicts it (it is dropped first): its size
	// is the one recorded.
	if err != nil {
		sh.removeLocked(h)
		// Unreachable while SmallRecord holds: every small record fits a shard.
		return fmt.Errorf("memtier: set: %w", err)
	}
	old, had := sh.sizes[h]
	sh.sizes[h] = uint32(size)
	sh.bytes.Add(int64(size) - int64(old))
	if !had {
		sh.keys.Add(1)
	}
	if c.pushed.Load() < c.smallBytes {
		// The rings take memory as they are first written: the large
		// store's share shrinks by as much.
		if c.pushed.Add(int64(size+entryOverhead)) > c.smallBytes {
			c.pushed.Store(c.smallBytes)
		}
		c.large.evict(c.largeLimit(), c.evictedLarge)
	}
	return nil
}

// largeLimit is the memory the large store may take: the budget less what
// the rings hold.
func (c *Cache) largeLimit() int64 { return c.maxBytes - c.pushed.Load() }

// evictedLarge passes an entry the large store evicted to the hook.
func (c *Cache) evictedLarge(e *entry, admitted bool) {
	if fn := c.onEvict.Load(); fn != nil {
		(*fn)(e.key, e.rec, admitted)
	}
}

// Delete removes the record stored under key. Deleting a missing key is not
// an error.
func (c *Cache) Delete(key []byte) error {
	if c.bc.Load() == nil {
		return tier.ErrClosed
	}
	if len(key) > MaxKeyLen {
		return nil // never stored
	}
	k, h, sh, bc := c.lockKey(key)
	defer sh.mu.Unlock()
	if bc == nil {
		return tier.ErrClosed
	}
	if c.large.has(k) && c.large.remove(k, nil) {
		return nil
	}
	if sh.keys.Load() == 0 {
		return nil
	}
	return c.deleteLocked(bc, sh, h, k)
}

// deleteLocked deletes k, of hash h, from bigcache and its accounting;
// sh.mu is held.
func (c *Cache) deleteLocked(bc *bigcache.BigCache, sh *shard, h uint64, k string) error {
	err := bc.Delete(k)
	if errors.Is(err, bigcache.ErrEntryNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("memtier: delete: %w", err)
	}
	sh.removeLocked(h)
	return nil
}

// removeLocked drops the entry of hash h from the accounting; sh.mu is held.
func (sh *shard) removeLocked(h uint64) {
	if size, ok := sh.sizes[h]; ok {
		delete(sh.sizes, h)
		sh.bytes.Add(-int64(size))
		sh.keys.Add(-1)
	}
}

// evictedLocked is bigcache's OnRemoveWithReason callback, filtered to
// NoSpace and Expired. bigcache evicts only inside Set, which set calls with
// the shard's mu held, so mu is held here too. key and entry are fresh
// copies made by bigcache for the call.
func (c *Cache) evictedLocked(key string, entry []byte, reason bigcache.RemoveReason) {
	if reason == bigcache.Deleted {
		return // filtered out; Delete does its own accounting
	}
	h := c.hash.Sum64(key)
	sh := &c.shards[h&c.mask]
	sh.removeLocked(h)
	sh.evictions.Add(1)
	if fn := c.onEvict.Load(); fn != nil {
		(*fn)(key, tier.Record(entry), true)
	}
}

// SetOnEvict installs fn, called for every record evicted to make space
// (expired or not; not for deletes nor overwrites), in place of any
// previous one; nil removes it. admitted is false for a record the policy
// let go unread (S3FIFO's small queue: a one-hit wonder), true for every
// other. fn runs inside Set with a shard lock held:
// it must be quick, must not block, must not panic (bigcache would keep the
// shard locked) and must not call into c. fn may keep r (a fresh copy, or a
// large record that nothing modifies) but must not modify it.
func (c *Cache) SetOnEvict(fn func(key string, r tier.Record, admitted bool)) {
	if fn == nil {
		c.onEvict.Store(nil)
		return
	}
	c.onEvict.Store(&fn)
}

// Range calls fn with every live record until fn returns false. fn may
// keep key, its own copy, and modify it; it may keep the records but must
// not modify them: as with Get, a large record is the stored record itself
// (handed by reference, and shared with every reader), a small one a copy.
// Range takes no lock while fn runs, so fn may use c; entries set or
// deleted during Range may or may not be seen.
func (c *Cache) Range(fn func(key []byte, r tier.Record) bool) {
	bc := c.bc.Load()
	if bc == nil {
		return
	}
	now := c.clock.Now().UnixMilli()
	for _, e := range c.large.snapshot() {
		if c.live(e.rec, now) && !fn([]byte(e.key), e.rec) {
			return
		}
	}
	for it := bc.Iterator(); it.SetNext(); {
		e, err := it.Value()
		if err != nil {
			continue // the entry went away under the iterator
		}
		r := tier.Record(e.Value())
		if !c.live(r, now) {
			continue
		}
		if !fn([]byte(e.Key()), r) {
			return
		}
	}
}

// Buffers returns the pool the records given to Set may come from
// (Options.Buffers), or nil.
func (c *Cache) Buffers() *bufpool.Pool { return c.large.bufs }

// Stats returns the cache's counters. Bytes is the sum of len(key) +
// len(record) over the live entries and never exceeds MaxBytes, which is
// Options.MaxBytes rounded down to a MiB.
func (c *Cache) Stats() tier.Stats {
	s := tier.Stats{
		MaxBytes:  c.maxBytes,
		Evictions: c.large.evictions.Load(),
		Admitted:  c.large.admitted.Load(),
		Rejected:  c.large.rejected.Load(),
		Bytes:     c.large.bytes.Load(),
		Keys:      c.large.keys.Load(),
	}
	for i := range c.shards {
		sh := &c.shards[i]
		s.Evictions += sh.evictions.Load()
		s.Bytes += sh.bytes.Load()
		s.Keys += sh.keys.Load()
		s.Hits += sh.hits.Load()
		s.Misses += sh.misses.Load()
	}
	return s
}

// Reset removes every entry (FLUSHALL). Evicted-entry hooks are not called.
func (c *Cache) Reset() error {
	bc := c.bc.Load()
	if bc == nil {
		return tier.ErrClosed
	}
	for i := range c.shards {
		c.shards[i].mu.Lock() // no Set or Delete runs while the rings are cleared
	}
	err := bc.Reset()
	c.large.reset()
	for i := range c.shards {
		sh := &c.shards[i]
		clear(sh.sizes)
		sh.bytes.Store(0)
		sh.keys.Store(0)
		sh.mu.Unlock()
	}
	return err
}

// Close releases the cache's memory; every later operation returns
// tier.ErrClosed (Range returns at once). Close is idempotent.
func (c *Cache) Close() error {
	bc := c.bc.Swap(nil)
	if bc == nil {
		return nil
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock() // waits for a Set or Delete in flight
		sh.sizes = nil
		sh.bytes.Store(0)
		sh.keys.Store(0)
		sh.mu.Unlock()
	}
	c.large.reset()
	return bc.Close()
}

// shard returns the hash of k and its shard.
func (c *Cache) shard(k string) (uint64, *shard) {
	h := c.hash.Sum64(k)
	return h, &c.shards[h&c.mask]
}

// lockKey locks the shard of key, which orders a write of key against every
// other write of it and against Close, and returns key as a string (see
// unsafeString), its hash, its shard and the rings: nil once the cache is
// closed, which the caller checks under the lock. The caller unlocks sh.mu
// either way.
func (c *Cache) lockKey(key []byte) (k string, h uint64, sh *shard, bc *bigcache.BigCache) {
	k = unsafeString(key)
	h, sh = c.shard(k)
	sh.mu.Lock()
	return k, h, sh, c.bc.Load()
}

// unsafeString returns b as a string without copying it. bigcache only
// hashes, compares and copies the keys it is given, never keeps them, so the
// copy string(b) makes (b escapes through the Hasher interface) is waste.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
