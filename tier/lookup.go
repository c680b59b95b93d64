package tier

import "errors"

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
	i := h.stripes.index(key)
	st := &h.stripes.s[i]
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
		return nil, &h.counts.unscoped, err
	}
	mc := &h.counts.unscoped
	var ms ModelState
	if scoped {
		ms = h.state(sc.Model)
		switch {
		case !promote:
		case ms.Version == "":
			mc = &h.counts.unregistered
		default:
			mc = h.counts.of(sc.Model)
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
	seq := st.seq.Load() // before any lookup: see stripes

	if r, err := h.l1.Get(key); err == nil {
		if !scoped || ms.current(sc, r.Epoch()) {
			st.l1Hits.Add(1)
			return r, nil
		}
		_ = h.l1.Delete(key) // written before the model changed
	}
	st.l1Misses.Add(1)

	if op, ok := h.queue.get(key); ok {
		if op.rec == nil || (scoped && !ms.current(sc, op.epoch)) || op.rec.Expired(h.nowMs()) {
			return nil, ErrNotFound
		}
		return op.rec, nil
	}

	r, err := h.l2.Get(l2Key(key, scoped, sc.Model, ms.epochOf(sc)))
	if err != nil {
		st.l2Misses.Add(1)
		if !errors.Is(err, ErrNotFound) {
			h.l2ReadErrs.Add(1)
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
	set := h.l1.Set
	if ps, ok := h.l1.(ProvenSetter); ok {
		set = ps.SetProven // asked for again: L1's policy keeps it like a read entry
	}
	if set(key, r) == nil {
		h.promotions.Add(1)
	}
}

// lockedGet looks key up for a read-modify-write and returns with st.mu,
// key's stripe lock, held: what it returns is key's current record, and
// stays so until the caller unlocks. The lookup, which may read L2, runs
// without the lock, so that a slow disk read does not stall the writes of
// every other key of the stripe; it is valid if no write of the stripe
// (st.seq) and no registry change happened meanwhile, and is retried
// otherwise, under the lock after a few attempts (a stripe written that
// often is served from L1 and the write queue anyway).
func (h *Hybrid) lockedGet(key []byte, st *stripe) (Record, error) {
	for range 3 {
		seq, reg := st.seq.Load(), h.snap.Load()
		r, _, err := h.get(key, st, false)
		st.mu.Lock()
		if st.seq.Load() == seq && h.snap.Load() == reg {
			return r, err
		}
		st.mu.Unlock()
	}
	st.mu.Lock()
	r, _, err := h.get(key, st, false)
	return r, err
}
