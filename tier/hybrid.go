package tier

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/internal/bufpool"
)

// Hybrid composes an L1 memory tier and an L2 disk tier into one cache with
// promotion, demotion, write-through or write-back, and model-version
// fencing. See the package documentation for the design.
type Hybrid struct {
	opts  Options
	l1    Mem
	l2    Disk
	clock Clock

	modelsMu sync.Mutex // serializes ApplyModels and registry persistence
	reg      atomic.Pointer[registry]
	regDirty atomic.Bool   // the registry in memory is newer than the persisted one
	regDrops []modelDrop   // ApplyModelsAsync's range deletes not yet written; guarded by modelsMu
	regKick  chan struct{} // wakes registryLoop
	regDone  chan struct{} // closed when registryLoop returns

	// stripes order writes of a key against readers that act on what they
	// read: a writer bumps its stripe's seq under the stripe's mu, after
	// its write is visible; a reader that saw seq before looking the key up
	// and still sees it under mu knows no write of the stripe overlapped
	// its lookup. Promotion relies on it (an older copy is never promoted
	// over a newer write), and so do read-modify-writes (lockedGet). The
	// bump must come after the write: a reader loading seq in the middle of
	// a write could otherwise miss the write and then see seq unchanged.
	// A demotion bumps it too, once the record is queued: L1 no longer
	// holds the key, and L2 will have a newer copy than it has now, which
	// the warm-up, unlike a client's read, does not find in L1 first.
	seed    maphash.Seed
	stripes [stripeCount]stripe

	pend struct {
		sync.Mutex // guards the fields below
		byKey      map[string]*pendingOp
		queue      []*pendingOp // in write order; the flusher commits from the front
		bytes      int64
		failing    bool // the last L2 write failed
		space      *sync.Cond
		// queued and dequeued count the ops ever appended to the queue
		// and ever taken off its front (committed, shed or dropped by
		// FlushAll): the warm-up waits for dequeued to reach queued.
		queued, dequeued uint64
	}

	flushMu sync.Mutex // serializes flush: the flusher takes batches from the queue's front

	warm struct {
		done     chan struct{} // closed when warmUp returns (at once without it)
		finished atomic.Bool   // warmUp returned, or never ran
		bytes    atomic.Int64  // bytes of keys and records it copied to L1
		keys     atomic.Uint64 // entries it copied to L1
	}

	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	promotions, demotions  atomic.Uint64
	modelStats             modelStats // Get outcomes by model
	staleWrites, rollouts  atomic.Uint64
	l2WriteErrs, l2ReadErr atomic.Uint64
	dropped                atomic.Uint64
}

var _ Tier = (*Hybrid)(nil)

// stripeCount is the number of stripes (see Hybrid.stripes).
const stripeCount = 256

type stripe struct {
	mu  sync.Mutex
	seq atomic.Uint64

	// The lookup counters of the stripe's keys (HybridStats sums them):
	// every GET counts, so one shared counter would be a cache line that
	// all cores write.
	hits, misses     atomic.Uint64
	l1Hits, l1Misses atomic.Uint64
	l2Hits, l2Misses atomic.Uint64

	_ [128 - 64]byte // keep stripes on separate cache lines
}

// pendingOp is a write waiting for L2. rec is nil for a delete. Records in
// pendingOps are never modified once queued, so readers may return them.
type pendingOp struct {
	key    string
	lkey   []byte
	rec    Record
	sc     Scope  // set for scoped keys: the op is dropped if the record
	epoch  uint64 // is no longer current when it would reach L2
	scoped bool
	queued time.Time // when it was queued (monotonic), for back-pressure
}

func (op *pendingOp) size() int64 { return int64(len(op.key) + len(op.lkey) + len(op.rec) + 64) }

// NewHybrid composes opts.L1 and opts.L2, loads the persisted model registry
// from L2 and starts the flusher. Close it to flush and release both tiers.
func NewHybrid(opts Options) (*Hybrid, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	reg, err := loadRegistry(opts.L2)
	if err != nil {
		return nil, err
	}
	h := &Hybrid{
		opts:  opts,
		l1:    opts.L1,
		l2:    opts.L2,
		clock: opts.Clock,
		seed:  maphash.MakeSeed(),
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),

		regKick: make(chan struct{}, 1),
		regDone: make(chan struct{}),
	}
	if m, ok := opts.L1.(interface{ Buffers() *bufpool.Pool }); ok && m.Buffers() != opts.Buffers {
		return nil, errors.New("tier: L1 and the Hybrid must share one buffer pool (Options.Buffers)")
	}
	h.reg.Store(reg)
	h.pend.byKey = make(map[string]*pendingOp)
	h.pend.space = sync.NewCond(&h.pend.Mutex)
	h.l1.SetOnEvict(h.onEvict)
	h.warm.done = make(chan struct{})
	go h.flushLoop()
	go h.registryLoop()
	if rr, ok := opts.L2.(RecentReader); ok && opts.WarmBytes > 0 {
		go h.warmUp(rr, opts.WarmBytes)
	} else {
		h.warm.finished.Store(true)
		close(h.warm.done)
	}
	return h, nil
}

