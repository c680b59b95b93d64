package tier

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
)

// testPipelineEnv drives a pipeline alone, as pebble's commit tests drive
// its commitPipeline: it records every batch the pipeline writes, and can
// be told to fail the writes or to treat a model as moved on.
type testPipelineEnv struct {
	mu       sync.Mutex // guards the fields below
	batches  [][]Op
	failing  error
	stale    map[string]bool // models whose ops are stale
	retained map[*byte]int   // shares taken, by the record's first byte
	errs     []string
	flushes  int
	now      int64
	noRetain bool // retain reports every buffer as retired
}

func (e *testPipelineEnv) env() pipelineEnv {
	return pipelineEnv{
		write: func(ops []Op) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.failing != nil {
				return e.failing
			}
			e.batches = append(e.batches, slices.Clone(ops))
			return nil
		},
		current: func(op *pendingOp) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			return !e.stale[op.sc.Model]
		},
		nowMs: func() int64 {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.now
		},
		retain: func(r Record) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.noRetain {
				return false
			}
			e.retained[&r[0]]++
			return true
		},
		release: func(r Record) {
			if r == nil {
				return
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.retained[&r[0]] > 0 {
				e.retained[&r[0]]--
			}
		},
		onError: func(op string, err error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.errs = append(e.errs, op+": "+err.Error())
		},
		afterFlush: func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.flushes++
		},
	}
}

// written returns the keys written, batch by batch, "-" marking deletes.
func (e *testPipelineEnv) written() [][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out [][]string
	for _, b := range e.batches {
		var keys []string
		for _, op := range b {
			k := string(op.Key)
			if op.Record == nil {
				k = "-" + k
			}
			keys = append(keys, k)
		}
		out = append(out, keys)
	}
	return out
}

func newTestPipeline(limits pipelineLimits) (*pipeline, *testPipelineEnv) {
	e := &testPipelineEnv{stale: map[string]bool{}, retained: map[*byte]int{}}
	if limits.flushInterval == 0 {
		limits.flushInterval = time.Hour // the tests flush by hand unless they say
	}
	return newPipeline(e.env(), limits), e
}

// testOp is an op of a plain key with a value of n bytes.
func testOp(key string, n int) *pendingOp {
	return newOp([]byte(key), NewRecord(Header{}, bytes.Repeat([]byte{'v'}, n)), Scope{}, false, 0)
}

// TestPipelineGroupCommit queues ops and flushes: they reach L2 in write
// order, in batches of at most maxBatch bytes (a larger op alone); reads
// find the newest queued op of a key until it is committed; every share of
// a buffer taken at enqueue is released once the op is committed.
func TestPipelineGroupCommit(t *testing.T) {
	one := testOp("k0", 1000).size() // every key here has two bytes
	p, e := newTestPipeline(pipelineLimits{maxPending: 1 << 30, maxBatch: 3 * one})
	for i := range 7 {
		p.enqueue(testOp(fmt.Sprintf("k%d", i), 1000))
	}
	p.enqueue(testOp("big", 10000))
	p.enqueue(testOp("k0", 1000)) // the newest op of k0
	if op, ok := p.get([]byte("k0")); !ok || op != p.mu.queue[len(p.mu.queue)-1] {
		t.Fatalf("get(k0) = %v, %v: want the newest op", op, ok)
	}
	if st := p.stats(); st.keys != 8 || st.queued != 9 || st.bytes != 8*one+testOp("big", 10000).size() {
		t.Fatalf("stats before flush = %+v", st)
	}
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"\x00k0", "\x00k1", "\x00k2"},
		{"\x00k3", "\x00k4", "\x00k5"},
		{"\x00k6"},
		{"\x00big"},
		{"\x00k0"},
	}
	if got := e.written(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches = %q, want %q", got, want)
	}
	if _, ok := p.get([]byte("k0")); ok {
		t.Error("a committed op is still found")
	}
	if st := p.stats(); st.keys != 0 || st.bytes != 0 {
		t.Errorf("stats after flush = %+v", st)
	}
	for b, n := range e.retained {
		if n != 0 {
			t.Errorf("buffer %p: %d shares not released", b, n)
		}
	}
}

