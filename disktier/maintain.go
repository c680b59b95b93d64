package disktier

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/tier"
)

// Timing of the maintainer.
const (
	// maintainEvery is how often the maintainer wakes when nobody kicks it:
	// it re-measures the directory, sweeps TTLs and checks the bound.
	maintainEvery = 50 * time.Millisecond
	// minStepGap spaces the maintainer's steps when writers waiting for
	// space keep kicking it, so that waiting costs no busy loop.
	minStepGap = 5 * time.Millisecond
	// physGrace is how long the maintainer waits after dropping a
	// generation before it drops another one because the measured size is
	// still high: Pebble needs a flush and a compaction to delete the files.
	physGrace = 500 * time.Millisecond
	// unlinkBatch is the number of keys of a dropped generation checked and
	// unlinked per batch (and per hold of the writer mutex).
	unlinkBatch = 256
	// maxChanceShare is the share, in quarters, of a dropped generation's
	// bytes that second chances may rewrite: each drop frees at least a
	// quarter of a generation, however many of its entries were read. (In
	// the simulator, a cap of a half cost 0.35 points of hits at 64 MiB, 3/4
	// 0.07, on the budget trace.)
	maxChanceShare = 3
	// chanceBatch bounds the bytes of second chances committed together
	// (and written under one hold of the writer mutex), so that writers
	// and readers interleave with a drop's rewrites.
	chanceBatch = 1 << 20
	// sweepEvery and sweepBatch rate-limit the TTL sweep to about 10k
	// pointer records a second.
	sweepEvery = 100 * time.Millisecond
	sweepBatch = 1024
	// queueBatch bounds the cleanup requests handled per step, so that
	// eviction is never starved.
	queueBatch = 64
	// recoverMin and recoverMax bound the back-off between attempts to
	// replace a faulty Pebble instance.
	recoverMin = 20 * time.Millisecond
	recoverMax = 2 * time.Second
)

// maintState is the maintainer's own state (only its goroutine uses it).
type maintState struct {
	lastStep time.Time
	lastDrop time.Time

	// TTL sweep.
	sweepNext   time.Time
	sweepCursor []byte // next p key to look at; nil between passes
	sweepTTL    uint64 // ttlWrites when the current pass started
	sweepSaw    bool   // the current pass saw a record with an expiry
	sweepIdle   uint64 // ttlWrites of the last pass that saw none

	// Recovery.
	recoverNext time.Time
	backoff     time.Duration
}

func (s *Store) kickMaintainer() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// maintain is the store's background writer: it evicts (rewriting the
// entries read since written: second chance), measures the directory,
// deletes expired ones, sweeps
// TTLs and replaces a faulty Pebble instance. Owned by Open, stopped by
// Close.
func (s *Store) maintain() {
	defer s.wg.Done()
	t := time.NewTicker(maintainEvery)
	defer t.Stop()
	var m maintState
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		case <-s.kick:
			if wait := minStepGap - time.Since(m.lastStep); wait > 0 {
				pause := time.NewTimer(wait)
				select {
				case <-s.done:
					pause.Stop()
					return
				case <-pause.C:
				}
			}
		}
		m.lastStep = time.Now()
		s.step(&m)
	}
}

func (s *Store) step(m *maintState) {
	defer s.signalProgress()
	s.dbmu.RLock()
	h := s.h
	s.dbmu.RUnlock()
	if h == nil || h.broken() {
		s.recover(m, h)
		return
	}
	s.measure()
	s.drainQueues(h)
	s.evict(m, h)
	s.sweep(m, h)
	if s.flushWant.Swap(false) {
		s.flush(h)
	}
}

// measure samples Pebble's measure of the directory.
func (s *Store) measure() {
	s.dbmu.RLock()
	defer s.dbmu.RUnlock()
	if s.h == nil {
		return
	}
	w := s.written.Load()
	disk := int64(s.h.db.Metrics().DiskSpaceUsage())
	s.usage.Store(&usageSample{disk: disk, written: w, at: time.Now()})
}

