package disktier

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/internal/hugepage"
	"github.com/tiercache/tiercache/tier"
)

// Store is the disk tier: a bounded, generation-evicted cache of records
// in Pebble. It is safe for concurrent use.
type Store struct {
	opts Options

	// Derived sizes, fixed at Open (see sizing).
	budget    int64 // bytes of live generations above which the oldest is dropped
	genTarget int64 // bytes after which the current generation rolls
	physHigh  int64 // measured usage above which one more generation is dropped
	hardLimit int64 // measured usage + pending writes above which writes wait
	maxRecord int64 // largest record accepted
	maxBatch  int64 // largest Write (by entryCost) accepted

	cache *pebble.Cache
	// refs marks the entries read since written, for the second chance
	// they get when their generation is dropped.
	refs *refs

	// dbmu guards h. Readers hold it shared while they use the instance;
	// swapping the instance (recovery, Close) holds it exclusively, and also
	// holds mu, so that writers (who hold mu) may read h without dbmu.
	dbmu sync.RWMutex
	h    *handle

	// mu is the writer mutex: every write to Pebble is built and committed
	// under it, so "read p|key, decide, write" is race-free.
	mu struct {
		sync.Mutex
		gens []genInfo // live generations, oldest first; the last is current
		live int64     // sum of gens[i].bytes
		keys int64     // number of p keys (entries stored)
		// expiring is the number of p keys whose pointer has an expiry
		// (ptrExpires); kept like keys, in the same batches. It may be
		// transiently negative while a full recount is pending after an
		// upgrade (see loadStateLocked); the gauge is clamped at 0.
		expiring int64
		tasks    []*recountTask
		compact  []span // spans to compact in the background
	}

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed by Close: stops the goroutines
	wg        sync.WaitGroup

	kick      chan struct{}   // wakes the maintainer (capacity 1)
	cleanupq  chan cleanupReq // expired or dangling pointers to delete
	recountq  chan struct{}   // wakes the recounter (capacity 1)
	flushWant atomic.Bool     // maintainer should flush the memtable
	progress  struct {        // back-pressure: closed when the maintainer made progress
		sync.Mutex
		ch chan struct{}
	}

	// usage is the last measurement of the directory's size, written is
	// the number of bytes (entryCost) committed since Open: the size now is
	// estimated as usage.disk + written - usage.written.
	usage   atomic.Pointer[usageSample]
	written atomic.Int64
	// waiting is the room (see room) a writer waits for, 0 when none
	// waits: the maintainer evicts until it fits.
	waiting atomic.Int64
	// writeBytes counts the bytes written to the files of the directory
	// since Open, by every Pebble instance (see countFS).
	writeBytes atomic.Int64

	// Published copies of state guarded by mu, for lock-free readers.
	keysGauge     atomic.Int64
	expiringGauge atomic.Int64
	liveGauge     atomic.Int64
	ttlWrites     atomic.Uint64 // writes of records with an expiry (wakes the sweep)

	hits, misses, evictions, corrupt, errors atomic.Uint64
	rewrites                                 atomic.Uint64 // second chances (see secondChance)
	lastLimitedLog                           atomic.Int64
}

var _ tier.Disk = (*Store)(nil)

type genInfo struct {
	id    uint64
	bytes int64
}

type usageSample struct {
	disk    int64 // Metrics().DiskSpaceUsage()
	written int64 // Store.written when it was taken
	at      time.Time
}

// cleanupReq names an entry by key and by the exact pointer record it had
// when it was read; the request applies only if p|key still holds it.
type cleanupReq struct {
	key []byte
	ptr []byte
}

// Open opens (creating if needed) the store in opts.Dir. Opening reads only
// the meta keys: its cost does not depend on the amount of data stored.
func Open(opts Options) (*Store, error) {
	given := opts
	opts.EnsureDefaults()
	configured := opts.MaxBytes
	if size, lowered := fitFilesystem(&opts, given); lowered {
		opts.Logger("disktier: MaxBytes lowered from %d to %d bytes, %.0f%% of the filesystem holding %s (%d bytes)",
			configured, opts.MaxBytes, fsShare*100, opts.Dir, size)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.FS.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: create %s: %w", ErrStorage, opts.Dir, err)
	}
	s := &Store{
		opts:     opts,
		cache:    pebble.NewCache(opts.CacheSize),
		refs:     newRefs(RefEntries(opts.MaxBytes)),
		done:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
		cleanupq: make(chan cleanupReq, 256),
		recountq: make(chan struct{}, 1),
	}
	s.sizing()
	h, err := s.openHandle()
	if err != nil {
		s.cache.Unref()
		return nil, err
	}
	s.mu.Lock()
	err = s.loadStateLocked(h)
	s.mu.Unlock()
	if err != nil {
		_ = s.closeHandle(h)
		s.cache.Unref()
		return nil, err
	}
	s.h = h
	s.measure()
	s.wg.Add(2)
	go s.maintain()
	go s.recount()
	return s, nil
}

