package tier

import (
	"errors"
)

// SetCond is the condition of a conditional write (SET … NX|XX).
type SetCond int

const (
	// Always writes unconditionally.
	Always SetCond = iota
	// IfAbsent writes only if the key has no live value (NX).
	IfAbsent
	// IfPresent writes only if the key has a live value (XX).
	IfPresent
)

// SetArgs are the options of SetWith, after Redis' SET.
type SetArgs struct {
	ExpireAt int64   // Unix ms; 0 = no expiry
	KeepTTL  bool    // keep the current value's expiry (KEEPTTL)
	Cond     SetCond // NX / XX
	GetOld   bool    // return the old value (GET)

	// Near stores the value as a near copy: the write of a key another
	// member of a fleet owns, which that member stores for the fleet
	// (package peer forwards it). It goes to L1 only, marked FlagClean so
	// that evicting it writes nothing, and any copy of the key in L2 is
	// deleted, so that an older value cannot reappear once it is evicted:
	// the fleet then holds the value once on disk, at its owner, not once
	// per member that wrote it. A value too large for L1 is stored as
	// without Near.
	Near bool

	// Spare, if not nil, is the buffer the value was read into, with room
	// in front of it: the value must be its tail (sharing its memory).
	// When the room holds the record's header (ValueHeadroom is enough for
	// version tags up to 224 bytes), the record is built in place, saving
	// a copy of the value, and the cache keeps Spare: the caller must not
	// use or change it afterwards.
	Spare []byte
}

// SetResult is what SetWith did.
type SetResult struct {
	Stored bool   // the value was written
	Old    Record // the previous live record, when SetArgs.GetOld (nil if none)
	// Tag is the version tag the value was stored under (Header.Tag: the
	// model's version, or the one the key names; "" for a plain key), for
	// a member of a fleet that forwards the write (SetTagged).
	Tag string
}

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
			return h.put(key, r, Scope{}, false, 0, false)
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
	_, err := h.setValue(key, value, expireAt, nil, false)
	return err
}

// setValue is SetValue with SetArgs.Spare and SetArgs.Near; it returns the
// record's tag.
func (h *Hybrid) setValue(key, value []byte, expireAt int64, spare []byte, near bool) (string, error) {
	if h.closed.Load() {
		return "", ErrClosed
	}
	hdr, sc, scoped, err := h.header(key, expireAt)
	if err != nil {
		return "", err
	}
	if near {
		hdr.Flags = FlagClean
	}
	return hdr.Tag, h.put(key, newRecordIn(hdr, spare, value), sc, scoped, hdr.Epoch, near)
}

// SetWith is SET with its options: the existence check, the write and the
// read of the old value are atomic with respect to other writes of the key
// (see lockedGet).
func (h *Hybrid) SetWith(key, value []byte, a SetArgs) (SetResult, error) {
	if h.closed.Load() {
		return SetResult{}, ErrClosed
	}
	if a.Cond == Always && !a.KeepTTL && !a.GetOld {
		tag, err := h.setValue(key, value, a.ExpireAt, a.Spare, a.Near)
		if err != nil {
			return SetResult{}, err
		}
		return SetResult{Stored: true, Tag: tag}, nil
	}
	hdr, sc, scoped, err := h.header(key, a.ExpireAt)
	if err != nil {
		return SetResult{}, err
	}
	st := h.stripes.of(key)
	old, err := h.lockedGet(key, st)
	if err != nil && !errors.Is(err, ErrNotFound) {
		st.mu.Unlock()
		return SetResult{}, err
	}
	var res SetResult
	if a.GetOld {
		res.Old = old
	}
	if (a.Cond == IfAbsent && old != nil) || (a.Cond == IfPresent && old == nil) {
		st.mu.Unlock()
		return res, nil
	}
	if a.KeepTTL && old != nil {
		hdr.ExpireAt = old.ExpireAt()
	}
	if a.Near {
		hdr.Flags = FlagClean
	}
	rec := newRecordIn(hdr, a.Spare, value)
	if err := h.fitsL2(key, rec, sc, scoped, hdr.Epoch); err != nil {
		st.mu.Unlock()
		return SetResult{}, err
	}
	h.putLocked(key, rec, sc, scoped, hdr.Epoch, a.Near)
	st.mu.Unlock()
	h.queue.waitForSpace()
	res.Stored, res.Tag = true, hdr.Tag
	return res, nil
}

// header returns the header a new record of key gets, or a *StaleError for a
// write of a version the registry has moved away from (counted).
func (h *Hybrid) header(key []byte, expireAt int64) (Header, Scope, bool, error) {
	hdr, sc, scoped, err := h.headerNow(key, expireAt)
	var stale *StaleError
	if errors.As(err, &stale) {
		h.staleWrites.Add(1)
	}
	return hdr, sc, scoped, err
}