func (h *Hybrid) stripe(key []byte) *stripe {
	return &h.stripes[h.stripeIndex(key)]
}

// stripeIndex is the index of key's stripe in h.stripes.
func (h *Hybrid) stripeIndex(key []byte) uint64 {
	return maphash.Bytes(h.seed, key) % stripeCount
}

// l2Key is the L2 key of key: model-scoped keys live under their model and
// epoch so that a model's stale epochs are one range.
func l2Key(key []byte, scoped bool, model string, epoch uint64) []byte {
	if scoped {
		return ModelKey(model, epoch, key)
	}
	return PlainKey(key)
}

// Get returns the live record of key. A record of a model-scoped key written
// under an older version of the model, an expired record and an absent key
// are all ErrNotFound. The caller must not modify the returned record.
// With Options.Buffers the record may live in a recycled buffer: hold it
// only while a bufpool.Guard of that pool is pinned (or as an owner, with
// Retain).
func (h *Hybrid) Get(key []byte) (Record, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	i := h.stripeIndex(key)
	st := &h.stripes[i]
	r, mc, err := h.get(key, st, true)
	switch {
	case err == nil:
		st.hits.Add(1)
		mc.count(true, i)
	case errors.Is(err, ErrNotFound):
		st.misses.Add(1)
		mc.count(false, i)
	}
	return r, err
}

// get looks key, of stripe st, up. With promote, an L2 hit is copied to
// L1; callers that hold the stripe's lock pass false (promotion takes it).
// With promote (a client's GET) it also returns the per-model counters the
// outcome goes to (see modelStats); callers without promote ignore them.
func (h *Hybrid) get(key []byte, st *stripe, promote bool) (Record, *modelCounts, error) {
	sc, scoped, err := ParseScope(key)
	if err != nil {
		return nil, &h.modelStats.unscoped, err
	}
	mc := &h.modelStats.unscoped
	var ms ModelState
	if scoped {
		ms = h.reg.Load().model(sc.Model)
		switch {
		case !promote:
		case ms.Version == "":
			mc = &h.modelStats.unregistered
		default:
			mc = h.modelStats.of(sc.Model)
		}
		if ms.otherVersion(sc) {
			return nil, mc, ErrNotFound
		}
	}
	r, err := h.lookup(key, st, promote, sc, scoped, ms)
	return r, mc, err
}

// lookup is get after the scope check: L1, the write queue, then L2.
func (h *Hybrid) lookup(key []byte, st *stripe, promote bool, sc Scope, scoped bool, ms ModelState) (Record, error) {
	seq := st.seq.Load() // before any lookup: see Hybrid.stripes

	if r, err := h.l1.Get(key); err == nil {
		if !scoped || ms.current(sc, r.Epoch()) {
			st.l1Hits.Add(1)
			return r, nil
		}
		_ = h.l1.Delete(key) // written before the model changed
	}
	st.l1Misses.Add(1)

	if op, ok := h.pendingGet(key); ok {
		if op.rec == nil || (scoped && !ms.current(sc, op.epoch)) || op.rec.Expired(h.nowMs()) {
			return nil, ErrNotFound
		}
		return op.rec, nil
	}

	r, err := h.l2.Get(l2Key(key, scoped, sc.Model, ms.epochOf(sc)))
	if err != nil {
		st.l2Misses.Add(1)
		if !errors.Is(err, ErrNotFound) {
			h.l2ReadErr.Add(1)
			h.opts.OnError("read", err)
		}
		return nil, ErrNotFound
	}
	if scoped && !ms.current(sc, r.Epoch()) {
		// Cannot happen (the L2 key holds the epoch) unless L2 is damaged.
		st.l2Misses.Add(1)
		return nil, ErrNotFound
	}
	st.l2Hits.Add(1)
	if promote {
		h.promote(key, r, st, seq)
	}
	return r, nil
}

// promote copies an L2 hit into L1 unless a write of the key happened since
// the lookup started (seq) or the record is too large for L1.
func (h *Hybrid) promote(key []byte, r Record, st *stripe, seq uint64) {
	if len(key)+len(r) > h.l1.MaxRecord() {
		return
	}
	r.SetFlags(r.Flags() | FlagClean)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.seq.Load() != seq {
		return
	}
	if h.l1.Set(key, r) == nil {
		h.promotions.Add(1)
	}
}