// sizing derives the eviction thresholds from the options.
//
// The live generations (every entryCost written to them, overwritten and
// deleted entries included, in the WAL until flushed) are most of the
// directory. Besides them it holds, for a while: a dropped generation until
// Pebble deletes its files (at most genTarget), the output of a flush being
// written while the flushed WAL still exists (at most one memtable, or a
// batch flushed on its own, see room), the output of a compaction next to
// its inputs (keys and blob handles: small), the MANIFEST and the OPTIONS
// file. The budget leaves room for the first two under MaxBytes; the
// measured size (Metrics().DiskSpaceUsage) is the backstop, checked by the
// maintainer and, as an estimate, by every write.
//
// Before, the budget also left room for a second memtable and MaxBytes/16,
// generations were 1/16 of it and memtables MaxBytes/16: the live entries
// were about 79% of MaxBytes (see the package documentation).
func (s *Store) sizing() {
	o := &s.opts
	m := o.MemTableSize
	s.genTarget = max((o.MaxBytes-m)/int64(o.Generations+1), 1)
	s.budget = o.MaxBytes - m - s.genTarget
	// The maintainer drops one more generation when the measured size
	// stays above MaxBytes. Writes wait when the estimate would pass
	// MaxBytes plus a fortieth: the estimate cannot see a flush's output
	// coexisting with its WAL (one memtable, at most MaxBytes/16), nor a
	// compaction's output with its inputs, and those must fit in the rest
	// of the 10% above MaxBytes.
	s.physHigh = o.MaxBytes
	s.hardLimit = o.MaxBytes + o.MaxBytes/40
	s.maxBatch = s.budget / 4
	s.maxRecord = s.maxBatch
}

// room returns the room a write of cost bytes needs under hardLimit: its
// cost, twice over for a batch that Pebble flushes on its own (larger than
// half a memtable), whose flush output is written while its WAL is still
// there.
func (s *Store) room(cost int64) int64 {
	if cost > s.opts.MemTableSize/2 {
		return 2 * cost
	}
	return cost
}

