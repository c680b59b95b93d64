package tier

import "errors"

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
	st := h.stripes.of(key)
	old, err := h.lockedGet(key, st)
	defer func() {
		st.mu.Unlock()
		h.queue.waitForSpace()
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
	h.putLocked(key, NewRecord(hdr, old.Value()), sc, scoped, hdr.Epoch, false)
	return true, nil
}
