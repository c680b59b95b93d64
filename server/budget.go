package server

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// Lanes of the in-flight budget. A command whose arguments total at most
// smallCommand bytes (a GET, a DEL, a SET of an embedding up to 1 MiB)
// takes them from a reserve of its own, smallReserve bytes, so it is never
// queued behind large values waiting for the main budget (MaxInflight),
// which is shared first come, first served.
const (
	smallCommand = 1 << 20
	smallReserve = 32 << 20
)

// lane names a lane of the budget.
type lane uint8

const (
	laneNone lane = iota
	laneSmall
	laneMain
)

// budget is the server-wide in-flight byte budget for request arguments:
// the main lane and the small-command lane. Memory held by arguments is at
// most the sum of both lanes' sizes.
type budget struct {
	main     *semaphore.Weighted // FIFO: a large command is not starved by smaller ones
	small    smallLane
	mainSize int64
	smallMax int64 // the largest command total the small lane takes

	inUse   atomic.Int64 // bytes held, both lanes (INFO inflight_bytes)
	waiting atomic.Int64 // readers waiting for budget (INFO budget_waiting_clients)
}

// smallLane is the small commands' reserve. Every command takes from it, so
// it is a lock-free counter (semaphore.Weighted takes a mutex per call,
// which every connection would share); it only locks to wait when full.
type smallLane struct {
	size    int64
	used    atomic.Int64
	waiters atomic.Int64
	mu      sync.Mutex    // guards wake
	wake    chan struct{} // closed (and replaced) when bytes are released to waiters
}

func (l *smallLane) tryAcquire(n int64) bool {
	for {
		u := l.used.Load()
		if u+n > l.size {
			return false
		}
		if l.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (l *smallLane) acquire(ctx context.Context, n int64) error {
	l.waiters.Add(1) // before trying: a release after the try sees it
	defer l.waiters.Add(-1)
	for {
		l.mu.Lock()
		wake := l.wake
		l.mu.Unlock()
		if l.tryAcquire(n) {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *smallLane) release(n int64) {
	l.used.Add(-n)
	if l.waiters.Load() > 0 {
		l.mu.Lock()
		close(l.wake)
		l.wake = make(chan struct{})
		l.mu.Unlock()
	}
}

func (b *budget) tryAcquire(ln lane, n int64) bool {
	ok := false
	if ln == laneSmall {
		ok = b.small.tryAcquire(n)
	} else {
		ok = b.main.TryAcquire(n)
	}
	if ok {
		b.inUse.Add(n)
	}
	return ok
}

func (b *budget) acquire(ctx context.Context, ln lane, n int64) error {
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	var err error
	if ln == laneSmall {
		err = b.small.acquire(ctx, n)
	} else {
		err = b.main.Acquire(ctx, n)
	}
	if err != nil {
		return err
	}
	b.inUse.Add(n)
	return nil
}

func (b *budget) release(ln lane, n int64) {
	b.inUse.Add(-n)
	if ln == laneSmall {
		b.small.release(n)
	} else {
		b.main.Release(n)
	}
}

func newBudget(mainSize, smallMax, smallSize int64) *budget {
	b := &budget{main: semaphore.NewWeighted(mainSize), mainSize: mainSize, smallMax: smallMax}
	b.small.size = smallSize
	b.small.wake = make(chan struct{})
	return b
}

// laneOf returns the lane of a command whose arguments total n bytes.
func (b *budget) laneOf(n int64) lane {
	if n <= b.smallMax {
		return laneSmall
	}
	return laneMain
}