// loadStateLocked reads the meta keys of a freshly opened instance.
func (s *Store) loadStateLocked(h *handle) error {
	v, err := getCopy(h.db, metaVersion)
	fresh := false
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		b := h.db.NewBatch()
		_ = b.Set(metaVersion, []byte{layoutVersion}, nil)
		_ = b.Set(metaExpiring, le64(0), nil)
		if err := s.commit(h, b); err != nil {
			return err
		}
		fresh = true
	case err != nil:
		return fmt.Errorf("%w: read layout version: %w", ErrStorage, err)
	case len(v) != 1 || v[0] != layoutVersion:
		return fmt.Errorf("%w: layout version %x, want %d", ErrIncompatible, v, layoutVersion)
	}

	var keys int64
	switch v, err := getCopy(h.db, metaKeys); {
	case err == nil && len(v) == 8:
		keys = int64(binary.LittleEndian.Uint64(v))
	case err == nil:
		return fmt.Errorf("%w: key count of %d bytes", ErrIncompatible, len(v))
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("%w: read key count: %w", ErrStorage, err)
	}

	// The count of entries with an expiry was added to the meta after
	// layout version 1 shipped, without a version change: a store written
	// before has no metaExpiring. It is then counted from scratch: a
	// recount marker is stored (so that a restart before the count is
	// applied counts again, even though writes meanwhile store
	// metaExpiring) and the full recount below fixes both counts. Until
	// then Expiring counts only the changes since Open.
	var expiring int64
	switch v, err := getCopy(h.db, metaExpiring); {
	case err == nil && len(v) == 8:
		expiring = int64(binary.LittleEndian.Uint64(v))
	case err == nil:
		return fmt.Errorf("%w: expiring count of %d bytes", ErrIncompatible, len(v))
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("%w: read expiring count: %w", ErrStorage, err)
	case !fresh:
		b := h.db.NewBatch()
		_ = b.Set(metaRecountKey(0), nil, nil)
		_ = b.Set(metaExpiring, le64(0), nil)
		if err := s.commit(h, b); err != nil {
			return err
		}
	}

	var gens []genInfo
	var markers [][]byte
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: metaGen, UpperBound: tier.PrefixEnd(metaRecount)})
	if err != nil {
		return fmt.Errorf("%w: read generations: %w", ErrStorage, err)
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		switch {
		case bytes.HasPrefix(k, metaGen) && len(k) == len(metaGen)+8:
			v, err := it.ValueAndErr()
			if err != nil || len(v) != 8 {
				_ = it.Close()
				return fmt.Errorf("%w: generation record %x: %v", ErrIncompatible, k, err)
			}
			gens = append(gens, genInfo{
				id:    binary.BigEndian.Uint64(k[len(metaGen):]),
				bytes: int64(binary.LittleEndian.Uint64(v)),
			})
		case bytes.HasPrefix(k, metaRecount):
			markers = append(markers, bytes.Clone(k))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("%w: read generations: %w", ErrStorage, err)
	}
	if len(gens) == 0 {
		gens = []genInfo{{id: 1}}
		b := h.db.NewBatch()
		_ = b.Set(metaGenKey(1), le64(0), nil)
		if err := s.commit(h, b); err != nil {
			return err
		}
	}
	s.mu.gens = gens
	s.mu.keys = keys
	s.mu.expiring = expiring
	s.mu.live = 0
	for _, g := range gens {
		s.mu.live += g.bytes
	}
	s.publishLocked()
	// TTL'd entries may be on disk: let the sweep make one pass.
	s.ttlWrites.Add(1)
	if len(markers) > 0 {
		// A DropRange's key count was not applied before the last shutdown
		// (or the instance was replaced), or the store predates the
		// expiring count: count every key again.
		s.fullRecountLocked(h, markers)
	}
	return nil
}

// publishLocked copies the state guarded by mu into the atomics read
// without it.
func (s *Store) publishLocked() {
	s.keysGauge.Store(s.mu.keys)
	s.expiringGauge.Store(max(s.mu.expiring, 0))
	s.liveGauge.Store(s.mu.live)
}

