package tier

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/tiercache/tiercache/internal/bufpool"
)

// Hybrid composes an L1 memory tier and an L2 disk tier into one cache with
// promotion, demotion, write-through or write-back, and model-version
// fencing. See the package documentation for the design.
//
// It is the lookup path and the public API over four parts, each in a file
// of its own: the write pipeline to L2 (pipeline.go), the model registry
// (modelregistry.go, embedded: its exported methods are the Hybrid's), the
// warm-up after a start (warm.go) and the stripes that order writes of a
// key against readers and count lookups (stripes.go).
type Hybrid struct {
	*Registry

	opts    Options
	l1      Mem
	l2      Disk
	clock   Clock
	stripes stripes
	queue   *pipeline
	warm    *warmer

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	promotions, demotions atomic.Uint64
	nearWrites            atomic.Uint64 // see NearWrites
	nearKept              atomic.Uint64 // see NearKept
	l2Rejected            atomic.Uint64 // L1 evictions not written: rejected by L1's policy, L2 full
	staleWrites           atomic.Uint64
	l2ReadErrs            atomic.Uint64
}

var _ Tier = (*Hybrid)(nil)

// NewHybrid composes opts.L1 and opts.L2, loads the persisted model registry
// from L2 and starts the flusher and the warm-up. Close it to flush and
// release both tiers.
func NewHybrid(opts Options) (*Hybrid, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if m, ok := opts.L1.(bufpool.Holder); ok && m.Buffers() != opts.Buffers {
		return nil, errors.New("tier: L1 and the Hybrid must share one buffer pool (Options.Buffers)")
	}
	reg, err := OpenRegistry(opts.L2, opts.OnError)
	if err != nil {
		return nil, err
	}
	h := &Hybrid{
		Registry: reg,
		opts:     opts,
		l1:       opts.L1,
		l2:       opts.L2,
		clock:    opts.Clock,
	}
	h.stripes.seed = maphash.MakeSeed()
	h.queue = newPipeline(pipelineEnv{
		write:   opts.L2.Write,
		current: func(op *pendingOp) bool { return reg.state(op.sc.Model).current(op.sc, op.epoch) },
		nowMs:   h.nowMs,
		retain: func(r Record) bool {
			_, ok := opts.Buffers.Retain(r)
			return ok
		},
		release:    func(r Record) { opts.Buffers.Release(r) },
		onError:    opts.OnError,
		afterFlush: reg.retry, // what the registry failed to write
	}, pipelineLimits{flushInterval: opts.FlushInterval, maxPending: opts.MaxPending, maxBatch: opts.MaxBatch})
	h.l1.SetOnEvict(h.onEvict)
	go h.queue.loop()
	h.warm = &warmer{
		l1:      opts.L1,
		limit:   opts.WarmBytes,
		stripes: &h.stripes,
		queue:   h.queue,
		reg:     reg,
		nowMs:   h.nowMs,
		onError: opts.OnError,
	}
	if rr, ok := opts.L2.(RecentReader); ok {
		h.warm.rr = rr
	}
	h.warm.start()
	return h, nil
}

// l2Key is the L2 key of key: model-scoped keys live under their model and
// epoch so that a model's stale epochs are one range.
func l2Key(key []byte, scoped bool, model string, epoch uint64) []byte {
	if scoped {
		return ModelKey(model, epoch, key)
	}
	return PlainKey(key)
}

func (h *Hybrid) nowMs() int64 { return h.clock.Now().UnixMilli() }

// Buffers returns the pool records may be read into (Options.Buffers):
// whoever reads values into its buffers for SetArgs.Spare must pin a
// bufpool.Guard while it holds records it looked up. It may be nil.
func (h *Hybrid) Buffers() *bufpool.Pool { return h.opts.Buffers }

// Flush commits every pending write to L2 now.
func (h *Hybrid) Flush() error {
	if h.closed.Load() {
		return ErrClosed
	}
	return h.queue.flush()
}

// QueueLimits returns the write queue's bound on pending bytes
// (Options.MaxPending) and the largest batch the flusher commits
// (Options.MaxBatch; a single record larger than it goes alone).
func (h *Hybrid) QueueLimits() (maxPending, maxBatch int64) {
	return h.opts.MaxPending, h.opts.MaxBatch
}

// FlushAll removes every entry from both tiers and the write queue
// (FLUSHALL). The model registry is kept.
func (h *Hybrid) FlushAll() error {
	if h.closed.Load() {
		return ErrClosed
	}
	unlock := h.stripes.lockAll() // no promotion nor read-modify-write spans the flush
	defer unlock()
	return h.queue.dropAll(func() error {
		return errors.Join(h.l1.Reset(), h.l2.DropRange([]byte{lkeyPlain}, []byte{lkeyModel + 1}))
	})
}

// Keys estimates the number of live keys: L2's count, or L1's when it is
// larger (write-back keeps entries in L1 only). Expired entries not yet
// reclaimed are counted.
func (h *Hybrid) Keys() int64 {
	l1, l2 := h.l1.Stats().Keys, h.l2.Stats().Keys
	return max(l1, l2+h.queue.stats().keys)
}

// Close stops the warm-up and the flusher, writes L1-only records down to
// L2 (write-back), commits what is pending, writes what the registry left
// behind, and closes both tiers. It is idempotent and
// returns the first error.
func (h *Hybrid) Close() error {
	h.closeOnce.Do(func() {
		h.closed.Store(true)
		h.warm.close()
		h.queue.stopLoop()

		var errs []error
		if h.opts.WritePolicy == WriteBack {
			errs = append(errs, h.writeBackAll())
		}
		if err := h.queue.flush(); err != nil {
			errs = append(errs, fmt.Errorf("tier: final flush: %w", err))
		}
		errs = append(errs, h.Registry.Close(), h.l1.Close(), h.l2.Close())
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

// writeBackAll queues every dirty L1 record for L2, flushing in batches so
// that memory stays bounded.
func (h *Hybrid) writeBackAll() error {
	var firstErr error
	h.l1.Range(func(key []byte, r Record) bool {
		if r.Flags()&FlagClean != 0 || r.Expired(h.nowMs()) {
			return true
		}
		sc, scoped, err := ParseScope(key)
		if err != nil || (scoped && !h.state(sc.Model).current(sc, r.Epoch())) {
			return true
		}
		h.queue.enqueue(newOp(key, r, sc, scoped, r.Epoch()))
		h.demotions.Add(1)
		if h.queue.stats().bytes >= h.opts.MaxBatch {
			if err := h.queue.flush(); err != nil {
				firstErr = err
				return false
			}
		}
		return true
	})
	return firstErr
}
