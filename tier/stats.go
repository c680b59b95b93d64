package tier

// HybridStats are the counters of a Hybrid: the INFO "# Stats", "# Tiers"
// and part of the "# Cluster" sections.
type HybridStats struct {
	Hits, Misses     uint64 // Get calls that found / did not find a live record
	L1Hits, L1Misses uint64 // L1 lookups made by Get
	L2Hits, L2Misses uint64 // L2 lookups made by Get after L1 and the write queue missed
	Promotions       uint64 // L2 hits copied up to L1
	Demotions        uint64 // L1 records written down to L2 on eviction or at Close
	StaleWrites      uint64 // writes refused because the model is at another version
	L2ReadErrors     uint64 // L2 reads that failed (served as misses)
	L2WriteErrors    uint64 // L2 batch commits that failed (retried)
	PendingBytes     int64  // bytes of writes waiting for L2
	PendingDropped   uint64 // queued writes shed while L2 was failing (still in L1)
	ModelsRevision   uint64 // registry revision applied
	ModelsKnown      int    // models with a current version
	RolloutsApplied  uint64 // model changes applied (rollouts and purges)
	WritePolicy      WritePolicy
	WarmupDone       bool   // the warm-up of L1 after start has ended (or is off)
	WarmupBytes      int64  // bytes of keys and records the warm-up copied to L1
	WarmupKeys       uint64 // entries the warm-up copied to L1
	L1, L2           Stats
}

// Stats returns a snapshot of the counters.
func (h *Hybrid) Stats() HybridStats {
	q, reg, c := h.queue.stats(), h.Registry.stats(), h.stripes.counts()
	return HybridStats{
		Hits:            c.hits,
		Misses:          c.misses,
		L1Hits:          c.l1Hits,
		L1Misses:        c.l1Misses,
		L2Hits:          c.l2Hits,
		L2Misses:        c.l2Misses,
		Promotions:      h.promotions.Load(),
		Demotions:       h.demotions.Load(),
		StaleWrites:     h.staleWrites.Load(),
		L2ReadErrors:    h.l2ReadErrs.Load(),
		L2WriteErrors:   q.writeErrs,
		PendingBytes:    q.bytes,
		PendingDropped:  q.dropped,
		ModelsRevision:  reg.revision,
		ModelsKnown:     reg.known,
		RolloutsApplied: reg.rollouts,
		WritePolicy:     h.opts.WritePolicy,
		WarmupDone:      h.warm.finished.Load(),
		WarmupBytes:     h.warm.bytes.Load(),
		WarmupKeys:      h.warm.keys.Load(),
		L1:              h.l1.Stats(),
		L2:              h.l2Stats(),
	}
}

// l2Stats are L2's counters with what the Hybrid adds: the demotions it
// admitted and the evictions it did not write (Admitted, Rejected).
func (h *Hybrid) l2Stats() Stats {
	st := h.l2.Stats()
	st.Admitted, st.Rejected = h.demotions.Load(), h.l2Rejected.Load()
	return st
}
