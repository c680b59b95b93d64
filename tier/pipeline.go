package tier

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"
)

// pendingOp is a write waiting for L2. rec is nil for a delete. Records in
// pendingOps are never modified once queued, so readers may return them.
type pendingOp struct {
	key    string
	lkey   []byte
	rec    Record
	sc     Scope  // set for scoped keys: the op is dropped if the record
	epoch  uint64 // is no longer current when it would reach L2
	scoped bool
	queued time.Time // when it was queued (monotonic), for back-pressure
}

// newOp returns the op that writes rec (nil: deletes) under key, of scope
// sc when scoped, at its L2 key for epoch.
func newOp(key []byte, rec Record, sc Scope, scoped bool, epoch uint64) *pendingOp {
	return &pendingOp{key: string(key), lkey: l2Key(key, scoped, sc.Model, epoch), rec: rec, sc: sc, epoch: epoch, scoped: scoped}
}

func (op *pendingOp) size() int64 { return int64(len(op.key) + len(op.lkey) + len(op.rec) + 64) }

// pipelineEnv is what the write pipeline needs of the cache around it,
// as functions, so that the pipeline can be driven and tested alone (after
// pebble's commitEnv).
type pipelineEnv struct {
	// write commits ops to L2 in order, atomically and durably (Disk.Write).
	write func(ops []Op) error
	// current reports whether a scoped op's model is still at the epoch the
	// op was written under; a stale op is not written.
	current func(op *pendingOp) bool
	// nowMs is the time, in Unix milliseconds, expiries are compared with.
	nowMs func() int64
	// retain takes a share of a record's buffer while it waits (see package
	// bufpool); false means the buffer is retired and the op keeps a copy.
	retain func(Record) bool
	// release returns the share retain took once the op left the queue.
	release func(Record)
	// onError is told about a failed commit (Options.OnError).
	onError func(op string, err error)
	// afterFlush runs after every flush of the background loop (the
	// registry's deferred work is retried from there).
	afterFlush func()
}

// pipelineLimits bound the write pipeline (see Options).
type pipelineLimits struct {
	flushInterval time.Duration
	maxPending    int64
	maxBatch      int64
}

// pipeline is the write path to L2: a queue of pendingOps in write order,
// looked up by key (reads consult it between L1 and L2), committed by one
// background goroutine in group batches of at most maxBatch bytes as soon
// as writes arrive, and at the latest every flushInterval.
//
// Back-pressure: a writer waits (waitForSpace) while more than maxPending
// bytes are queued, or while the oldest op has waited for more than a
// quarter of flushInterval (the disk is not keeping up, and a longer queue
// would break write-through's durability promise), unless L2 is failing:
// then the oldest ops beyond maxPending are shed (they stay in L1) and
// writers do not wait, so that L1 keeps serving.
type pipeline struct {
	env    pipelineEnv
	limits pipelineLimits

	mu struct {
		sync.Mutex // guards the fields below
		byKey      map[string]*pendingOp
		queue      []*pendingOp // in write order; flush commits from the front
		bytes      int64
		failing    bool // the last L2 write failed
		// queued and dequeued count the ops ever appended to the queue
		// and ever taken off its front (committed, shed or dropped): the
		// warm-up waits for dequeued to reach queued.
		queued, dequeued uint64
	}
	space *sync.Cond // on mu: signalled whenever the queue shrinks or the pipeline stops

	flushMu sync.Mutex // serializes flush: it takes batches from the queue's front

	kick    chan struct{} // wakes loop
	stop    chan struct{} // closed by stopLoop
	done    chan struct{} // closed when loop returns
	stopped atomic.Bool   // stopLoop was called: writers no longer wait

	dropped, writeErrs atomic.Uint64
}

// newPipeline returns a pipeline; start its loop with go p.loop().
func newPipeline(env pipelineEnv, limits pipelineLimits) *pipeline {
	p := &pipeline{
		env:    env,
		limits: limits,
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	p.mu.byKey = make(map[string]*pendingOp)
	p.space = sync.NewCond(&p.mu.Mutex)
	return p
}

// loop commits what is queued whenever it is kicked, and every
// flushInterval, until stopLoop.
func (p *pipeline) loop() {
	defer close(p.done)
	t := newTicker(p.limits.flushInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.kick:
		case <-t.C:
		}
		_ = p.flush()
		p.env.afterFlush()
	}
}

// stopLoop stops the background loop and waits for it, and releases every
// writer waiting for space. flush still works afterwards (Close's final
// flush). It must be called once.
func (p *pipeline) stopLoop() {
	p.stopped.Store(true)
	close(p.stop)
	p.wake()
	<-p.done
}

// wake releases whoever waits on space to look at the state again.
func (p *pipeline) wake() {
	p.mu.Lock()
	p.space.Broadcast()
	p.mu.Unlock()
}