// evict drops the oldest generations while the live ones exceed the logical
// budget, and one more when the measured size stays high or a writer still
// waits for room (a batch larger than the room the budget leaves).
func (s *Store) evict(m *maintState, h *handle) {
	for s.liveGauge.Load() > s.budget && !s.closed.Load() {
		if dropped, err := s.dropOldest(m, h, true); err != nil || !dropped {
			return
		}
		m.lastDrop = time.Now()
		s.measure()
	}
	w := s.waiting.Load()
	high := s.usage.Load().disk > s.physHigh || (w > 0 && s.estimate()+w > s.hardLimit)
	if high && time.Since(m.lastDrop) > physGrace {
		// One second chance only, the first marked entry's: the directory
		// is over its bound already, but a generation of one large record
		// read all along must not lose it (TestDiskBound, 4 MB).
		if dropped, err := s.dropOldest(m, h, false); err == nil && dropped {
			m.lastDrop = time.Now()
		}
	}
}

// dropOldest evicts the oldest generation: every entry whose pointer still
// names it (found through the generation's q index, so the cost is per key
// of the generation, not per key stored) is unlinked, or, if it was read
// since written, rewritten into the current generation (refs: CLOCK's
// second chance; see secondChance for its bounds; without chances, the
// backstop's drop, only the first such entry is); then the
// generation's d and q spans are range-deleted, and the memtable is
// flushed so that Pebble can delete the generation's files whole. The q
// index is read a batch at a time, each through an iterator of its own, so
// that no iterator pins memtables and files while the batch is rewritten.
// The current generation is rolled first if it is the only one.
func (s *Store) dropOldest(m *maintState, h *handle, chances bool) (bool, error) {
	s.mu.Lock()
	if len(s.mu.gens) == 1 {
		cur := s.mu.gens[0]
		if cur.bytes == 0 {
			s.mu.Unlock()
			return false, nil
		}
		b := h.db.NewBatch()
		_ = b.Set(metaGenKey(cur.id+1), le64(0), nil)
		if err := s.commit(h, b); err != nil {
			s.mu.Unlock()
			return false, err
		}
		s.mu.gens = append(s.mu.gens, genInfo{id: cur.id + 1})
		s.publishLocked()
	}
	g := s.mu.gens[0].id
	var room chanceRoom
	if chances {
		room = chanceRoom{left: s.mu.gens[0].bytes * maxChanceShare / 4, forced: 1}
	} else {
		room = chanceRoom{left: 1, forced: 1}
	}
	s.mu.Unlock()

	next := genPrefix(nsQueue, g)
	for {
		keys, last, err := s.queueBatch(h, g, next)
		if err == nil && len(keys) > 0 {
			var marked [][]byte
			if room.left > 0 {
				kept := keys[:0]
				for _, k := range keys {
					if s.refs.marked(k, g) {
						marked = append(marked, k)
					} else {
						kept = append(kept, k)
					}
				}
				keys = kept
			}
			keys = append(keys, s.secondChance(h, g, marked, &room)...)
			err = s.unlink(h, g, keys)
		}
		if err != nil {
			s.opts.Logger("disktier: evict generation %d: %v", g, err)
			return false, err
		}
		if last == nil {
			break
		}
		next = append(last, 0) // the first key after last
	}

	s.mu.Lock()
	b := h.db.NewBatch()
	_ = b.DeleteRange(genPrefix(nsData, g), genEnd(nsData, g), nil)
	_ = b.DeleteRange(genPrefix(nsQueue, g), genEnd(nsQueue, g), nil)
	_ = b.Delete(metaGenKey(g), nil)
	if err := s.commit(h, b); err != nil {
		s.mu.Unlock()
		s.opts.Logger("disktier: evict generation %d: %v", g, err)
		return false, err
	}
	s.mu.live -= s.mu.gens[0].bytes
	s.mu.gens = s.mu.gens[1:]
	s.publishLocked()
	s.flushWant.Store(true)
	s.mu.compact = append(s.mu.compact,
		span{genPrefix(nsData, g), genEnd(nsData, g)}, span{genPrefix(nsQueue, g), genEnd(nsQueue, g)})
	s.mu.Unlock()
	s.refs.forget(g) // after the drop: a read of g's entries until then marked g
	s.wakeRecounter()
	return true, nil
}