// Expired reports whether r is expired at nowMs. It must only be called on a
// record that parsed.
func (r Record) Expired(nowMs int64) bool {
	e := r.ExpireAt()
	return e != 0 && e <= nowMs
}

func (h *Hybrid) nowMs() int64 { return h.clock.Now().UnixMilli() }

// Set stores r under key, implementing Tier. The record's expiry is kept;
// for a model-scoped key its epoch and tag are set from the registry (which
// may copy the record). See SetValue.
func (h *Hybrid) Set(key []byte, r Record) error {
	hdr, err := r.Header()
	if err != nil {
		return err
	}
	if hdr.Epoch == 0 && hdr.Tag == "" && (hdr.Flags&FlagClean != 0) == (h.opts.WritePolicy == WriteThrough) {
		if _, scoped, err := ParseScope(key); err != nil {
			return err
		} else if !scoped {
			return h.put(key, r, Scope{}, false, 0)
		}
	}
	return h.SetValue(key, r.Value(), hdr.ExpireAt)
}

// SetValue stores value under key with expiry expireAt (Unix ms, 0 = none).
//
// For a key {MODEL@X}… while the registry has MODEL at another version it
// stores nothing and returns a *StaleError. Records of model-scoped keys are
// tagged with the model's current epoch and version.
//
// With write-through the write is queued for L2 at once; Set returns when
// it is in L1 (or, for a record too large for L1, in the queue that reads
// consult), and waits only when more than MaxPending bytes are queued.
func (h *Hybrid) SetValue(key, value []byte, expireAt int64) error {
	return h.setValue(key, value, expireAt, nil)
}

// setValue is SetValue with SetArgs.Spare.
func (h *Hybrid) setValue(key, value []byte, expireAt int64, spare []byte) error {
	if h.closed.Load() {
		return ErrClosed
	}
	hdr, sc, scoped, err := h.header(key, expireAt)
	if err != nil {
		return err
	}
	return h.put(key, newRecordIn(hdr, spare, value), sc, scoped, hdr.Epoch)
}

func (h *Hybrid) put(key []byte, r Record, sc Scope, scoped bool, epoch uint64) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if err := h.fitsL2(key, r, sc, scoped, epoch); err != nil {
		return err
	}
	st := h.stripe(key)
	st.mu.Lock()
	h.putLocked(key, r, sc, scoped, epoch)
	st.mu.Unlock()
	h.waitForSpace()
	return nil
}

// fitsL2 refuses a key or record L2 could not store: queued, it would fail
// every batch it is in.
func (h *Hybrid) fitsL2(key []byte, r Record, sc Scope, scoped bool, epoch uint64) error {
	maxKey, maxRecord := h.l2.Limits()
	if n := len(l2Key(key, scoped, sc.Model, epoch)); n > maxKey {
		return &TooLargeError{What: "key", Size: len(key), Max: maxKey - (n - len(key))}
	}
	if len(r) > maxRecord {
		return &TooLargeError{What: "value", Size: len(r.Value()), Max: maxRecord - (len(r) - len(r.Value()))}
	}
	return nil
}

// putLocked stores r in L1 and queues it for L2 as the write policy says.
// The caller holds key's stripe lock.
func (h *Hybrid) putLocked(key []byte, r Record, sc Scope, scoped bool, epoch uint64) {
	defer h.stripe(key).seq.Add(1) // once the write is visible: see Hybrid.stripes
	inL1 := len(key)+len(r) <= h.l1.MaxRecord() && h.l1.Set(key, r) == nil
	if !inL1 {
		_ = h.l1.Delete(key) // an older copy must not shadow this write
	}
	op := &pendingOp{key: string(key), rec: r, sc: sc, epoch: epoch, scoped: scoped}
	switch {
	case h.opts.WritePolicy == WriteThrough || !inL1:
		op.lkey = l2Key(key, scoped, sc.Model, epoch)
		h.enqueue(op)
	case r.ExpireAt() != 0:
		// Write-back: when this record expires in L1, an older copy in L2
		// must not reappear, so delete it now.
		op.rec = nil
		op.lkey = l2Key(key, scoped, sc.Model, epoch)
		h.enqueue(op)
	}
}

