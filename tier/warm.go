package tier

import (
	"errors"
	"runtime"
	"time"
)

// Pacing of the warm-up (see the package documentation, "Warm-up").
const (
	// warmBatch is the most bytes of records one step reads from L2: a
	// client ready to run waits for at most one step, and so does Close.
	warmBatch = 256 << 10
	// warmMinPause and warmMaxPause bound the pause after a step during
	// which clients queued writes.
	warmMinPause = 100 * time.Microsecond
	warmMaxPause = 50 * time.Millisecond
)

// warmUp copies L2's most recently written or read entries up to L1, one
// step of at most warmBatch bytes at a time, until L1 holds limit bytes,
// L1 has no room for the next entry or evicts anything (it is full: a
// warmed entry would push out another), every entry was read, or the
// Hybrid closes. Owned by NewHybrid, stopped by Close.
func (h *Hybrid) warmUp(rr RecentReader, limit int64) {
	defer close(h.warm.done)
	defer h.warm.finished.Store(true)
	evictions := h.l1.Stats().Evictions
	var cursor []byte
	for first := true; first || cursor != nil; first = false {
		l1 := h.l1.Stats()
		if l1.Bytes >= limit || l1.Evictions != evictions {
			return
		}
		var ok bool
		if cursor, ok = h.warmStep(rr, cursor, min(warmBatch, limit-l1.Bytes)); !ok {
			return
		}
	}
}

// warmStep reads up to maxBytes of entries from L2 at cursor and copies
// them to L1. It returns the cursor to go on from, and false when the
// warm-up must stop: the Hybrid is closing, or L2 failed.
//
// Foreground requests keep priority. The step waits until every write
// queued before it has left the write queue, so that the L2 read sees
// them, and reads a bounded batch without any lock of the Hybrid. When
// clients queued writes during the step, it then pauses for as long as
// the step took: write-through writes must reach L2 within FlushInterval,
// and the flusher shares the disk. When clients only read from L2, it
// yields the processor, so that the connections ready to run go first,
// but does not sleep: a client's L2 read while L1 is being warmed is a
// promotion, the work the warm-up does in bulk, for less (no reply to
// write, each key read once); sleeping would leave L1 to fill at the
// clients' pace (see the package documentation for the figures).
func (h *Hybrid) warmStep(rr RecentReader, cursor []byte, maxBytes int64) ([]byte, bool) {
	// Taken before the L2 read, as promotion does: see Hybrid.stripes.
	var seqs [stripeCount]uint64
	for i := range h.stripes {
		seqs[i] = h.stripes[i].seq.Load()
	}
	if !h.waitQueueDrained() {
		return nil, false
	}
	lookups, queued := h.l2Lookups(), h.queuedOps()
	start := time.Now()
	type entry struct {
		lkey []byte
		rec  Record
	}
	var batch []entry
	next, err := rr.ReadRecent(cursor, maxBytes, h.l1.MaxRecord(), h.inL1, func(lkey []byte, r Record) {
		batch = append(batch, entry{lkey, r})
	})
	for _, e := range batch {
		if !h.warmEntry(e.lkey, e.rec, &seqs) {
			return nil, false // L1 is full
		}
	}
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			h.opts.OnError("warm-up read", err)
		}
		return nil, false
	}
	switch {
	case h.queuedOps() != queued:
		pause := time.NewTimer(min(max(time.Since(start), warmMinPause), warmMaxPause))
		defer pause.Stop()
		select {
		case <-h.stop:
			return nil, false
		case <-pause.C:
		}
	case h.l2Lookups() != lookups:
		runtime.Gosched()
	}
	return next, true
}

// warmEntry copies the L2 entry under lkey, r, to L1, unless r is expired,
// stale (a model epoch the registry has moved away from, or a version the
// key's GET would not be served) or too large for L1, the key is in L1
// already (a client wrote or read it: L1's copy is as new as L2's or newer;
// a copy of a stale epoch is left to be dropped when read),
// or a write of the key's stripe happened since seqs was taken, before the
// L2 read: L2's copy may then be older than the key's value. It reports
// false, copying nothing, when L1 can tell that storing the entry would
// evict another (see l1Fits): L1 is full and the warm-up is over.
func (h *Hybrid) warmEntry(lkey []byte, r Record, seqs *[stripeCount]uint64) bool {
	key, model, epoch, scoped, ok := parseL2Key(lkey)
	if !ok || len(key)+len(r) > h.l1.MaxRecord() || r.Check() != nil || r.Expired(h.nowMs()) {
		return true
	}
	sc, isScoped, err := ParseScope(key)
	if err != nil || isScoped != scoped {
		return true
	}
	if scoped {
		ms := h.reg.Load().model(sc.Model)
		if sc.Model != model || epoch != r.Epoch() || !ms.current(sc, epoch) {
			return true
		}
	}
	if !h.l1Fits(key, r) {
		return false
	}
	r.SetFlags(r.Flags() | FlagClean) // L2 has it: evicting it needs no demotion
	i := h.stripeIndex(key)
	st := &h.stripes[i]
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.seq.Load() != seqs[i] || h.l1Contains(key) {
		return true
	}
	if h.l1.Set(key, r) == nil {
		h.warm.bytes.Add(int64(len(key) + len(r)))
		h.warm.keys.Add(1)
	}
	return true
}

// l1Fits reports whether L1 can store key and r without evicting anything,
// when L1 can tell (memtier.Cache does); else true, and the warm-up stops
// at L1's first eviction instead.
func (h *Hybrid) l1Fits(key []byte, r Record) bool {
	if c, ok := h.l1.(interface{ Fits([]byte, Record) bool }); ok {
		return c.Fits(key, r)
	}
	return true
}

// inL1 reports whether L1 holds the user key of the L2 key lkey: the
// warm-up does not read those from L2.
func (h *Hybrid) inL1(lkey []byte) bool {
	key, _, _, _, ok := parseL2Key(lkey)
	return ok && h.l1Contains(key)
}

// l1Contains reports whether L1 holds key (or may: see memtier's
// Contains), without counting a lookup or marking the entry read, when L1
// can tell (memtier.Cache does); else by a Get.
func (h *Hybrid) l1Contains(key []byte) bool {
	if c, ok := h.l1.(interface{ Contains([]byte) bool }); ok {
		return c.Contains(key)
	}
	_, err := h.l1.Get(key)
	return err == nil
}

// waitQueueDrained waits until every write queued so far has left the
// write queue (committed to L2, or shed while L2 fails): an L2 read that
// starts afterwards sees every write completed before the call. It
// reports false if the Hybrid closes meanwhile.
func (h *Hybrid) waitQueueDrained() bool {
	h.pend.Lock()
	defer h.pend.Unlock()
	for target := h.pend.queued; h.pend.dequeued < target && !h.closed.Load(); {
		h.pend.space.Wait()
	}
	return !h.closed.Load()
}

// queuedOps returns the number of writes ever queued for L2.
func (h *Hybrid) queuedOps() uint64 {
	h.pend.Lock()
	defer h.pend.Unlock()
	return h.pend.queued
}

// l2Lookups returns the number of L2 lookups clients' reads made.
func (h *Hybrid) l2Lookups() uint64 {
	var n uint64
	for i := range h.stripes {
		n += h.stripes[i].l2Hits.Load() + h.stripes[i].l2Misses.Load()
	}
	return n
}
