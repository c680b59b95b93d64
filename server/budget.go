package server

import (
	"context"
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

// budget is the server-wide in-flight byte budget for request arguments:
// the main lane and the small-command lane. Memory held by arguments is at
// most the sum of both lanes' sizes.
type budget struct {
	main, small         *semaphore.Weighted
	mainSize, smallSize int64
	smallMax            int64 // the largest command total the small lane takes

	inUse   atomic.Int64 // bytes held, both lanes (INFO inflight_bytes)
	waiting atomic.Int64 // readers waiting for budget (INFO budget_waiting_clients)
}

func (b *budget) tryAcquire(lane *semaphore.Weighted, n int64) bool {
	if !lane.TryAcquire(n) {
		return false
	}
	b.inUse.Add(n)
	return true
}

func (b *budget) acquire(ctx context.Context, lane *semaphore.Weighted, n int64) error {
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	if err := lane.Acquire(ctx, n); err != nil {
		return err
	}
	b.inUse.Add(n)
	return nil
}

func (b *budget) release(lane *semaphore.Weighted, n int64) {
	b.inUse.Add(-n)
	lane.Release(n)
}

func newBudget(mainSize, smallMax, smallSize int64) *budget {
	return &budget{
		main: semaphore.NewWeighted(mainSize), small: semaphore.NewWeighted(smallSize),
		mainSize: mainSize, smallSize: smallSize, smallMax: smallMax,
	}
}

// lane returns the lane of a command whose arguments total n bytes.
func (b *budget) lane(n int64) *semaphore.Weighted {
	if n <= b.smallMax {
		return b.small
	}
	return b.main
}