// headerNow is header without counting a stale write.
func (h *Hybrid) headerNow(key []byte, expireAt int64) (Header, Scope, bool, error) {
	sc, scoped, err := ParseScope(key)
	if err != nil {
		return Header{}, sc, false, err
	}
	hdr := Header{ExpireAt: expireAt}
	if scoped {
		ms := h.state(sc.Model)
		if ms.otherVersion(sc) {
			return Header{}, sc, false, &StaleError{Model: sc.Model, Current: ms.Version}
		}
		hdr.Epoch, hdr.Tag = ms.epochOf(sc), ms.Version
		if sc.Versioned {
			hdr.Tag = sc.Version
		}
	}
	if h.opts.WritePolicy == WriteThrough {
		hdr.Flags = FlagClean // L2 has it (or will, before L1 could lose it)
	}
	return hdr, sc, scoped, nil
}

func (h *Hybrid) put(key []byte, r Record, sc Scope, scoped bool, epoch uint64, near bool) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if err := h.fitsL2(key, r, sc, scoped, epoch); err != nil {
		return err
	}
	st := h.stripes.of(key)
	st.mu.Lock()
	h.putLocked(key, r, sc, scoped, epoch, near)
	st.mu.Unlock()
	h.queue.waitForSpace()
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

// putLocked stores r in L1 and queues it for L2 as the write policy says,
// or, for a near copy (SetArgs.Near; r is FlagClean) that L1 took, queues
// the deletion of L2's copy instead. The caller holds key's stripe lock.
func (h *Hybrid) putLocked(key []byte, r Record, sc Scope, scoped bool, epoch uint64, near bool) {
	defer h.stripes.of(key).seq.Add(1) // once the write is visible: see stripes
	inL1 := len(key)+len(r) <= h.l1.MaxRecord() && h.l1.Set(key, r) == nil
	if !inL1 {
		_ = h.l1.Delete(key) // an older copy must not shadow this write
	}
	switch {
	case near && inL1:
		// L2's copy, if any, is older: it must not reappear when this one
		// is evicted. A delete of an absent key costs L2 a tombstone.
		h.queue.enqueue(newOp(key, nil, sc, scoped, epoch))
		h.nearWrites.Add(1)
	case near:
		// Too large for L1: stored here as any write, clean or not as the
		// policy says.
		r.SetFlags(r.Flags() &^ FlagClean)
		if h.opts.WritePolicy == WriteThrough {
			r.SetFlags(r.Flags() | FlagClean)
		}
		h.queue.enqueue(newOp(key, r, sc, scoped, epoch))
	case h.opts.WritePolicy == WriteThrough || !inL1:
		h.queue.enqueue(newOp(key, r, sc, scoped, epoch))
	case r.ExpireAt() != 0:
		// Write-back: when this record expires in L1, an older copy in L2
		// must not reappear, so delete it now.
		h.queue.enqueue(newOp(key, nil, sc, scoped, epoch))
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
		epoch = h.state(sc.Model).epochOf(sc)
	}
	st := h.stripes.of(key)
	st.mu.Lock()
	h.deleteLocked(key, sc, scoped, epoch)
	st.mu.Unlock()
	h.queue.waitForSpace()
	return nil
}

// Remove deletes key and reports whether it had a live value (DEL counts
// these). The check and the delete are atomic (see lockedGet).
func (h *Hybrid) Remove(key []byte) (bool, error) {
	if h.closed.Load() {
		return false, ErrClosed
	}
	sc, scoped, err := ParseScope(key)
	if err != nil {
		return false, err
	}
	var epoch uint64
	if scoped {
		epoch = h.state(sc.Model).epochOf(sc)
	}
	st := h.stripes.of(key)
	old, err := h.lockedGet(key, st)
	if err != nil && !errors.Is(err, ErrNotFound) {
		st.mu.Unlock()
		return false, err
	}
	h.deleteLocked(key, sc, scoped, epoch)
	st.mu.Unlock()
	h.queue.waitForSpace()
	return old != nil, nil
}

// deleteLocked removes key from L1 and queues its deletion from L2. The
// caller holds key's stripe lock.
func (h *Hybrid) deleteLocked(key []byte, sc Scope, scoped bool, epoch uint64) {
	defer h.stripes.of(key).seq.Add(1) // once the delete is visible: see stripes
	_ = h.l1.Delete(key)
	h.queue.enqueue(newOp(key, nil, sc, scoped, epoch))
}

// CheckWrite returns the error a write of key would get now — a malformed
// scope, or a *StaleError — without writing anything. A stale key counts
// as a rejected write.
func (h *Hybrid) CheckWrite(key []byte) error {
	_, _, _, err := h.header(key, 0)
	return err
}

// CheckScope is CheckWrite without counting a rejected write: for a
// command that prepares a write (a lease) rather than making one.
func (h *Hybrid) CheckScope(key []byte) error {
	sc, scoped, err := ParseScope(key)
	if err != nil || !scoped {
		return err
	}
	if ms := h.state(sc.Model); ms.otherVersion(sc) {
		return &StaleError{Model: sc.Model, Current: ms.Version}
	}
	return nil
}
