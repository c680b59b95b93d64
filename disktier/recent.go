package disktier

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/internal/hugepage"
	"github.com/tiercache/tiercache/tier"
)

// recentScan bounds the index entries one ReadRecent call looks at, so that
// a call over a generation whose keys were mostly overwritten or deleted
// since (their q entries are stale) still returns quickly.
const recentScan = 1024

var _ tier.RecentReader = (*Store)(nil)

// ReadRecent reads the stored entries back, most recently written first, for
// the Hybrid to warm L1 after a restart. The order is by generation, the
// newest first, and by key within a generation: a generation holds what was
// written while it was current, and the entries that a second chance moved
// into it because they were read (see the package documentation), so the
// newest generations hold the entries written or re-read last. It needs no
// record beyond the generations' q indices, so it works the same after a
// clean stop and after a crash.
//
// ReadRecent starts at cursor (nil: the newest generation) and calls fn with
// a copy of the key and record of each live entry until the records passed
// add up to maxBytes (at least one is passed) or recentScan index entries
// were looked at, and returns the cursor to continue from: nil once the
// oldest generation is done. fn runs after the store's locks are released
// and may keep key and r.
//
// Keys for which skip (if not nil) returns true are skipped before their
// pointer is read: skip runs under the store's read lock and must not call
// into it. Entries expired, longer than maxRecord, failing their checksum
// or unreadable are skipped (a later Get deals with them); so are index
// entries whose pointer names another generation (the key was written
// again) or none (deleted). It counts no hit nor miss and gives no second
// chance: it is not a client's read. Generations created after the first
// call are not visited.
func (s *Store) ReadRecent(cursor []byte, maxBytes int64, maxRecord int, skip func(key []byte) bool, fn func(key []byte, r tier.Record)) ([]byte, error) {
	if s.closed.Load() {
		return nil, tier.ErrClosed
	}
	type entry struct {
		key []byte
		rec tier.Record
	}
	var out []entry
	h, err := s.readLocked()
	if err != nil {
		return nil, err
	}
	next, err := s.readRecent(h.db, cursor, maxBytes, maxRecord, skip, func(key []byte, r tier.Record) {
		out = append(out, entry{key, r})
	})
	s.dbmu.RUnlock()
	for _, e := range out {
		fn(e.key, e.rec)
	}
	return next, err
}

// readRecent is ReadRecent on db; add receives the copies.
func (s *Store) readRecent(db *pebble.DB, cursor []byte, maxBytes int64, maxRecord int, skip func([]byte) bool, add func([]byte, tier.Record)) ([]byte, error) {
	if cursor == nil {
		g, ok, err := lastGenBefore(db, []byte{nsQueue + 1})
		if !ok {
			return nil, err
		}
		cursor = genPrefix(nsQueue, g)
	}
	if len(cursor) < 9 || cursor[0] != nsQueue {
		return nil, fmt.Errorf("disktier: ReadRecent: malformed cursor %x", cursor)
	}
	g := binary.BigEndian.Uint64(cursor[1:9])
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: cursor, UpperBound: genEnd(nsQueue, g)})
	if err != nil {
		s.errors.Add(1)
		return nil, fmt.Errorf("%w: iterate generation %d: %w", ErrStorage, g, err)
	}
	// The pointers and records are read in key order, as the index lists
	// them: through one iterator each, not a Get each (see batchLookupMin).
	ps := newSeeker(db, []byte{nsPtr}, ptrEnd(nil))
	ds := newSeeker(db, genPrefix(nsData, g), genEnd(nsData, g))
	defer ps.close()
	defer ds.close()
	now := s.nowMs()
	var passed int64
	var pk, dk []byte
	scanned := 0
	for valid := it.First(); valid; valid = it.Next() {
		if scanned == recentScan || (passed > 0 && passed >= maxBytes) {
			next := bytes.Clone(it.Key())
			return next, it.Close()
		}
		scanned++
		key := it.Key()[9:]
		if skip != nil && skip(key) {
			continue
		}
		pk = appendPtrKey(pk[:0], key)
		dk = appendGenKey(dk[:0], nsData, g, key)
		rec, err := s.recentRecord(ps, ds, pk, dk, g, now, maxRecord)
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		if rec != nil {
			add(bytes.Clone(key), rec)
			passed += int64(len(key) + len(rec))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		s.errors.Add(1)
		return nil, fmt.Errorf("%w: iterate generation %d: %w", ErrStorage, g, err)
	}
	older, ok, err := lastGenBefore(db, genPrefix(nsQueue, g))
	if !ok {
		return nil, err
	}
	return genPrefix(nsQueue, older), nil
}

