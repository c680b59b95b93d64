package tier

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// Pacing of the warm-up (see the package documentation, "Warm-up").
const (
	// warmBatch is the most bytes of records one step reads from L2: a
	// client ready to run waits for at most one step, and so does Close.
	warmBatch = 256 << 10
	// warmMinPause and warmMaxPause bound the pause after a step during
	// which clients queued writes.
	warmMinPause = 100 * time.Microsecond
	warmMaxPause = 50 * time.Millisecond
)

// warmer copies L2's most recently written or read entries up to L1 after
// a start (see the package documentation, "Warm-up"). It runs beside the
// Hybrid's clients, between L2 (rr) and L1, and reads the Hybrid's
// stripes, write pipeline and registry to never overwrite a client's
// write nor warm a stale entry.
type warmer struct {
	rr      RecentReader
	l1      Mem
	limit   int64 // stop once L1 holds this many bytes
	stripes *stripes
	queue   *pipeline
	reg     *Registry
	nowMs   func() int64
	onError func(op string, err error)

	stop     chan struct{} // closed by close
	closed   atomic.Bool   // close was called
	done     chan struct{} // closed when run returns (at once when off)
	finished atomic.Bool   // run returned, or never ran
	bytes    atomic.Int64  // bytes of keys and records copied to L1
	keys     atomic.Uint64 // entries copied to L1
}

// start runs the warm-up in a goroutine of its own, or marks it finished
// when w.rr is nil or w.limit is not positive.
func (w *warmer) start() {
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	if w.rr == nil || w.limit <= 0 {
		w.finished.Store(true)
		close(w.done)
		return
	}
	go w.run()
}

// close stops the warm-up and waits for the step in progress. Call it
// once, while the pipeline still runs (a step may wait for it).
func (w *warmer) close() {
	w.closed.Store(true)
	close(w.stop)
	w.queue.wake() // a step waiting for the queue to drain
	<-w.done
}

// run copies entries to L1, one step of at most warmBatch bytes at a time,
// until L1 holds w.limit bytes, L1 has no room for the next entry or evicts
// anything (it is full: a warmed entry would push out another), every
// entry was read, or the warmer is closed.
func (w *warmer) run() {
	defer close(w.done)
	defer w.finished.Store(true)
	evictions := w.l1.Stats().Evictions
	var cursor []byte
	for first := true; first || cursor != nil; first = false {
		l1 := w.l1.Stats()
		if l1.Bytes >= w.limit || l1.Evictions != evictions {
			return
		}
		var ok bool
		if cursor, ok = w.step(cursor, min(warmBatch, w.limit-l1.Bytes)); !ok {
			return
		}
	}
}

// step reads up to maxBytes of entries from L2 at cursor and copies them
// to L1. It returns the cursor to go on from, and false when the warm-up
// must stop: it is closed, L1 is full or L2 failed.
//
// Foreground requests keep priority. The step waits until every write
// queued before it has left the write queue, so that the L2 read sees
// them, and reads a bounded batch without any lock of the Hybrid. When
// clients queued writes during the step, it then pauses for as long as
// the step took: write-through writes must reach L2 within FlushInterval,
// and the flusher shares the disk. When clients only read from L2, it
// yields the processor, so that the connections ready to run go first,
// but does not sleep: a client's L2 read while L1 is being warmed is a
// promotion, the work the warm-up does in bulk, for less (no reply to
// write, each key read once); sleeping would leave L1 to fill at the
// clients' pace (see the package documentation for the figures).
func (w *warmer) step(cursor []byte, maxBytes int64) ([]byte, bool) {
	seqs := w.stripes.seqs() // before the L2 read, as promotion does: see stripes
	if !w.queue.waitDrained(w.closed.Load) {
		return nil, false
	}
	lookups, queued := w.stripes.l2Lookups(), w.queue.stats().queued
	start := time.Now()
	type entry struct {
		lkey []byte
		rec  Record
	}
	var batch []entry
	next, err := w.rr.ReadRecent(cursor, maxBytes, w.l1.MaxRecord(), w.inL1, func(lkey []byte, r Record) {
		batch = append(batch, entry{lkey, r})
	})
	for _, e := range batch {
		if !w.entry(e.lkey, e.rec, seqs) {
			return nil, false // L1 is full
		}
	}
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			w.onError("warm-up read", err)
		}
		return nil, false
	}
	switch {
	case w.queue.stats().queued != queued:
		pause := time.NewTimer(min(max(time.Since(start), warmMinPause), warmMaxPause))
		defer pause.Stop()
		select {
		case <-w.stop:
			return nil, false
		case <-pause.C:
		}
	case w.stripes.l2Lookups() != lookups:
		runtime.Gosched()
	}
	return next, true
}

// entry copies the L2 entry under lkey, r, to L1, unless r is expired,
// stale (a model epoch the registry has moved away from, or a version the
// key's GET would not be served) or too large for L1, the key is in L1
// already (a client wrote or read it: L1's copy is as new as L2's or newer;
// a copy of a stale epoch is left to be dropped when read), or a write of
// the key's stripe happened since seqs was taken, before the L2 read: L2's
// copy may then be older than the key's value. It reports false, copying
// nothing, when L1 can tell that storing the entry would evict another
// (see l1Fits): L1 is full and the warm-up is over.
func (w *warmer) entry(lkey []byte, r Record, seqs *[stripeCount]uint64) bool {
	key, model, epoch, scoped, ok := parseL2Key(lkey)
	if !ok || len(key)+len(r) > w.l1.MaxRecord() || r.Check() != nil || r.Expired(w.nowMs()) {
		return true
	}
	sc, isScoped, err := ParseScope(key)
	if err != nil || isScoped != scoped {
		return true
	}
	if scoped {
		if sc.Model != model || epoch != r.Epoch() || !w.reg.state(sc.Model).current(sc, epoch) {
			return true
		}
	}
	if !w.l1Fits(key, r) {
		return false
	}
	r.SetFlags(r.Flags() | FlagClean) // L2 has it: evicting it needs no demotion
	i := w.stripes.index(key)
	st := &w.stripes.s[i]
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.seq.Load() != seqs[i] || memContains(w.l1, key) {
		return true
	}
	if w.l1.Set(key, r) == nil {
		w.bytes.Add(int64(len(key) + len(r)))
		w.keys.Add(1)
	}
	return true
}

// l1Fits reports whether L1 can store key and r without evicting anything,
// when L1 can tell (FitChecker); else true, and the warm-up stops at L1's
// first eviction instead.
func (w *warmer) l1Fits(key []byte, r Record) bool {
	if c, ok := w.l1.(FitChecker); ok {
		return c.Fits(key, r)
	}
	return true
}

// inL1 reports whether L1 holds the user key of the L2 key lkey: the
// warm-up does not read those from L2.
func (w *warmer) inL1(lkey []byte) bool {
	key, _, _, _, ok := parseL2Key(lkey)
	return ok && memContains(w.l1, key)
}

// memContains reports whether l1 holds key (or may), without counting a
// lookup or marking the entry read, when it can tell (ContainsChecker);
// else by a Get.
func memContains(l1 Mem, key []byte) bool {
	if c, ok := l1.(ContainsChecker); ok {
		return c.Contains(key)
	}
	_, err := l1.Get(key)
	return err == nil
}