// queueBatch returns the keys of up to unlinkBatch entries of generation
// g's q index from from on, and the last q key read (nil when the index
// has no more).
func (s *Store) queueBatch(h *handle, g uint64, from []byte) (keys [][]byte, last []byte, err error) {
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: genEnd(nsQueue, g)})
	if err != nil {
		s.errors.Add(1)
		return nil, nil, fmt.Errorf("%w: iterate generation %d: %w", ErrStorage, g, err)
	}
	for it.First(); it.Valid() && len(keys) < unlinkBatch; it.Next() {
		keys = append(keys, bytes.Clone(it.Key()[9:]))
	}
	if len(keys) == unlinkBatch {
		last = appendGenKey(nil, nsQueue, g, keys[len(keys)-1])
	}
	if err = errors.Join(it.Error(), it.Close()); err != nil {
		return nil, nil, fmt.Errorf("%w: iterate generation %d: %w", ErrStorage, g, err)
	}
	return keys, last, nil
}

// unlink deletes the pointers among keys that still name generation g.
func (s *Store) unlink(h *handle, g uint64, keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := h.db.NewBatch()
	var n, nExp int64
	var pk []byte
	for _, k := range keys {
		pk = appendPtrKey(pk[:0], k)
		v, closer, err := h.db.Get(pk)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			continue
		case pebble.IsCorruptionError(err):
			// Unreadable: it cannot be served anyway. Its expiry cannot be
			// read: taken as none (see ptrStateLocked).
		case err != nil:
			_ = b.Close()
			s.errors.Add(1)
			return fmt.Errorf("%w: read %q: %w", ErrStorage, pk, err)
		default:
			p, perr := decodePointer(v)
			exp := ptrExpires(v)
			_ = closer.Close()
			if perr == nil && p.gen != g {
				continue // rewritten since: lives on in a newer generation
			}
			if exp {
				nExp++
			}
		}
		_ = b.Delete(pk, nil)
		n++
	}
	if n == 0 {
		_ = b.Close()
		return nil
	}
	_ = b.Set(metaKeys, le64(s.mu.keys-n), nil)
	_ = b.Set(metaExpiring, le64(s.mu.expiring-nExp), nil)
	if err := s.commit(h, b); err != nil {
		return err
	}
	s.mu.keys -= n
	s.mu.expiring -= nExp
	s.publishLocked()
	s.evictions.Add(uint64(n))
	return nil
}

// flush asks Pebble to flush the memtable, so that range tombstones reach
// the sstables and the space they cover can be reclaimed.
func (s *Store) flush(h *handle) {
	if _, err := h.db.AsyncFlush(); err != nil {
		s.errors.Add(1)
		s.opts.Logger("disktier: flush: %v", err)
	}
}

// drainQueues handles the cleanup requests of readers.
func (s *Store) drainQueues(h *handle) {
	var reqs []cleanupReq
	for len(reqs) < queueBatch {
		select {
		case r := <-s.cleanupq:
			reqs = append(reqs, r)
			continue
		default:
		}
		break
	}
	if len(reqs) > 0 {
		s.removeIfUnchanged(reqs)
	}
}

// chanceRoom is what second chances one drop may still give, in bytes:
// left, a share of the generation, so that each drop frees room; and
// forced, given whatever the directory's estimate, the rest only while
// the estimate stays within MaxBytes (below the writers' bound: a second
// chance is worth less than a write). dropOldest forces one entry, the
// first: in
// a full directory (writers waiting for room, the estimate at the bound)
// the hottest entry of a generation of one large record would otherwise
// never get its chance (disktier's TestDiskBound, 4 MB records in
// 64 MiB), while forcing a whole share let the directory reach 1.12 ×
// MaxBytes when every entry was read (TestSecondChanceEveryEntryRead;
// 1.05–1.08 now, on a loaded machine).
type chanceRoom struct{ left, forced int64 }