// getter is what *pebble.DB and *pebble.Snapshot have in common.
type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func le64(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

// getCopy returns a copy of the value of key: the slice Pebble returns is
// only valid until its closer is closed.
func getCopy(db getter, key []byte) ([]byte, error) {
	v, closer, err := db.Get(key)
	if err != nil {
		return nil, err
	}
	out := hugepage.Clone(v)
	return out, closer.Close()
}

func (s *Store) nowMs() int64 { return s.opts.Clock.Now().UnixMilli() }

func (s *Store) inline(r tier.Record) bool { return len(r) <= s.opts.InlineMax }

// Get returns a copy of the record stored under key, verified against its
// checksum. A corrupt record is deleted, counted in Stats().Corrupt and
// reported as tier.ErrNotFound.
func (s *Store) Get(key []byte) (tier.Record, error) {
	if s.closed.Load() {
		return nil, tier.ErrClosed
	}
	h, err := s.readLocked()
	if err != nil {
		return nil, err
	}
	res := s.lookup(h.db, key)
	s.dbmu.RUnlock()

	switch res.outcome {
	case outcomeHit:
		s.hits.Add(1)
		s.refs.mark(key, res.ptr.gen)
		return res.rec, nil
	case outcomeMiss:
		s.misses.Add(1)
		if res.raw != nil {
			s.enqueue(s.cleanupq, key, res.raw)
		}
		return nil, tier.ErrNotFound
	case outcomeCorrupt:
		s.misses.Add(1)
		s.corrupt.Add(1)
		s.opts.Logger("disktier: corrupt entry %q dropped: %v", key, res.err)
		s.removeIfUnchanged([]cleanupReq{{key: key, ptr: res.raw}})
		return nil, tier.ErrNotFound
	default:
		s.errors.Add(1)
		return nil, fmt.Errorf("%w: get: %w", ErrStorage, res.err)
	}
}

type outcome int

const (
	outcomeHit outcome = iota
	outcomeMiss
	outcomeCorrupt
	outcomeFailed
)

type lookupResult struct {
	outcome outcome
	rec     tier.Record
	ptr     pointer
	// raw is the pointer record as read: for an expired or dangling entry
	// (cleanup) and a corrupt one (nil when p|key itself could not be read).
	raw []byte
	err error
}

// lookup reads the entry of key from db. It never returns bytes that failed
// their checksum.
func (s *Store) lookup(db *pebble.DB, key []byte) lookupResult {
	kb := keyBufs.Get().(*keyBuf)
	defer keyBufs.Put(kb)
	kb.b = appendPtrKey(kb.b[:0], key)
	v, closer, err := db.Get(kb.b)
	if err != nil {
		return lookupFailure(err, nil)
	}
	ptr, err := decodePointer(v)
	if err != nil {
		raw := bytes.Clone(v)
		_ = closer.Close()
		return lookupResult{outcome: outcomeCorrupt, raw: raw, err: err}
	}
	if ptr.expired(s.nowMs()) {
		raw := bytes.Clone(v)
		_ = closer.Close()
		return lookupResult{outcome: outcomeMiss, raw: raw}
	}
	var rec tier.Record
	var hdr [ptrHdrSize]byte
	copy(hdr[:], v)
	if ptr.inline() {
		rec = tier.Record(bytes.Clone(v[ptrHdrSize:]))
		_ = closer.Close()
	} else {
		_ = closer.Close()
		kb.b = appendGenKey(kb.b[:0], nsData, ptr.gen, key)
		v, closer, err = db.Get(kb.b)
		if err != nil {
			// Not found: the generation was dropped between the two reads,
			// or a crash separated them; either way a miss.
			return lookupFailure(err, hdr[:])
		}
		rec = tier.Record(hugepage.Clone(v))
		// DB.Get drops the error of fetching a value kept in a blob file
		// (it returns Iterator.Value()); the iterator behind the closer
		// keeps it and Close returns it.
		if err := closer.Close(); err != nil {
			return lookupFailure(err, hdr[:])
		}
		if uint64(len(rec)) != ptr.size {
			return lookupResult{outcome: outcomeCorrupt, raw: bytes.Clone(hdr[:]),
				err: fmt.Errorf("%w: record of %d bytes, pointer says %d", tier.ErrCorrupt, len(rec), ptr.size)}
		}
	}
	raw := func() []byte {
		if ptr.inline() {
			return append(bytes.Clone(hdr[:]), rec...)
		}
		return bytes.Clone(hdr[:])
	}
	if err := rec.Verify(); err != nil {
		return lookupResult{outcome: outcomeCorrupt, raw: raw(), err: err}
	}
	if rec.ExpireAt() != 0 && rec.ExpireAt() <= s.nowMs() {
		return lookupResult{outcome: outcomeMiss, raw: raw()}
	}
	return lookupResult{outcome: outcomeHit, rec: rec, ptr: ptr}
}

func lookupFailure(err error, raw []byte) lookupResult {
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return lookupResult{outcome: outcomeMiss, raw: bytes.Clone(raw)}
	case pebble.IsCorruptionError(err):
		return lookupResult{outcome: outcomeCorrupt, raw: bytes.Clone(raw), err: err}
	default:
		return lookupResult{outcome: outcomeFailed, err: err}
	}
}

// enqueue hands an entry to the maintainer; when it is busy the request is
// dropped (an optimization that a later read asks for again).
func (s *Store) enqueue(q chan cleanupReq, key, raw []byte) {
	select {
	case q <- cleanupReq{key: bytes.Clone(key), ptr: raw}:
		s.kickMaintainer()
	default:
	}
}

// Set stores r under key (see Write).
func (s *Store) Set(key []byte, r tier.Record) error {
	if r == nil {
		return fmt.Errorf("disktier: set %q: %w: nil record", key, tier.ErrCorrupt)
	}
	return s.Write([]tier.Op{{Key: key, Record: r}})
}

// Delete removes key (see Write). Deleting an absent key is not an error.
func (s *Store) Delete(key []byte) error {
	return s.Write([]tier.Op{{Key: key}})
}