// enqueue appends op to the queue; the newest op of a key is the one reads
// find. It does not wait (see waitForSpace).
func (p *pipeline) enqueue(op *pendingOp) {
	if op.rec != nil && !p.env.retain(op.rec) {
		// The record's buffer is retired (the caller holds it under a
		// pinned guard, past its last owner): queue a copy.
		op.rec = bytes.Clone(op.rec)
	}
	op.queued = time.Now()
	p.mu.Lock()
	p.mu.byKey[op.key] = op
	p.mu.queue = append(p.mu.queue, op)
	p.mu.bytes += op.size()
	p.mu.queued++
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// get returns the newest queued op of key.
func (p *pipeline) get(key []byte) (*pendingOp, bool) {
	p.mu.Lock()
	op, ok := p.mu.byKey[string(key)]
	p.mu.Unlock()
	return op, ok
}

// waitForSpace applies back-pressure (see pipeline).
func (p *pipeline) waitForSpace() {
	p.mu.Lock()
	for p.backlogLocked() && !p.mu.failing && !p.stopped.Load() {
		p.space.Wait()
	}
	p.mu.Unlock()
}

func (p *pipeline) backlogLocked() bool {
	q := p.mu.queue
	if len(q) <= 1 {
		return false
	}
	return p.mu.bytes > p.limits.maxPending || time.Since(q[0].queued) > p.limits.flushInterval/4
}

// flush commits the queue to L2, in batches of at most maxBatch bytes
// (a larger op goes alone), until it is empty or L2 fails.
func (p *pipeline) flush() error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	for {
		p.mu.Lock()
		n, size := 0, int64(0)
		for n < len(p.mu.queue) && (n == 0 || size+p.mu.queue[n].size() <= p.limits.maxBatch) {
			size += p.mu.queue[n].size()
			n++
		}
		batch := append([]*pendingOp(nil), p.mu.queue[:n]...)
		p.mu.Unlock()
		if n == 0 {
			return nil
		}

		now := p.env.nowMs()
		ops := make([]Op, 0, n)
		for _, op := range batch {
			if op.scoped && !p.env.current(op) {
				continue // the model moved on: the entry is stale
			}
			if op.rec != nil && op.rec.Expired(now) {
				ops = append(ops, Op{Key: op.lkey}) // never store it; drop any older copy
				continue
			}
			ops = append(ops, Op{Key: op.lkey, Record: op.rec})
		}
		err := p.env.write(ops)

		p.mu.Lock()
		if err != nil {
			p.mu.failing = true
			p.writeErrs.Add(1)
			p.shedLocked()
			p.space.Broadcast()
			p.mu.Unlock()
			p.env.onError("write", err)
			return err
		}
		p.mu.failing = false
		p.removeFrontLocked(n)
		p.space.Broadcast()
		p.mu.Unlock()
	}
}

// removeFrontLocked removes the first n ops of the queue, which were
// committed, shed or dropped.
func (p *pipeline) removeFrontLocked(n int) {
	for _, op := range p.mu.queue[:n] {
		if p.mu.byKey[op.key] == op {
			delete(p.mu.byKey, op.key)
		}
		p.mu.bytes -= op.size()
		p.env.release(op.rec) // readers that found it hold it under their guards
	}
	clear(p.mu.queue[:n])
	p.mu.queue = p.mu.queue[n:]
	p.mu.dequeued += uint64(n)
	if len(p.mu.queue) == 0 {
		p.mu.queue = nil
	}
}

// shedLocked drops the oldest ops while more than maxPending bytes wait
// for a failing L2; L1 keeps serving what it holds.
func (p *pipeline) shedLocked() {
	n := 0
	for b := p.mu.bytes; b > p.limits.maxPending && n < len(p.mu.queue)-1; n++ {
		b -= p.mu.queue[n].size()
	}
	if n > 0 {
		p.dropped.Add(uint64(n))
		p.removeFrontLocked(n)
	}
}

// dropAll empties the queue with no batch in flight, and runs fn while
// no batch can start: FLUSHALL clears both tiers in fn.
func (p *pipeline) dropAll(fn func() error) error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	p.mu.Lock()
	p.removeFrontLocked(len(p.mu.queue))
	p.space.Broadcast()
	p.mu.Unlock()
	return fn()
}

// waitDrained waits until every op queued so far has left the queue
// (committed, or shed while L2 fails): an L2 read that starts afterwards
// sees every write completed before the call. It reports false if the
// pipeline stops or cancelled returns true meanwhile (whoever makes it
// true then calls wake).
func (p *pipeline) waitDrained(cancelled func() bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for target := p.mu.queued; p.mu.dequeued < target && !p.stopped.Load() && !cancelled(); {
		p.space.Wait()
	}
	return !p.stopped.Load() && !cancelled()
}

// pipelineStats are the pipeline's gauges and counters.
type pipelineStats struct {
	bytes     int64  // bytes of ops waiting for L2
	keys      int64  // distinct keys with an op waiting
	queued    uint64 // ops ever queued
	dropped   uint64 // ops shed while L2 was failing
	writeErrs uint64 // failed commits
}

func (p *pipeline) stats() pipelineStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pipelineStats{
		bytes:     p.mu.bytes,
		keys:      int64(len(p.mu.byKey)),
		queued:    p.mu.queued,
		dropped:   p.dropped.Load(),
		writeErrs: p.writeErrs.Load(),
	}
}

// newTicker returns a ticker for the loop; a zero or negative interval
// (not allowed by Options.Validate, but defensive) falls back to 200ms.
func newTicker(d time.Duration) *time.Ticker {
	if d <= 0 {
		d = 200 * time.Millisecond
	}
	return time.NewTicker(d)
}