// secondChance rewrites the entries of keys, read since they were
// written, from generation g, about to be dropped, into the current
// generation, and returns the keys it did not rewrite, for the caller to
// unlink. An entry is rewritten only if its record verifies and has not
// expired, if its pointer still names g (readChance) and is still the one
// read when the batch is applied (applyChances), while room lasts (see
// chanceRoom). Batches stay under chanceBatch and half a memtable.
func (s *Store) secondChance(h *handle, g uint64, keys [][]byte, room *chanceRoom) (left [][]byte) {
	var batch []chance
	var cost int64
	apply := func() {
		l, ok := s.applyChances(h, batch, room.forced > 0)
		if !ok {
			room.left = 0 // no more this drop
		}
		room.forced -= cost
		left = append(left, l...)
		batch, cost = batch[:0], 0
	}
	now := s.nowMs()
	for i, k := range keys {
		if room.left <= 0 {
			left = append(left, keys[i:]...)
			break
		}
		e, ok := s.readChance(h, g, k, now)
		if !ok {
			left = append(left, k)
			continue
		}
		if cost > 0 && (cost+e.cost > min(s.opts.MemTableSize/2, chanceBatch) || (room.forced > 0 && cost+e.cost > room.forced)) {
			apply()
		}
		room.left -= e.cost
		batch = append(batch, e)
		cost += e.cost
	}
	if len(batch) > 0 {
		apply()
	}
	return left
}

// chance is an entry read for a second chance: its key, its pointer and
// record as read, and its entryCost.
type chance struct {
	key, ptr []byte
	rec      tier.Record
	cost     int64
}

// readChance reads the entry of k for a second chance out of generation
// g: ok only if its pointer names g and it has not expired, and its
// record verifies.
func (s *Store) readChance(h *handle, g uint64, k []byte, now int64) (chance, bool) {
	raw, err := getCopy(h.db, appendPtrKey(nil, k))
	if err != nil {
		return chance{}, false
	}
	p, err := decodePointer(raw)
	if err != nil || p.gen != g || p.expired(now) {
		return chance{}, false
	}
	rec := tier.Record(raw[ptrHdrSize:])
	if !p.inline() {
		if rec, err = getCopy(h.db, appendGenKey(nil, nsData, g, k)); err != nil {
			return chance{}, false
		}
	}
	if rec.Verify() != nil || (rec.ExpireAt() != 0 && rec.ExpireAt() <= now) {
		return chance{}, false
	}
	return chance{key: k, ptr: raw, rec: rec, cost: entryCost(len(k), len(rec), s.inline(rec))}, true
}

// applyChances rewrites batch into the current generation, under the
// writer mutex: the entries whose pointer is still the one read (a write
// or a delete since wins, and its key is returned in left), if force or
// if the directory's estimate stays within MaxBytes (see chanceRoom). ok
// is false when nothing could be written (no room, an
// error): every key is then in left.
func (s *Store) applyChances(h *handle, batch []chance, force bool) (left [][]byte, ok bool) {
	s.mu.Lock()
	ops := make([]tier.Op, 0, len(batch))
	var cost int64
	for _, e := range batch {
		if cur, err := getCopy(h.db, appendPtrKey(nil, e.key)); err != nil || !bytes.Equal(cur, e.ptr) {
			left = append(left, e.key) // changed since: unlink checks it
			continue
		}
		ops = append(ops, tier.Op{Key: e.key, Record: e.rec})
		cost += e.cost
	}
	var err error
	switch {
	case len(ops) == 0:
	case !force && s.estimate()+s.room(cost) > s.physHigh:
		err = errNoRoomForChance
	default:
		// Not synced: the drop's range delete, committed after it with a
		// sync, makes it durable; a crash before that keeps the generation
		// and the entry's copy in it.
		err = s.applyLockedWith(ops, cost, pebble.NoSync)
	}
	s.mu.Unlock()
	if err != nil {
		if !errors.Is(err, tier.ErrClosed) && !errors.Is(err, errNoRoomForChance) {
			s.opts.Logger("disktier: second chance for %d entries: %v", len(ops), err)
		}
		for _, op := range ops {
			left = append(left, op.Key)
		}
		return left, false
	}
	s.rewrites.Add(uint64(len(ops)))
	return left, true
}