// Write applies ops atomically in one Pebble batch, committed with a WAL
// sync. A record's bytes stay in the generation that was current when it was
// written until that generation is dropped, even when the key is deleted or
// overwritten. If the directory is at its bound, Write waits for eviction to
// make room (at most Options.WriteTimeout, then ErrNoSpace).
func (s *Store) Write(ops []tier.Op) error {
	if s.closed.Load() {
		return tier.ErrClosed
	}
	var cost int64
	for i, op := range ops {
		if len(op.Key) > MaxKeyLen {
			return fmt.Errorf("disktier: op %d: %w: key of %d bytes, limit %d", i, tier.ErrTooLarge, len(op.Key), MaxKeyLen)
		}
		if op.Record == nil {
			continue
		}
		if _, err := op.Record.Header(); err != nil {
			return fmt.Errorf("disktier: op %d: %w", i, err)
		}
		if int64(len(op.Record)) > s.maxRecord {
			return fmt.Errorf("disktier: op %d: %w: record of %d bytes, limit %d", i, tier.ErrTooLarge, len(op.Record), s.maxRecord)
		}
		cost += entryCost(len(op.Key), len(op.Record), s.inline(op.Record))
	}
	if cost > s.maxBatch {
		return fmt.Errorf("disktier: %w: batch of %d bytes, limit %d", tier.ErrTooLarge, cost, s.maxBatch)
	}
	if err := s.lockForWrite(cost); err != nil {
		return err
	}
	defer s.mu.Unlock()
	return s.applyLocked(ops, cost)
}

// lockForWrite acquires mu once a write of cost bytes fits under the bound,
// waiting for the maintainer to evict if it does not.
func (s *Store) lockForWrite(cost int64) error {
	need := s.room(cost)
	var timer *time.Timer
	for {
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			s.stopWaiting(timer, need)
			return tier.ErrClosed
		}
		if cost == 0 || s.estimate()+need <= s.hardLimit {
			s.stopWaiting(timer, need)
			return nil
		}
		s.waiting.Store(need)
		ch := s.progressChan()
		s.mu.Unlock()
		s.kickMaintainer()
		if timer == nil {
			timer = time.NewTimer(s.opts.WriteTimeout)
		}
		select {
		case <-ch:
		case <-s.done:
			s.stopWaiting(timer, need)
			return tier.ErrClosed
		case <-timer.C:
			s.stopWaiting(timer, need)
			return fmt.Errorf("%w: waited %v for eviction", ErrNoSpace, s.opts.WriteTimeout)
		}
	}
}

// stopWaiting ends a wait of lockForWrite, if it waited: the maintainer
// stops evicting for it (unless another writer asked since).
func (s *Store) stopWaiting(timer *time.Timer, need int64) {
	if timer != nil {
		timer.Stop()
		s.waiting.CompareAndSwap(need, 0)
	}
}

// estimate returns the directory's estimated size now: the last measurement
// plus everything committed since.
func (s *Store) estimate() int64 {
	u := s.usage.Load()
	return u.disk + s.written.Load() - u.written
}

func (s *Store) progressChan() <-chan struct{} {
	s.progress.Lock()
	defer s.progress.Unlock()
	if s.progress.ch == nil {
		s.progress.ch = make(chan struct{})
	}
	return s.progress.ch
}

func (s *Store) signalProgress() {
	s.progress.Lock()
	defer s.progress.Unlock()
	if s.progress.ch != nil {
		close(s.progress.ch)
		s.progress.ch = nil
	}
}

// readLocked returns the instance to read from with dbmu read-locked (the
// caller unlocks it), or the error a read gets now, with dbmu unlocked.
func (s *Store) readLocked() (*handle, error) {
	s.dbmu.RLock()
	h := s.h
	if h == nil {
		s.dbmu.RUnlock()
		if s.closed.Load() {
			return nil, tier.ErrClosed
		}
		return nil, ErrUnavailable
	}
	return h, nil
}

// writableLocked returns the instance to write to.
func (s *Store) writableLocked() (*handle, error) {
	switch h := s.h; {
	case s.closed.Load():
		return nil, tier.ErrClosed
	case h == nil || h.broken():
		return nil, ErrUnavailable
	default:
		return h, nil
	}
}

// applyLocked builds and commits the batch of ops: for a set p|key, the
// record under d|cur|key unless inline, and q|cur|key; for a delete, p|key
// only. The key count, the count of entries with an expiry and the current
// generation's bytes go in the same batch, so the persisted counters never
// disagree with the data. The commit is synced.
func (s *Store) applyLocked(ops []tier.Op, cost int64) error {
	return s.applyLockedWith(ops, cost, pebble.Sync)
}

