package disktier

import (
	"bytes"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/tier"
)

// recountChunk is the number of pointer records a background count reads
// per hold of dbmu.
const recountChunk = 16 * 1024

// recountTask is a background count of pointer records that fixes the key
// count, the count of entries with an expiry (and the generations' byte
// counts) after a DropRange, or after a restart that left one unapplied, or
// when the store predates the expiring count.
type recountTask struct {
	h    *handle
	snap *pebble.Snapshot
	// DropRange: the snapshot was taken just before the range delete, under
	// the writer mutex; the p keys it holds in [start, end) are exactly the
	// keys the delete removed.
	start, end []byte // end nil: no upper bound
	marker     []byte // metaRecount key of the DropRange
	// Full count: keysAt and expiringAt are the counts when snap was
	// taken, markers the metaRecount keys the count settles.
	full       bool
	keysAt     int64
	expiringAt int64
	markers    [][]byte
	// cancelled is set, with the snapshot closed, when the instance is
	// replaced or the store closed; written holding mu and dbmu, read
	// holding either.
	cancelled bool
}

// DropRange removes every key k with start <= k < end (end nil: no upper
// bound) with one range delete per namespace and live generation: O(number
// of generations) writes, whatever the number of keys. The key count and the
// count of entries with an expiry are fixed in the background by counting
// the removed pointers in a snapshot taken just before the delete; Pebble
// reclaims the space in its next compactions of the range.
func (s *Store) DropRange(start, end []byte) error {
	if s.closed.Load() {
		return tier.ErrClosed
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.writableLocked()
	if err != nil {
		return err
	}
	marker := metaRecountKey(uint64(time.Now().UnixNano()))
	snap := h.db.NewSnapshot()
	b := h.db.NewBatch()
	_ = b.DeleteRange(appendPtrKey(nil, start), ptrEnd(end), nil)
	for _, g := range s.mu.gens {
		_ = b.DeleteRange(appendGenKey(nil, nsData, g.id, start), genKeyEnd(nsData, g.id, end), nil)
		_ = b.DeleteRange(appendGenKey(nil, nsQueue, g.id, start), genKeyEnd(nsQueue, g.id, end), nil)
	}
	_ = b.Set(marker, nil, nil)
	// Not synced: the entries dropped are stale by epoch already, so losing
	// the delete (with its marker) in a crash only delays reclaiming their
	// space; syncing here would make every rollout wait for the disk.
	if err := s.commitWith(h, b, pebble.NoSync); err != nil {
		_ = snap.Close()
		return err
	}
	s.mu.tasks = append(s.mu.tasks, &recountTask{
		h: h, snap: snap, start: bytes.Clone(start), end: bytes.Clone(end), marker: marker,
	})
	s.mu.compact = append(s.mu.compact, span{appendPtrKey(nil, start), ptrEnd(end)})
	for _, g := range s.mu.gens {
		s.mu.compact = append(s.mu.compact,
			span{appendGenKey(nil, nsData, g.id, start), genKeyEnd(nsData, g.id, end)},
			span{appendGenKey(nil, nsQueue, g.id, start), genKeyEnd(nsQueue, g.id, end)})
	}
	s.wakeRecounter()
	s.flushWant.Store(true)
	s.kickMaintainer()
	return nil
}

func (s *Store) wakeRecounter() {
	select {
	case s.recountq <- struct{}{}:
	default:
	}
}

// cancelTasksLocked drops the pending counts (their snapshots belong to the
// instance being closed); their markers stay, so the next instance counts
// every key again. Requires mu and dbmu held exclusively.
func (s *Store) cancelTasksLocked() {
	for _, t := range s.mu.tasks {
		t.cancelled = true
		_ = t.snap.Close()
	}
	s.mu.tasks = nil
}

// fullRecountLocked queues a count of every key, from a snapshot of h taken
// now. Requires mu.
func (s *Store) fullRecountLocked(h *handle, markers [][]byte) {
	s.mu.tasks = append(s.mu.tasks, &recountTask{
		h: h, snap: h.db.NewSnapshot(), full: true,
		keysAt: s.mu.keys, expiringAt: s.mu.expiring, markers: markers,
	})
	s.wakeRecounter()
}

// span is a key range [start, end).
type span struct{ start, end []byte }

// recount is the store's worker for slow background work: it runs the
// queued key counts, oldest first, then the queued manual compactions. Owned
// by Open, stopped by Close.
func (s *Store) recount() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.recountq:
		}
		for {
			s.mu.Lock()
			var t *recountTask
			if len(s.mu.tasks) > 0 {
				t = s.mu.tasks[0]
			}
			s.mu.Unlock()
			if t == nil || !s.runTask(t) {
				break
			}
		}
		s.compactSpans()
	}
}

