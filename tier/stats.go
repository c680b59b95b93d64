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
	h.pend.Lock()
	pending := h.pend.bytes
	h.pend.Unlock()
	reg := h.reg.Load()
	known := 0
	for _, m := range reg.Models {
		if m.Version != "" {
			known++
		}
	}
	hs := HybridStats{
		Promotions:      h.promotions.Load(),
		Demotions:       h.demotions.Load(),
		StaleWrites:     h.staleWrites.Load(),
		L2ReadErrors:    h.l2ReadErr.Load(),
		L2WriteErrors:   h.l2WriteErrs.Load(),
		PendingBytes:    pending,
		PendingDropped:  h.dropped.Load(),
		ModelsRevision:  reg.Revision,
		ModelsKnown:     known,
		RolloutsApplied: h.rollouts.Load(),
		WritePolicy:     h.opts.WritePolicy,
		WarmupDone:      h.warm.finished.Load(),
		WarmupBytes:     h.warm.bytes.Load(),
		WarmupKeys:      h.warm.keys.Load(),
		L1:              h.l1.Stats(),
		L2:              h.l2.Stats(),
	}
	for i := range h.stripes {
		st := &h.stripes[i]
		hs.Hits += st.hits.Load()
		hs.Misses += st.misses.Load()
		hs.L1Hits += st.l1Hits.Load()
		hs.L1Misses += st.l1Misses.Load()
		hs.L2Hits += st.l2Hits.Load()
		hs.L2Misses += st.l2Misses.Load()
	}
	return hs
}