// applyLockedWith is applyLocked committing with wo.
func (s *Store) applyLockedWith(ops []tier.Op, cost int64, wo *pebble.WriteOptions) error {
	h, err := s.writableLocked()
	if err != nil {
		return err
	}
	cur := s.mu.gens[len(s.mu.gens)-1]
	size := 64
	for _, op := range ops {
		size += 3*len(op.Key) + len(op.Record) + 96
	}
	b := h.db.NewBatchWithSize(size)
	// seen holds what p|key holds before each op: read up front for a
	// large batch, else when the key comes up; updated as the batch goes.
	var seen map[string]ptrState
	switch {
	case len(ops) >= batchLookupMin:
		if seen, err = s.ptrStatesLocked(h, ops); err != nil {
			return err
		}
	case len(ops) > 1:
		seen = make(map[string]ptrState, len(ops))
	}
	keys, expiring := s.mu.keys, s.mu.expiring
	ttl := false
	kb := keyBufs.Get().(*keyBuf)
	defer keyBufs.Put(kb)
	var ptr []byte
	for _, op := range ops {
		kb.b = appendPtrKey(kb.b[:0], op.Key)
		old, ok := seen[string(op.Key)]
		if !ok {
			old, err = s.ptrStateLocked(h, kb.b)
			if err != nil {
				_ = b.Close()
				return err
			}
		}
		if old.expiring {
			expiring-- // re-added below if the new record has an expiry
		}
		s.refs.unmark(op.Key) // a write is not a read: CLOCK's bit starts clear
		if op.Record == nil {
			if seen != nil {
				seen[string(op.Key)] = ptrState{}
			}
			if old.present {
				_ = b.Delete(kb.b, nil)
				keys--
			}
			continue
		}
		exp := op.Record.ExpireAt() != 0 // ptrExpires of the pointer written
		if seen != nil {
			seen[string(op.Key)] = ptrState{present: true, expiring: exp}
		}
		if exp {
			expiring++
		}
		// The records handed in may be unsealed and shared (tier.Seal):
		// the copy in the batch is sealed.
		inline := s.inline(op.Record)
		ptr = appendPointer(ptr[:0], cur.id, op.Record, inline)
		if inline {
			tier.Record(ptr[len(ptr)-len(op.Record):]).Seal()
		}
		_ = b.Set(kb.b, ptr, nil)
		if !inline {
			kb.b = appendGenKey(kb.b[:0], nsData, cur.id, op.Key)
			d := b.SetDeferred(len(kb.b), len(op.Record))
			copy(d.Key, kb.b)
			copy(d.Value, op.Record)
			tier.Record(d.Value).Seal()
			_ = d.Finish()
		}
		kb.b = appendGenKey(kb.b[:0], nsQueue, cur.id, op.Key)
		_ = b.Set(kb.b, nil, nil)
		if !old.present {
			keys++
		}
		ttl = ttl || exp
	}
	curBytes := cur.bytes + cost
	roll := curBytes >= s.genTarget
	_ = b.Set(metaGenKey(cur.id), le64(curBytes), nil)
	_ = b.Set(metaKeys, le64(keys), nil)
	_ = b.Set(metaExpiring, le64(expiring), nil)
	if roll {
		_ = b.Set(metaGenKey(cur.id+1), le64(0), nil)
	}
	if err := s.commitWith(h, b, wo); err != nil {
		return err
	}
	s.mu.keys, s.mu.expiring = keys, expiring
	s.mu.gens[len(s.mu.gens)-1].bytes = curBytes
	s.mu.live += cost
	if roll {
		s.mu.gens = append(s.mu.gens, genInfo{id: cur.id + 1})
	}
	s.written.Add(cost)
	s.publishLocked()
	if ttl {
		s.ttlWrites.Add(1)
	}
	if roll || s.mu.live > s.budget || s.estimate() > s.physHigh {
		s.kickMaintainer()
	}
	return nil
}

// ptrState is what a write finds in p|key before replacing or deleting it.
type ptrState struct {
	present  bool // p|key exists: it is counted in keys
	expiring bool // and its pointer has an expiry (ptrExpires): counted in expiring
}

