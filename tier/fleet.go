package tier

import (
	"bytes"
	"errors"
)

// A cache in a fleet (package peer) answers the lookups of other members
// for the keys it owns (PeerGet), serves the records they send for keys it
// misses (Fill), and stores the writes they forward (SetTagged). Both
// directions go through one fencing rule, so that no cache answers a
// model-scoped key with a value stored under a version other than the one
// it has for the model now, whichever cache the value came from:
//
//	a record sent by another cache is taken only if its version tag
//	(Header.Tag) is the tag a write of its key would get here now.
//
// Epochs are local to a cache and never compared across caches; the tag is
// the version itself. During a rollout, caches that have applied it and
// caches that have not disagree on that tag, so whichever asks whichever,
// the record is refused: a miss, never an old value.

// WriteSeq returns a number that changes whenever key, or another key that
// shares its lock stripe, is written, deleted or demoted. A caller that
// reads it before a lookup that missed passes it to Fill, which then stores
// nothing if a write happened meanwhile (it would be newer than what a
// peer sent).
func (h *Hybrid) WriteSeq(key []byte) uint64 { return h.stripes.of(key).seq.Load() }

// PeerGet is Get for another member of a fleet: L1, the write queue, then
// L2 (promoting an L2 hit), served only if current by this cache's
// registry, but not counted as a client's lookup (no hits or misses, no
// per-model counts). It never asks another cache.
func (h *Hybrid) PeerGet(key []byte) (Record, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	r, _, err := h.get(key, h.stripes.of(key), true)
	return r, err
}

// Fill checks r, the record another member sent for key (its PeerGet),
// against this cache's registry and clock, and returns the record to serve
// in r's place: ErrNotFound when r carries another version tag than a
// write of key would get here now (see the fencing rule above) or has
// expired; a *StaleError is never returned (a {MODEL@X} key this cache
// would refuse to write is not found either). The record returned is r,
// rewritten in place with this cache's header (its epoch), so the caller
// must own r.
//
// With keep, the record is also stored in L1 as a near copy, unless a
// write of the key happened since seq (WriteSeq) was read or L1 already
// holds the key: it is marked clean, so evicting it writes nothing (L2 is
// the owner's business), and it is fenced like any entry.
func (h *Hybrid) Fill(key []byte, r Record, seq uint64, keep bool) (Record, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	got, err := r.Header()
	if err != nil {
		return nil, err
	}
	want, _, _, err := h.headerNow(key, got.ExpireAt)
	var stale *StaleError
	switch {
	case errors.As(err, &stale):
		return nil, ErrNotFound
	case err != nil:
		return nil, err
	case got.Tag != want.Tag, got.Expired(h.nowMs()):
		return nil, ErrNotFound
	}
	want.Flags = FlagClean
	want.encode(r) // same tag, so the same layout: only the epoch and flags change
	if keep && len(key)+len(r) <= h.l1.MaxRecord() {
		st := h.stripes.of(key)
		st.mu.Lock()
		if st.seq.Load() == seq && !memContains(h.l1, key) {
			_ = h.l1.Set(key, r)
		}
		st.mu.Unlock()
	}
	return r, nil
}

// KeepNear stores key's near copy (SetArgs.Near) in L2 as any write, if
// L1 still holds it with value under version tag and it is still current:
// for a write whose forward to the key's owner never reached it (the
// owner failed, the forward queue was full, or this daemon is closing),
// so that the value is not left in memory alone, lost at the next
// restart. It reports whether it queued the write. A copy L1 no longer
// holds, or holds with another value (a later write, which forwards
// itself), is left alone; writing a value L2 may have already (a clean
// record of write-through) only costs a rewrite.
func (h *Hybrid) KeepNear(key, value []byte, tag string) bool {
	if h.closed.Load() {
		return false
	}
	sc, scoped, err := ParseScope(key)
	if err != nil {
		return false
	}
	st := h.stripes.of(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	// Under the stripe's lock no write of key changes L1's record, and the
	// guard keeps a pooled one from being reused meanwhile; its bytes are
	// only compared, the record queued is built from value.
	g := h.opts.Buffers.Guard()
	defer g.Close()
	g.Pin()
	r, err := h.l1.Get(key)
	if err != nil || r.Flags()&FlagClean == 0 || r.Expired(h.nowMs()) {
		return false
	}
	hdr, err := r.Header()
	if err != nil || hdr.Tag != tag || !bytes.Equal(r.Value(), value) {
		return false
	}
	if scoped && !h.state(sc.Model).current(sc, hdr.Epoch) {
		return false
	}
	h.queue.enqueue(newOp(key, NewRecord(hdr, value), sc, scoped, hdr.Epoch))
	h.nearKept.Add(1)
	st.seq.Add(1) // L2 changed under key: see stripes
	return true
}

// NearKept returns how many near copies KeepNear stored in L2.
func (h *Hybrid) NearKept() uint64 { return h.nearKept.Load() }

// NearWrites returns how many writes were stored as near copies
// (SetArgs.Near) in L1 alone, their L2 copy left to the key's owner.
func (h *Hybrid) NearWrites() uint64 { return h.nearWrites.Load() }

// SetTagged stores value under key for another member of the fleet that
// stored it under version tag (SetResult.Tag): only if a write of key here
// would get the same tag, else it stores nothing and returns a *StaleError
// (counted as a rejected stale write), so that a value computed with a
// version this cache has moved away from is never stored under the new one.
func (h *Hybrid) SetTagged(key, value []byte, expireAt int64, tag string) error {
	if h.closed.Load() {
		return ErrClosed
	}
	hdr, sc, scoped, err := h.header(key, expireAt)
	if err != nil {
		return err
	}
	if hdr.Tag != tag {
		h.staleWrites.Add(1)
		return &StaleError{Model: sc.Model, Current: hdr.Tag}
	}
	return h.put(key, newRecordIn(hdr, nil, value), sc, scoped, hdr.Epoch, false)
}