// compactSpans compacts the queued spans (dropped generations, DropRange
// ranges). Pebble deletes the files entirely under a range tombstone without
// reading them (delete-only compactions) only for files in levels below the
// tombstone's; data still in L0 with it waits for an L0 compaction, which
// nothing may trigger once writes stop. A manual compaction of a span whose
// data is all deleted writes nothing and returns the space.
func (s *Store) compactSpans() {
	for {
		s.mu.Lock()
		spans := s.mu.compact
		s.mu.compact = nil
		s.mu.Unlock()
		if len(spans) == 0 {
			return
		}
		s.dbmu.RLock()
		h := s.h
		if h == nil || h.broken() {
			s.dbmu.RUnlock()
			return
		}
		h.bg.Add(1)
		s.dbmu.RUnlock()
		for _, sp := range spans {
			if err := h.db.Compact(h.ctx, sp.start, sp.end, false); err != nil {
				if h.ctx.Err() == nil {
					s.opts.Logger("disktier: compact %q-%q: %v", sp.start, sp.end, err)
				}
				break
			}
		}
		h.bg.Done()
	}
}

// runTask counts t's pointers and applies the result. It returns false if
// the store is closing.
func (s *Store) runTask(t *recountTask) bool {
	lower, upper := []byte{nsPtr}, ptrEnd(nil)
	if !t.full {
		lower, upper = appendPtrKey(nil, t.start), ptrEnd(t.end)
	}
	var n, nExp int64
	bytesOf := make(map[uint64]int64)
	for done := false; !done; {
		select {
		case <-s.done:
			return false
		default:
		}
		s.dbmu.RLock()
		if t.cancelled {
			s.dbmu.RUnlock()
			return true
		}
		it, err := t.snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			s.dbmu.RUnlock()
			s.abandonTask(t, err)
			return true
		}
		i := 0
		for it.First(); it.Valid() && i < recountChunk; it.Next() {
			i++
			n++
			if v, err := it.ValueAndErr(); err == nil {
				if ptrExpires(v) {
					nExp++
				}
				if p, err := decodePointer(v); err == nil {
					bytesOf[p.gen] += entryCost(len(it.Key())-1, int(p.size), p.inline())
				}
			}
		}
		if done = !it.Valid(); !done {
			lower = bytes.Clone(it.Key()) // the first key not counted yet
		}
		err = it.Error()
		_ = it.Close()
		s.dbmu.RUnlock()
		if err != nil {
			s.abandonTask(t, err)
			return true
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if t.cancelled {
		return true
	}
	s.removeTaskLocked(t)
	markers := t.markers
	changed := map[uint64]int64{}
	if t.full {
		s.mu.keys += n - t.keysAt
		s.mu.expiring += nExp - t.expiringAt
	} else {
		s.mu.keys -= n
		s.mu.expiring -= nExp
		markers = [][]byte{t.marker}
		for i := range s.mu.gens {
			g := &s.mu.gens[i]
			if d := min(bytesOf[g.id], g.bytes); d > 0 {
				g.bytes -= d
				s.mu.live -= d
				changed[g.id] = g.bytes
			}
		}
	}
	s.publishLocked()
	h, err := s.writableLocked()
	if err != nil || h != t.h {
		return true // the next instance counts again (the markers remain)
	}
	b := h.db.NewBatch()
	_ = b.Set(metaKeys, le64(s.mu.keys), nil)
	_ = b.Set(metaExpiring, le64(s.mu.expiring), nil)
	for g, v := range changed {
		_ = b.Set(metaGenKey(g), le64(v), nil)
	}
	for _, m := range markers {
		_ = b.Delete(m, nil)
	}
	if err := s.commit(h, b); err != nil {
		s.opts.Logger("disktier: save key count: %v", err)
	}
	return true
}

// abandonTask gives up a count that could not read its snapshot; its
// marker stays, so the next Open counts every key.
func (s *Store) abandonTask(t *recountTask, err error) {
	s.errors.Add(1)
	s.opts.Logger("disktier: background key count: %v", fmt.Errorf("%w: %w", ErrStorage, err))
	s.mu.Lock()
	defer s.mu.Unlock()
	if !t.cancelled {
		s.removeTaskLocked(t)
	}
}

// removeTaskLocked removes t from the queue and closes its snapshot.
func (s *Store) removeTaskLocked(t *recountTask) {
	for i, x := range s.mu.tasks {
		if x == t {
			s.mu.tasks = append(s.mu.tasks[:i], s.mu.tasks[i+1:]...)
			break
		}
	}
	t.cancelled = true
	_ = t.snap.Close()
}