// ptrStateLocked reads p|key (pk): whether it exists and whether its
// pointer has an expiry.
func (s *Store) ptrStateLocked(h *handle, pk []byte) (ptrState, error) {
	v, closer, err := h.db.Get(pk)
	switch {
	case err == nil:
		st := ptrState{present: true, expiring: ptrExpires(v)}
		return st, closer.Close()
	case errors.Is(err, pebble.ErrNotFound):
		return ptrState{}, nil
	case pebble.IsCorruptionError(err):
		// Unreadable: overwriting or deleting it is the cure. Count it as
		// present so that the key count stays an upper bound, and as
		// without expiry (its expiry cannot be read) so that the expiring
		// count does too.
		return ptrState{present: true}, nil
	default:
		s.errors.Add(1)
		return ptrState{}, fmt.Errorf("%w: read %q: %w", ErrStorage, pk, err)
	}
}

// batchLookupMin is the number of ops from which a write reads the
// pointers it replaces with one iterator, in key order (ptrStatesLocked),
// instead of one Get each. Measured with 2,000,000 SETs of 1 KB to random
// keys (redis-benchmark -c 16 -P 16, --mem-max 256MiB, write-through, so
// Writes of about 256 ops): the Gets were half of the daemon's CPU, most of
// it setting up a merging iterator over every level for each key.
const batchLookupMin = 8

// ptrStatesLocked reads the pointers of the keys of ops as ptrStateLocked
// does, sorted, through one iterator: the level iterators, the files they
// open and the blocks they read are reused from one key to the next. Every
// key of ops is in the result. An iterator stops at its first error, so on
// any error the keys are read again one by one by ptrStateLocked, which
// tells corruption (a cure by overwrite) from a failed read.
func (s *Store) ptrStatesLocked(h *handle, ops []tier.Op) (map[string]ptrState, error) {
	pks := make([][]byte, 0, len(ops))
	for _, op := range ops {
		pks = append(pks, appendPtrKey(nil, op.Key))
	}
	slices.SortFunc(pks, bytes.Compare)
	pks = slices.CompactFunc(pks, bytes.Equal)
	states := make(map[string]ptrState, len(pks))
	if it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: pks[0], UpperBound: ptrEnd(nil)}); err == nil {
		for _, pk := range pks {
			var st ptrState
			if it.SeekPrefixGE(pk) && bytes.Equal(it.Key(), pk) {
				v, err := it.ValueAndErr()
				if err != nil {
					break
				}
				st = ptrState{present: true, expiring: ptrExpires(v)}
			} else if it.Error() != nil {
				break
			}
			states[string(pk[1:])] = st
		}
		if err := it.Close(); err == nil && len(states) == len(pks) {
			return states, nil
		}
	}
	for _, pk := range pks {
		st, err := s.ptrStateLocked(h, pk)
		if err != nil {
			return nil, err
		}
		states[string(pk[1:])] = st
	}
	return states, nil
}

// removeIfUnchanged deletes the entries of reqs whose p|key still holds the
// pointer record the request names (any unreadable p|key when it names
// none), with their records apart if any, in one batch.
func (s *Store) removeIfUnchanged(reqs []cleanupReq) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.writableLocked()
	if err != nil {
		return
	}
	b := h.db.NewBatch()
	seen := make(map[string]bool, len(reqs))
	var n, nExp int64
	for _, r := range reqs {
		if seen[string(r.key)] {
			continue
		}
		pk := appendPtrKey(nil, r.key)
		cur, err := getCopy(h.db, pk)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			continue
		case err != nil && !(r.ptr == nil && pebble.IsCorruptionError(err)):
			continue
		case err == nil && !bytes.Equal(cur, r.ptr):
			continue
		}
		seen[string(r.key)] = true
		_ = b.Delete(pk, nil)
		if p, err := decodePointer(r.ptr); err == nil && !p.inline() {
			_ = b.Delete(appendGenKey(nil, nsData, p.gen, r.key), nil)
		}
		n++
		// cur equals r.ptr when readable; an unreadable pointer is taken
		// to have no expiry (see ptrStateLocked).
		if err == nil && ptrExpires(cur) {
			nExp++
		}
	}
	if n == 0 {
		_ = b.Close()
		return
	}
	_ = b.Set(metaKeys, le64(s.mu.keys-n), nil)
	_ = b.Set(metaExpiring, le64(s.mu.expiring-nExp), nil)
	if err := s.commit(h, b); err != nil {
		s.opts.Logger("disktier: delete %d entries: %v", n, err)
		return
	}
	s.mu.keys -= n
	s.mu.expiring -= nExp
	s.publishLocked()
}