// Delete removes key from both tiers. Deleting an absent key is not an error.
func (h *Hybrid) Delete(key []byte) error {
	if h.closed.Load() {
		return ErrClosed
	}
	sc, scoped, err := ParseScope(key)
	if err != nil {
		return err
	}
	var epoch uint64
	if scoped {
		epoch = h.reg.Load().model(sc.Model).epochOf(sc)
	}
	st := h.stripe(key)
	st.mu.Lock()
	h.deleteLocked(key, sc, scoped, epoch)
	st.mu.Unlock()
	h.waitForSpace()
	return nil
}

// deleteLocked removes key from L1 and queues its deletion from L2. The
// caller holds key's stripe lock.
func (h *Hybrid) deleteLocked(key []byte, sc Scope, scoped bool, epoch uint64) {
	defer h.stripe(key).seq.Add(1) // once the delete is visible: see Hybrid.stripes
	_ = h.l1.Delete(key)
	h.enqueue(&pendingOp{key: string(key), lkey: l2Key(key, scoped, sc.Model, epoch), sc: sc, epoch: epoch, scoped: scoped})
}

// onEvict is L1's eviction callback: it runs under an L1 lock, so it only
// queues the record for L2 (demotion); the record is not copied, as L1 hands
// over records that nothing modifies. Records L2 already has (FlagClean),
// expired records and stale ones are dropped.
func (h *Hybrid) onEvict(key string, r Record) {
	if err := r.Check(); err != nil || r.Flags()&FlagClean != 0 || r.Expired(h.nowMs()) {
		return
	}
	sc, scoped, err := ParseScope([]byte(key))
	if err != nil {
		return
	}
	if scoped && !h.reg.Load().model(sc.Model).current(sc, r.Epoch()) {
		return
	}
	h.enqueue(&pendingOp{key: key, lkey: l2Key([]byte(key), scoped, sc.Model, r.Epoch()), rec: r, sc: sc, epoch: r.Epoch(), scoped: scoped})
	h.stripes[maphash.String(h.seed, key)%stripeCount].seq.Add(1) // see Hybrid.stripes
	h.demotions.Add(1)
}

func (h *Hybrid) enqueue(op *pendingOp) {
	if op.rec != nil {
		if _, ok := h.opts.Buffers.Retain(op.rec); !ok {
			// The record's buffer is retired (the caller holds it under
			// a pinned guard, past its last owner): queue a copy.
			op.rec = bytes.Clone(op.rec)
		}
	}
	op.queued = time.Now()
	h.pend.Lock()
	h.pend.byKey[op.key] = op
	h.pend.queue = append(h.pend.queue, op)
	h.pend.bytes += op.size()
	h.pend.queued++
	h.pend.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *Hybrid) pendingGet(key []byte) (*pendingOp, bool) {
	h.pend.Lock()
	op, ok := h.pend.byKey[string(key)]
	h.pend.Unlock()
	return op, ok
}

// waitForSpace applies back-pressure: it waits while more than MaxPending
// bytes wait for L2, or while the oldest write has waited for more than a
// quarter of FlushInterval (the disk is not keeping up, and letting the queue grow
// would break the durability promise), unless L2 is failing: then the
// flusher sheds the oldest writes instead, and blocking would only stop L1
// from serving.
func (h *Hybrid) waitForSpace() {
	h.pend.Lock()
	for h.backlogLocked() && !h.pend.failing && !h.closed.Load() {
		h.pend.space.Wait()
	}
	h.pend.Unlock()
}

func (h *Hybrid) backlogLocked() bool {
	q := h.pend.queue
	if len(q) <= 1 {
		return false
	}
	return h.pend.bytes > h.opts.MaxPending || time.Since(q[0].queued) > h.opts.FlushInterval/4
}

func (h *Hybrid) flushLoop() {
	defer close(h.done)
	t := newTicker(h.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.kick:
		case <-t.C:
		}
		_ = h.flush()
		h.applyPendingModels() // retries what failed
	}
}

// flush commits the pending queue to L2, in batches of at most MaxBatch
// bytes, until it is empty or L2 fails.
func (h *Hybrid) flush() error {
	h.flushMu.Lock()
	defer h.flushMu.Unlock()
	for {
		h.pend.Lock()
		n, size := 0, int64(0)
		for n < len(h.pend.queue) && (n == 0 || size+h.pend.queue[n].size() <= h.opts.MaxBatch) {
			size += h.pend.queue[n].size()
			n++
		}
		batch := append([]*pendingOp(nil), h.pend.queue[:n]...)
		h.pend.Unlock()
		if n == 0 {
			return nil
		}

		reg, now := h.reg.Load(), h.nowMs()
		ops := make([]Op, 0, n)
		for _, op := range batch {
			if op.scoped && !reg.model(op.sc.Model).current(op.sc, op.epoch) {
				continue // the model moved on: the entry is stale
			}
			if op.rec != nil && op.rec.Expired(now) {
				ops = append(ops, Op{Key: op.lkey}) // never store it; drop any older copy
				continue
			}
			ops = append(ops, Op{Key: op.lkey, Record: op.rec})
		}
		err := h.l2.Write(ops)

		h.pend.Lock()
		if err != nil {
			h.pend.failing = true
			h.l2WriteErrs.Add(1)
			h.shedLocked()
			h.pend.space.Broadcast()
			h.pend.Unlock()
			h.opts.OnError("write", err)
			return err
		}
		h.pend.failing = false
		h.removeFrontLocked(n)
		h.pend.space.Broadcast()
		h.pend.Unlock()
	}
}

