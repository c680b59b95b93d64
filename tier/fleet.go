package tier

import "errors"

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
