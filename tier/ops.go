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
}

// header returns the header a new record of key gets, or a *StaleError for a
// write of a version the registry has moved away from.
func (h *Hybrid) header(key []byte, expireAt int64) (Header, Scope, bool, error) {
	sc, scoped, err := ParseScope(key)
	if err != nil {
		return Header{}, sc, false, err
	}
	hdr := Header{ExpireAt: expireAt}
	if scoped {
		ms := h.reg.Load().model(sc.Model)
		if ms.otherVersion(sc) {
			h.staleWrites.Add(1)
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

// SetWith is SET with its options: the existence check, the write and the
// read of the old value are atomic with respect to other writes of the key
// (see lockedGet).
func (h *Hybrid) SetWith(key, value []byte, a SetArgs) (SetResult, error) {
	if h.closed.Load() {
		return SetResult{}, ErrClosed
	}
	if a.Cond == Always && !a.KeepTTL && !a.GetOld {
		return SetResult{Stored: true}, h.setValue(key, value, a.ExpireAt, a.Spare)
	}
	hdr, sc, scoped, err := h.header(key, a.ExpireAt)
	if err != nil {
		return SetResult{}, err
	}
	st := h.stripe(key)
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
	rec := newRecordIn(hdr, a.Spare, value)
	if err := h.fitsL2(key, rec, sc, scoped, hdr.Epoch); err != nil {
		st.mu.Unlock()
		return SetResult{}, err
	}
	h.putLocked(key, rec, sc, scoped, hdr.Epoch)
	st.mu.Unlock()
	h.waitForSpace()
	res.Stored = true
	return res, nil
}

// ExpireCond is the condition of Expire, after Redis' EXPIRE options: a
// set of flags, each of which must hold.
type ExpireCond int

const (
	// ExpireAlways sets the expiry unconditionally.
	ExpireAlways ExpireCond = 0
	// ExpireNX sets it only when the key has none.
	ExpireNX ExpireCond = 1 << (iota - 1)
	// ExpireXX sets it only when the key has one.
	ExpireXX
	// ExpireGT sets it only when it is later than the current one (none
	// counts as infinite, so GT implies XX).
	ExpireGT
	// ExpireLT sets it only when it is earlier than the current one (none
	// counts as infinite).
	ExpireLT
)

// Expire sets key's expiry to expireAt (Unix ms; 0 removes it, as PERSIST),
// if the key exists and cond holds. An expiry in the past deletes the key.
// It reports whether anything changed.
func (h *Hybrid) Expire(key []byte, expireAt int64, cond ExpireCond) (bool, error) {
	if h.closed.Load() {
		return false, ErrClosed
	}
	sc, scoped, err := ParseScope(key)
	if err != nil {
		return false, err
	}
	st := h.stripe(key)
	old, err := h.lockedGet(key, st)
	defer func() {
		st.mu.Unlock()
		h.waitForSpace()
	}()
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	cur := old.ExpireAt()
	switch {
	case cond&ExpireNX != 0 && cur != 0,
		cond&ExpireXX != 0 && cur == 0,
		cond&ExpireGT != 0 && (cur == 0 || expireAt <= cur),
		cond&ExpireLT != 0 && cur != 0 && expireAt >= cur:
		return false, nil
	}
	if expireAt == 0 && cur == 0 {
		return false, nil // PERSIST of a key without expiry
	}
	hdr, err := old.Header()
	if err != nil {
		return false, err
	}
	if expireAt != 0 && expireAt <= h.nowMs() {
		h.deleteLocked(key, sc, scoped, hdr.Epoch)
		return true, nil
	}
	hdr.ExpireAt = expireAt
	hdr.Flags = 0
	if h.opts.WritePolicy == WriteThrough {
		hdr.Flags = FlagClean
	}
	h.putLocked(key, NewRecord(hdr, old.Value()), sc, scoped, hdr.Epoch)
	return true, nil
}

// FlushAll removes every entry from both tiers and the write queue
// (FLUSHALL). The model registry is kept.
func (h *Hybrid) FlushAll() error {
	if h.closed.Load() {
		return ErrClosed
	}
	h.flushMu.Lock() // no batch is in flight while the queue is dropped
	defer h.flushMu.Unlock()
	for i := range h.stripes {
		h.stripes[i].mu.Lock()
	}
	defer func() {
		for i := range h.stripes {
			// After the flush, before unlocking (see Hybrid.stripes): no
			// promotion or read-modify-write that looked a key up before
			// the flush acts on it after.
			h.stripes[i].seq.Add(1)
			h.stripes[i].mu.Unlock()
		}
	}()
	h.pend.Lock()
	h.removeFrontLocked(len(h.pend.queue))
	h.pend.space.Broadcast()
	h.pend.Unlock()
	errs := []error{h.l1.Reset()}
	errs = append(errs, h.l2.DropRange([]byte{lkeyPlain}, []byte{lkeyModel + 1}))
	return errors.Join(errs...)
}

// Keys estimates the number of live keys: L2's count, or L1's when it is
// larger (write-back keeps entries in L1 only). Expired entries not yet
// reclaimed are counted.
func (h *Hybrid) Keys() int64 {
	l1, l2 := h.l1.Stats().Keys, h.l2.Stats().Keys
	h.pend.Lock()
	pending := int64(len(h.pend.byKey))
	h.pend.Unlock()
	return max(l1, l2+pending)
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
		epoch = h.reg.Load().model(sc.Model).epochOf(sc)
	}
	st := h.stripe(key)
	old, err := h.lockedGet(key, st)
	if err != nil && !errors.Is(err, ErrNotFound) {
		st.mu.Unlock()
		return false, err
	}
	h.deleteLocked(key, sc, scoped, epoch)
	st.mu.Unlock()
	h.waitForSpace()
	return old != nil, nil
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
	if ms := h.reg.Load().model(sc.Model); ms.otherVersion(sc) {
		return &StaleError{Model: sc.Model, Current: ms.Version}
	}
	return nil
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
		seq, reg := st.seq.Load(), h.reg.Load()
		r, _, err := h.get(key, st, false)
		st.mu.Lock()
		if st.seq.Load() == seq && h.reg.Load() == reg {
			return r, err
		}
		st.mu.Unlock()
	}
	st.mu.Lock()
	r, _, err := h.get(key, st, false)
	return r, err
}
