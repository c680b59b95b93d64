package tier

import (
	"errors"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/internal/bufpool"
)

// WritePolicy says when writes reach L2.
type WritePolicy int

const (
	// WriteThrough sends every write to L2, durable at most FlushInterval
	// after it was acknowledged.
	WriteThrough WritePolicy = iota
	// WriteBack keeps writes in L1; L2 receives an entry when L1 evicts it
	// (demotion) and at Close.
	WriteBack
)

// String returns "through" or "back", the names the daemon's flag uses.
func (p WritePolicy) String() string {
	switch p {
	case WriteThrough:
		return "through"
	case WriteBack:
		return "back"
	}
	return fmt.Sprintf("WritePolicy(%d)", int(p))
}

// ParseWritePolicy parses "through" or "back".
func ParseWritePolicy(s string) (WritePolicy, error) {
	switch s {
	case "through":
		return WriteThrough, nil
	case "back":
		return WriteBack, nil
	}
	return 0, fmt.Errorf("tier: write policy %q: want through or back", s)
}

// Options configure a Hybrid.
type Options struct {
	// L1 is the memory tier. Required.
	L1 Mem
	// L2 is the disk tier. Required.
	L2 Disk
	// WritePolicy defaults to WriteThrough.
	WritePolicy WritePolicy
	// FlushInterval is the longest an acknowledged write-through write waits
	// before it is durable in L2. Default 200ms. The flusher commits as soon
	// as writes are queued; the interval bounds the wait when it is busy and
	// paces retries after an L2 error.
	FlushInterval time.Duration
	// MaxPending is how many bytes of writes may wait for L2 before Set waits
	// for the flusher (back-pressure). While L2 is failing, the oldest
	// pending writes beyond it are dropped instead (they stay in L1). A
	// single record larger than MaxPending is still accepted when nothing
	// else is pending. Default: a quarter of L1's capacity, within
	// [8 MiB, 64 MiB], so the queue stays small next to the memory budget.
	MaxPending int64
	// MaxBatch is the most bytes the flusher commits in one L2 batch.
	// Default min(4 MiB, MaxPending/2): a batch must commit in a small part
	// of FlushInterval, or acknowledged writes wait longer than promised.
	MaxBatch int64
	// Clock is used for TTLs. Default SystemClock.
	Clock Clock
	// OnError is told about L2 errors the Hybrid absorbed (a failed
	// write or read); it must not block. Default: ignore.
	OnError func(op string, err error)
	// WarmBytes is how much of L1 the warm-up fills after NewHybrid: when
	// L2 is a RecentReader, a background goroutine copies its most
	// recently written or read entries up to L1 until L1 holds WarmBytes
	// (its Stats().Bytes), evicts anything, or every entry was read. It
	// yields to clients (see the package documentation). Default L1's
	// MaxBytes: the warm-up then stops at L1's first eviction, that is
	// when L1 is full. A negative value turns warm-up off.
	WarmBytes int64
	// Buffers, if not nil, is the pool records may have been read into
	// (the L1 given should use it too): a write waiting for L2 takes a
	// share of its record's buffer until it is committed, so that the
	// buffer is not reused under it (see package bufpool). Default nil.
	Buffers *bufpool.Pool
}

// EnsureDefaults fills in the zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.FlushInterval == 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.MaxPending == 0 {
		o.MaxPending = 64 << 20
		if o.L1 != nil {
			o.MaxPending = min(64<<20, max(8<<20, o.L1.Stats().MaxBytes/4))
		}
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = min(4<<20, o.MaxPending/2)
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.WarmBytes == 0 && o.L1 != nil {
		o.WarmBytes = o.L1.Stats().MaxBytes
	}
	if o.OnError == nil {
		o.OnError = func(string, error) {}
	}
}

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	if o.L1 == nil {
		errs = append(errs, errors.New("tier: L1 is required"))
	}
	if o.L2 == nil {
		errs = append(errs, errors.New("tier: L2 is required"))
	}
	if o.WritePolicy != WriteThrough && o.WritePolicy != WriteBack {
		errs = append(errs, fmt.Errorf("tier: unknown write policy %d", int(o.WritePolicy)))
	}
	if o.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("tier: flush interval %v is negative", o.FlushInterval))
	}
	if o.MaxPending < 0 {
		errs = append(errs, fmt.Errorf("tier: max pending %d is negative", o.MaxPending))
	}
	if o.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("tier: max batch %d is negative", o.MaxBatch))
	}
	return errors.Join(errs...)
}

// GoMemoryLimit is L1's part of the Go heap's soft limit, for an L1 of
// memMax bytes: L1 itself (its records are Go allocations) plus 15% for its
// indices and buffers, plus 32 MiB for connection buffers and the runtime.
// The daemon adds the other parts of its memory bound that live in the Go
// heap (request arguments in flight, the write queue, Pebble's batches) and
// applies the sum with debug.SetMemoryLimit unless GOMEMLIMIT is set, so
// that the garbage collector works harder rather than letting replaced
// records push the RSS past the bound, which sits 32 MiB above the limit
// because a soft limit is approached, not held exactly. Tests that run L1
// alone apply GoMemoryLimit as it is.
func GoMemoryLimit(memMax int64) int64 { return memMax*115/100 + 32<<20 }