// TestPipelineSkipsStaleAndExpired checks what a batch holds: an op whose
// model moved on is not written, an expired record is written as a delete
// (an older copy must not come back), a delete as a delete.
func TestPipelineSkipsStaleAndExpired(t *testing.T) {
	p, e := newTestPipeline(pipelineLimits{maxPending: 1 << 30, maxBatch: 1 << 30})
	e.now = 5000
	rec := func(expireAt int64) Record { return NewRecord(Header{ExpireAt: expireAt}, []byte("v")) }
	p.enqueue(newOp([]byte("{clip}a"), rec(0), Scope{Model: "clip"}, true, 1))
	p.enqueue(newOp([]byte("{t5}b"), rec(0), Scope{Model: "t5"}, true, 1))
	p.enqueue(newOp([]byte("old"), rec(4000), Scope{}, false, 0))
	p.enqueue(newOp([]byte("later"), rec(6000), Scope{}, false, 0))
	p.enqueue(newOp([]byte("gone"), nil, Scope{}, false, 0))
	e.stale["clip"] = true
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	got := e.written()
	want := [][]string{{string(ModelKey("t5", 1, []byte("{t5}b"))), "-\x00old", "\x00later", "-\x00gone"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches = %q, want %q", got, want)
	}
}

// TestPipelineBackPressure: a writer waits while more than maxPending
// bytes are queued, or while the oldest op has waited for more than a
// quarter of flushInterval, and goes on once a flush made room.
func TestPipelineBackPressure(t *testing.T) {
	one := testOp("k0", 1000).size() // every key here has two bytes
	t.Run("bytes", func(t *testing.T) {
		p, _ := newTestPipeline(pipelineLimits{maxPending: 2 * one, maxBatch: 1 << 30})
		p.enqueue(testOp("ka", 1000))
		p.enqueue(testOp("kb", 1000))
		if p.mu.Lock(); p.backlogLocked() {
			t.Error("backlog at maxPending bytes")
		}
		p.mu.Unlock()
		p.enqueue(testOp("kc", 1000))
		waitsForFlush(t, p)
	})
	t.Run("age", func(t *testing.T) {
		p, _ := newTestPipeline(pipelineLimits{maxPending: 1 << 30, maxBatch: 1 << 30, flushInterval: time.Second})
		p.enqueue(testOp("a", 10))
		p.enqueue(testOp("b", 10))
		if p.mu.Lock(); p.backlogLocked() {
			t.Error("backlog with young ops")
		}
		p.mu.queue[0].queued = time.Now().Add(-time.Second / 2) // older than a quarter of the interval
		p.mu.Unlock()
		waitsForFlush(t, p)
	})
	t.Run("one op alone never waits", func(t *testing.T) {
		p, _ := newTestPipeline(pipelineLimits{maxPending: 10, maxBatch: 1 << 30})
		p.enqueue(testOp("big", 100000))
		p.waitForSpace() // returns at once: nothing else to wait for
	})
}

// waitsForFlush checks that p has a backlog, that waitForSpace is still
// waiting while it does, and that it returns once p is flushed.
func waitsForFlush(t *testing.T, p *pipeline) {
	t.Helper()
	p.mu.Lock()
	backlog := p.backlogLocked()
	p.mu.Unlock()
	if !backlog {
		t.Fatal("no backlog")
	}
	done := make(chan struct{})
	go func() {
		p.waitForSpace()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("waitForSpace returned with a backlog")
	case <-time.After(20 * time.Millisecond): // it waits; a flush must end it
	}
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("waitForSpace still waiting after a flush")
	}
}