// Meta returns the value PutMeta stored under name, or tier.ErrNotFound.
func (s *Store) Meta(name string) ([]byte, error) {
	if s.closed.Load() {
		return nil, tier.ErrClosed
	}
	s.dbmu.RLock()
	defer s.dbmu.RUnlock()
	if s.h == nil {
		if s.closed.Load() {
			return nil, tier.ErrClosed
		}
		return nil, ErrUnavailable
	}
	v, err := getCopy(s.h.db, metaUserKey(name))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return nil, tier.ErrNotFound
	case err != nil:
		s.errors.Add(1)
		return nil, fmt.Errorf("%w: meta %q: %w", ErrStorage, name, err)
	}
	return v, nil
}

// PutMeta durably stores value under name, apart from the cached entries:
// it is neither evicted nor removed by DropRange.
func (s *Store) PutMeta(name string, value []byte) error {
	if s.closed.Load() {
		return tier.ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.writableLocked()
	if err != nil {
		return err
	}
	b := h.db.NewBatch()
	_ = b.Set(metaUserKey(name), value, nil)
	return s.commit(h, b)
}

// MemoryBound is the most memory Pebble holds outside the Go heap's L1
// share while it is given batches of at most largestBatch bytes: its block
// cache, two memtables, and four batches — a batch larger than half a
// memtable is queued whole as a memtable of its own, Pebble queues up to
// two before it stalls writes, one more is being committed, and the flush
// copies a value once more on its way to a blob file; and the marks of
// the entries read since written (RefEntries of MaxBytes, RefEntryBytes
// each).
func (s *Store) MemoryBound(largestBatch int64) int64 {
	return s.opts.CacheSize + 2*s.opts.MemTableSize + 4*largestBatch + s.RefsMemory()
}

// RefsMemory is the part of MemoryBound the marks of read entries take (in
// the Go heap, whatever the build).
func (s *Store) RefsMemory() int64 { return int64(RefEntries(s.opts.MaxBytes)) * RefEntryBytes }

// Limits returns the longest key and the largest record Write accepts.
func (s *Store) Limits() (maxKey, maxRecord int) { return MaxKeyLen, int(s.maxRecord) }

// Stats returns the store's counters. Bytes is Pebble's own measure of the
// directory (Metrics().DiskSpaceUsage(), WAL included) as last sampled by
// the maintainer, at most about maintainEvery old.
func (s *Store) Stats() tier.Stats {
	return tier.Stats{
		Hits:      s.hits.Load(),
		Misses:    s.misses.Load(),
		Evictions: s.evictions.Load(),
		Bytes:     s.usage.Load().disk,
		MaxBytes:  s.opts.MaxBytes,
		Keys:      s.keysGauge.Load(),
		Expiring:  s.expiringGauge.Load(),
		Corrupt:   s.corrupt.Load(),
		Errors:    s.errors.Load(),
		Written:   uint64(s.writeBytes.Load()),

		SecondChances: s.rewrites.Load(),
	}
}

// Close stops the background goroutines, flushes the memtable (so that the
// next Open replays no WAL) and closes Pebble. It is idempotent and returns
// the same error every time.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		s.wg.Wait()
		s.mu.Lock()
		s.dbmu.Lock()
		s.cancelTasksLocked()
		if h := s.h; h != nil {
			if !h.broken() {
				if err := h.db.Flush(); err != nil {
					s.closeErr = fmt.Errorf("%w: flush: %w", ErrStorage, err)
				}
			}
			if err := s.closeHandle(h); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("%w: close: %w", ErrStorage, err)
			}
			s.h = nil
		}
		s.dbmu.Unlock()
		s.mu.Unlock()
		s.cache.Unref()
	})
	return s.closeErr
}

// Full reports whether what the store takes now pushes out what it holds
// (tier.FullReporter): its live generations are within two generations of
// the budget, or it has evicted since it opened and they fill half the
// budget or more (the maintainer may drop a generation more than the
// budget asks, when the directory's measure runs high, and the room that
// leaves is not room a one-time write should take).
func (s *Store) Full() bool {
	live := s.liveGauge.Load()
	return live >= s.budget-2*s.genTarget || (s.evictions.Load() > 0 && live >= s.budget/2)
}