// recentRecord returns a copy of the record whose pointer is under pk and,
// unless inline, whose record is under dk, if the pointer names generation
// g and the record is live, not longer than maxRecord and sound; nil
// otherwise. Only a failed read (neither absent nor corrupt) is an error.
func (s *Store) recentRecord(ps, ds *seeker, pk, dk []byte, g uint64, nowMs int64, maxRecord int) (tier.Record, error) {
	v, err := ps.get(pk)
	if err != nil {
		return nil, s.recentErr(pk, err)
	}
	ptr, err := decodePointer(v)
	if err != nil || ptr.gen != g || ptr.expired(nowMs) || ptr.size > uint64(max(maxRecord, 0)) {
		return nil, nil
	}
	rec := tier.Record(v[ptrHdrSize:])
	if !ptr.inline() {
		if rec, err = ds.get(dk); err != nil {
			return nil, s.recentErr(dk, err)
		}
	}
	if uint64(len(rec)) != ptr.size || rec.Verify() != nil || rec.Expired(nowMs) {
		return nil, nil
	}
	return rec, nil
}

// seeker reads keys asked for in ascending order through one iterator, and
// through Get, which tells an absent or corrupt key from a failed read,
// once the iterator has failed (an iterator stops at its first error).
type seeker struct {
	db *pebble.DB
	it *pebble.Iterator // nil once it failed
}

func newSeeker(db *pebble.DB, lower, upper []byte) *seeker {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		it = nil
	}
	return &seeker{db: db, it: it}
}

// get returns a copy of the value of k, or pebble.ErrNotFound.
func (sk *seeker) get(k []byte) ([]byte, error) {
	if sk.it != nil {
		if sk.it.SeekPrefixGE(k) && bytes.Equal(sk.it.Key(), k) {
			if v, err := sk.it.ValueAndErr(); err == nil {
				return hugepage.Clone(v), nil
			}
		} else if sk.it.Error() == nil {
			return nil, pebble.ErrNotFound
		}
		_ = sk.it.Close()
		sk.it = nil
	}
	return getCopy(sk.db, k)
}

func (sk *seeker) close() {
	if sk.it != nil {
		_ = sk.it.Close()
	}
}

// recentErr is what ReadRecent makes of a failed Get of k: nothing for an
// absent or corrupt entry (skipped), a storage error otherwise.
func (s *Store) recentErr(k []byte, err error) error {
	if errors.Is(err, pebble.ErrNotFound) || pebble.IsCorruptionError(err) {
		return nil
	}
	s.errors.Add(1)
	return fmt.Errorf("%w: read %q: %w", ErrStorage, k, err)
}

// lastGenBefore returns the newest generation that has q entries below the
// key upper (a generation's q prefix, or the end of the q namespace).
func lastGenBefore(db *pebble.DB, upper []byte) (uint64, bool, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{nsQueue}, UpperBound: upper})
	if err != nil {
		return 0, false, fmt.Errorf("%w: iterate generations: %w", ErrStorage, err)
	}
	var g uint64
	ok := it.Last() && len(it.Key()) >= 9
	if ok {
		g = binary.BigEndian.Uint64(it.Key()[1:9])
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, false, fmt.Errorf("%w: iterate generations: %w", ErrStorage, err)
	}
	return g, ok, nil
}