// errNoRoomForChance: the directory has no room for a batch of second
// chances within MaxBytes.
var errNoRoomForChance = errors.New("disktier: no room for second chances")

// sweep reclaims expired entries: a rate-limited, incremental pass over the
// pointer records (their header holds the expiry), resumed where the last
// step stopped. Passes stop while no record with an expiry is stored.
func (s *Store) sweep(m *maintState, h *handle) {
	now := time.Now()
	if now.Before(m.sweepNext) {
		return
	}
	m.sweepNext = now.Add(sweepEvery)
	if m.sweepCursor == nil {
		ttl := s.ttlWrites.Load()
		if ttl == m.sweepIdle {
			return
		}
		m.sweepCursor, m.sweepTTL, m.sweepSaw = []byte{nsPtr}, ttl, false
	}
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: m.sweepCursor, UpperBound: ptrEnd(nil)})
	if err != nil {
		return
	}
	nowMs := s.nowMs()
	var expired []cleanupReq
	n := 0
	for it.First(); it.Valid() && n < sweepBatch; it.Next() {
		n++
		v, err := it.ValueAndErr()
		if err != nil {
			continue
		}
		p, err := decodePointer(v)
		if err != nil || p.expireAt == 0 {
			continue
		}
		m.sweepSaw = true
		if p.expired(nowMs) {
			expired = append(expired, cleanupReq{key: bytes.Clone(it.Key()[1:]), ptr: bytes.Clone(v)})
		}
	}
	if it.Valid() {
		m.sweepCursor = bytes.Clone(it.Key())
	} else {
		m.sweepCursor = nil
		if !m.sweepSaw {
			m.sweepIdle = m.sweepTTL
		}
	}
	_ = it.Close()
	if len(expired) > 0 {
		s.removeIfUnchanged(expired)
	}
}

// recover replaces a faulty (or missing) Pebble instance once the directory
// accepts writes again. Until then the faulty instance keeps serving reads.
func (s *Store) recover(m *maintState, h *handle) {
	now := time.Now()
	if now.Before(m.recoverNext) {
		return
	}
	m.backoff = min(max(2*m.backoff, recoverMin), recoverMax)
	m.recoverNext = now.Add(m.backoff)
	if h != nil && h.wedged.Load() {
		// Pebble keeps the directory locked in this process; only a restart
		// can reopen it. Reported once.
		if m.backoff == recoverMin {
			s.opts.Logger("disktier: pebble is wedged after a panic; restart the process to recover the disk tier")
		}
		return
	}
	if err := s.probe(); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h != nil {
		s.dbmu.Lock()
		s.cancelTasksLocked()
		s.h = nil
		s.dbmu.Unlock()
		if err := s.closeHandle(h); err != nil {
			s.opts.Logger("disktier: close faulty pebble instance: %v", err)
		}
	}
	nh, err := s.openHandle()
	if err == nil {
		if err = s.loadStateLocked(nh); err != nil {
			_ = s.closeHandle(nh)
		}
	}
	if err != nil {
		s.errors.Add(1)
		s.opts.Logger("disktier: reopen: %v", err)
		return
	}
	s.dbmu.Lock()
	s.h = nh
	s.dbmu.Unlock()
	s.measure()
	m.backoff, m.recoverNext = 0, time.Time{}
	m.sweepCursor = nil
	s.opts.Logger("disktier: pebble reopened after a storage fault")
}

// probe checks that the directory accepts a synced write.
func (s *Store) probe() error {
	fs := s.opts.FS
	name := fs.PathJoin(s.opts.Dir, "disktier-probe.tmp")
	f, err := fs.Create(name, "disktier-probe")
	if err != nil {
		return err
	}
	_, err = f.Write(make([]byte, 4*KiB))
	err = errors.Join(err, f.Sync(), f.Close())
	return errors.Join(err, fs.Remove(name))
}