// removeFrontLocked removes the first n ops of the queue, which were
// committed (or shed).
func (h *Hybrid) removeFrontLocked(n int) {
	for _, op := range h.pend.queue[:n] {
		if h.pend.byKey[op.key] == op {
			delete(h.pend.byKey, op.key)
		}
		h.pend.bytes -= op.size()
		h.opts.Buffers.Release(op.rec) // readers that found it hold it under their guards
	}
	clear(h.pend.queue[:n])
	h.pend.queue = h.pend.queue[n:]
	h.pend.dequeued += uint64(n)
	if len(h.pend.queue) == 0 {
		h.pend.queue = nil
	}
}

// shedLocked drops the oldest pending writes while more than MaxPending
// bytes wait for a failing L2; L1 keeps serving what it holds.
func (h *Hybrid) shedLocked() {
	n := 0
	for b := h.pend.bytes; b > h.opts.MaxPending && n < len(h.pend.queue)-1; n++ {
		b -= h.pend.queue[n].size()
	}
	if n > 0 {
		h.dropped.Add(uint64(n))
		h.removeFrontLocked(n)
	}
}

// Buffers returns the pool records may be read into (Options.Buffers):
// whoever reads values into its buffers for SetArgs.Spare must pin a
// bufpool.Guard while it holds records it looked up. It may be nil.
func (h *Hybrid) Buffers() *bufpool.Pool { return h.opts.Buffers }

// Flush commits every pending write to L2 now.
func (h *Hybrid) Flush() error {
	if h.closed.Load() {
		return ErrClosed
	}
	return h.flush()
}

// QueueLimits returns the write queue's bound on pending bytes
// (Options.MaxPending) and the largest batch the flusher commits
// (Options.MaxBatch; a single record larger than it goes alone).
func (h *Hybrid) QueueLimits() (maxPending, maxBatch int64) {
	return h.opts.MaxPending, h.opts.MaxBatch
}

// Close stops the flusher, writes L1-only records down to L2 (write-back),
// commits what is pending, and closes both tiers. It is idempotent and
// returns the first error.
func (h *Hybrid) Close() error {
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		close(h.stop)
		h.pend.Lock()
		h.pend.space.Broadcast() // wakes the warm-up waiting for the queue
		h.pend.Unlock()
		<-h.warm.done
		<-h.done
		<-h.regDone
		h.pend.Lock()
		h.pend.space.Broadcast()
		h.pend.Unlock()

		var errs []error
		if h.opts.WritePolicy == WriteBack {
			errs = append(errs, h.writeBackAll())
		}
		if err := h.flush(); err != nil {
			errs = append(errs, fmt.Errorf("tier: final flush: %w", err))
		}
		h.applyPendingModels()
		if h.regDirty.Load() {
			errs = append(errs, errors.New("tier: model registry not persisted"))
		}
		errs = append(errs, h.l1.Close(), h.l2.Close())
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

// writeBackAll queues every dirty L1 record for L2, flushing in batches so
// that memory stays bounded.
func (h *Hybrid) writeBackAll() error {
	var firstErr error
	h.l1.Range(func(key []byte, r Record) bool {
		if r.Flags()&FlagClean != 0 || r.Expired(h.nowMs()) {
			return true
		}
		sc, scoped, err := ParseScope(key)
		if err != nil || (scoped && !h.reg.Load().model(sc.Model).current(sc, r.Epoch())) {
			return true
		}
		h.enqueue(&pendingOp{key: string(key), lkey: l2Key(key, scoped, sc.Model, r.Epoch()), rec: r, sc: sc, epoch: r.Epoch(), scoped: scoped})
		h.demotions.Add(1)
		h.pend.Lock()
		full := h.pend.bytes >= h.opts.MaxBatch
		h.pend.Unlock()
		if full {
			if err := h.flush(); err != nil {
				firstErr = err
				return false
			}
		}
		return true
	})
	return firstErr
}