// TestPipelineFailingDisk: a failed commit keeps the ops queued (they are
// retried), reports the error, sheds the oldest ops beyond maxPending
// (counted as dropped) and lets writers go on; the next successful commit
// ends the failing state.
func TestPipelineFailingDisk(t *testing.T) {
	one := testOp("k0", 1000).size() // every key here has two bytes
	p, e := newTestPipeline(pipelineLimits{maxPending: 2 * one, maxBatch: one})
	e.failing = errors.New("disk on fire")
	for i := range 5 {
		p.enqueue(testOp(fmt.Sprintf("k%d", i), 1000))
	}
	if err := p.flush(); !errors.Is(err, e.failing) {
		t.Fatalf("flush = %v, want the disk's error", err)
	}
	st := p.stats()
	if st.dropped != 3 || st.bytes != 2*one || st.writeErrs != 1 {
		t.Fatalf("after a failed flush: %+v, want 3 dropped, 2 left, 1 error", st)
	}
	if _, ok := p.get([]byte("k0")); ok {
		t.Error("a shed op is still found")
	}
	if len(e.errs) != 1 || e.errs[0] != "write: disk on fire" {
		t.Errorf("errors reported: %q", e.errs)
	}
	p.enqueue(testOp("k5", 1000))
	p.waitForSpace() // L2 is failing: writers do not wait

	e.mu.Lock()
	e.failing = nil
	e.mu.Unlock()
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"\x00k3"}, {"\x00k4"}, {"\x00k5"}}
	if got := e.written(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches = %q, want %q", got, want)
	}
	if p.mu.Lock(); p.mu.failing {
		t.Error("still failing after a successful commit")
	}
	p.mu.Unlock()
}

// TestPipelineDropAll: FLUSHALL's drop empties the queue and runs its
// function with no batch in flight.
func TestPipelineDropAll(t *testing.T) {
	p, e := newTestPipeline(pipelineLimits{maxPending: 1 << 30, maxBatch: 1 << 30})
	p.enqueue(testOp("a", 10))
	p.enqueue(testOp("b", 10))
	ran := false
	if err := p.dropAll(func() error {
		ran = !p.flushMu.TryLock() && p.stats().keys == 0
		return nil
	}); err != nil || !ran {
		t.Fatalf("dropAll: err %v, ran with the flush lock held and the queue empty: %v", err, ran)
	}
	if err := p.flush(); err != nil || len(e.written()) != 0 {
		t.Fatalf("flush after dropAll wrote %q (%v)", e.written(), err)
	}
	for b, n := range e.retained {
		if n != 0 {
			t.Errorf("buffer %p: %d shares not released", b, n)
		}
	}
}

// TestPipelineRetiredBuffer: a record whose buffer is already retired is
// queued as a copy, so that its buffer can be reused under it.
func TestPipelineRetiredBuffer(t *testing.T) {
	p, e := newTestPipeline(pipelineLimits{maxPending: 1 << 30, maxBatch: 1 << 30})
	e.noRetain = true
	op := testOp("a", 100)
	orig := op.rec
	p.enqueue(op)
	if &op.rec[0] == &orig[0] || !bytes.Equal(op.rec, orig) {
		t.Fatal("the op kept the retired buffer instead of a copy")
	}
}

// TestPipelineLoop: the background loop commits as soon as an op is
// queued, runs afterFlush, and stops; waitDrained returns once every op
// queued before it left the queue, and gives up when cancelled.
func TestPipelineLoop(t *testing.T) {
	p, e := newTestPipeline(pipelineLimits{maxPending: 1 << 30, maxBatch: 1 << 30})
	go p.loop()
	p.enqueue(testOp("a", 10))
	if !p.waitDrained(func() bool { return false }) {
		t.Fatal("waitDrained gave up")
	}
	if got := e.written(); len(got) != 1 || got[0][0] != "\x00a" {
		t.Fatalf("batches = %q", got)
	}
	testutil.WaitFor(t, 10*time.Second, "afterFlush", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.flushes > 0
	})

	e.mu.Lock()
	e.failing = errors.New("stuck")
	e.mu.Unlock()
	p.enqueue(testOp("b", 10))
	cancelled := make(chan bool, 1)
	go func() { cancelled <- p.waitDrained(func() bool { return true }) }()
	if <-cancelled {
		t.Error("a cancelled waitDrained reported the queue drained")
	}
	p.stopLoop()
	if p.waitDrained(func() bool { return false }) {
		t.Error("waitDrained reported a drained queue after the loop stopped with an op failing")
	}
	p.waitForSpace() // stopped: never waits
}
