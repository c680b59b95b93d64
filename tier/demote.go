package tier

// onEvict is L1's eviction callback: it runs under an L1 lock, so it only
// queues the record for L2 (demotion); the record is not copied, as L1 hands
// over records that nothing modifies. Records L2 already has (FlagClean),
// expired records and stale ones are dropped. Once L2 is full, a record
// L1's policy did not admit (a one-hit wonder) is not written either:
// written, it would only push out entries asked for again. Its key's
// deletion is queued instead (a tombstone, not the value), because L2, or
// the queue, may hold an older value of the key that this record replaced
// in L1 only (write-back writes nothing at SET time), which must not be
// served once the record is gone.
func (h *Hybrid) onEvict(key string, r Record, admitted bool) {
	if err := r.Check(); err != nil || r.Flags()&FlagClean != 0 || r.Expired(h.nowMs()) {
		return
	}
	kb := []byte(key)
	sc, scoped, err := ParseScope(kb)
	if err != nil {
		return
	}
	if scoped && !h.state(sc.Model).current(sc, r.Epoch()) {
		return
	}
	if !admitted && h.l2Full() {
		h.queue.enqueue(newOp(kb, nil, sc, scoped, r.Epoch()))
		h.l2Rejected.Add(1)
	} else {
		h.queue.enqueue(newOp(kb, r, sc, scoped, r.Epoch()))
		h.demotions.Add(1)
	}
	h.stripes.ofString(key).seq.Add(1) // see stripes
}

// l2Full reports whether what L2 takes now pushes out what it holds (see
// FullReporter).
func (h *Hybrid) l2Full() bool {
	if fr, ok := h.l2.(FullReporter); ok {
		return fr.Full()
	}
	st := h.l2.Stats()
	return st.Evictions > 0 || st.Bytes >= st.MaxBytes/4*3
}
