package disktier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// handle is one open Pebble instance. After a storage fault the store stops
// writing to it but keeps reading from it until it can be replaced.
type handle struct {
	db *pebble.DB
	// ctx is cancelled, and bg waited for, before db is closed: they track
	// the manual compactions run on db (see compactSpans).
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
	// faults counts the storage faults of this instance: WAL I/O errors
	// caught by walGuardFS, and Pebble's calls to Logger.Fatalf. Pebble
	// calls Fatalf where it considers its state unrecoverable (a failed
	// commit in DB.Apply, a failed MANIFEST write in logAndApply, ...) and
	// expects the process to exit; we route it here instead. From the first
	// fault on the instance is never written to again, only read from, until
	// the maintainer replaces it.
	faults atomic.Uint64
	// wedged is set when a Pebble call panicked: Pebble's locks may be held,
	// so the instance is abandoned without DB.Close.
	wedged atomic.Bool
}

func (h *handle) broken() bool { return h.faults.Load() > 0 || h.wedged.Load() }

// fault records a storage fault of h.
func (s *Store) fault(h *handle, format string, args ...any) {
	h.faults.Add(1)
	s.errors.Add(1)
	s.opts.Logger("disktier: storage fault, writes stop until Pebble is reopened: "+format, args...)
	s.kickMaintainer()
}

// pebbleLogger routes Pebble's log lines to Options.Logger and turns its
// fatal messages into a storage fault of the instance.
type pebbleLogger struct {
	s *Store
	h *handle
}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.s.opts.Logger("disktier: pebble: "+format, args...)
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.s.opts.Logger("disktier: pebble: "+format, args...)
}

// Fatalf must return: Pebble's default logger calls os.Exit here.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.s.fault(l.h, "pebble fatal: "+format, args...)
}

// blobMin is the smallest record Pebble stores in a blob file (value
// separation). Larger records are moved by compactions as handles, not
// copied, which keeps compactions of embedding-sized values cheap in CPU,
// I/O and transient disk space. Smaller ones stay in the sstables: when
// DropRange or an overwrite leaves part of a blob file unreferenced, Pebble
// reclaims it only by rewriting the file (after
// ValueSeparationPolicy.RewriteMinimumAge, when its compaction picker gets
// to it), or when the generation is evicted; an sstable is cleaned by the
// next compaction of its range. Measured with the harness's budget workload
// (118 KB values, --mem-max 64MiB, 640 MiB of disk, write-back, one run
// each): lowering it from 256 KiB to 16 KiB took the replay from 77.6 s to
// 57.3 s and the p99 GET from 9.9 to 7.0 ms, the hit ratio moving from
// 0.519 to 0.513; compactions had been a quarter of the daemon's CPU.
const blobMin = 16 * KiB

// blockSize is the target size of Pebble's data blocks: larger than the
// default 4 KiB because records of up to blobMin live in the sstables.
const blockSize = 32 * KiB

// pebbleOptions returns the Pebble options of one instance (Pebble keeps and
// mutates the struct, so each Open gets its own).
func (s *Store) pebbleOptions(h *handle) *pebble.Options {
	o := &pebble.Options{
		FS: &walGuardFS{FS: countFS{FS: s.opts.FS, n: &s.writeBytes}, onFault: func(err error) {
			s.fault(h, "WAL: %v", err)
		}},
		Cache:              s.cache,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       uint64(s.opts.MemTableSize),
		// Two memtables: one being filled while the other flushes. More
		// would keep more WAL on disk, which counts against MaxBytes.
		MemTableStopWritesThreshold: 2,
		Logger:                      pebbleLogger{s: s, h: h},
		EventListener:               s.eventListener(),
		// Deletion pacing off (Pebble's default, made explicit): evicted
		// space must come back as soon as compactions release it.
		TargetByteDeletionRate: 0,
		// Deleting instead of recycling WAL files: a recycled WAL keeps its
		// size on disk while it waits, up to three of them, each possibly
		// swollen by a large batch. See noRecycleCleaner.
		Cleaner: noRecycleCleaner{},
		// FlushDelayDeleteRange stays 0: its timer goroutine rotates the WAL,
		// which must never happen on a faulty instance (see walGuardFS);
		// the maintainer flushes after range deletes instead.
		// Compactions are what return evicted space; allow a second one
		// when Pebble sees a backlog.
		CompactionConcurrencyRange: func() (int, int) { return 1, 2 },
	}
	for i := range o.Levels {
		o.Levels[i].BlockSize = blockSize
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// No block compression: what pipelines cache is tensors (fp16/bf16
	// embeddings), which Snappy does not shrink, so compressing every block
	// on each flush and compaction only costs CPU on the cores that serve
	// requests. In the budget workload above it took the replay from 57.3 s
	// to 52.2 s and the p99 GET from 7.0 to 6.3 ms.
	o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	o.Experimental.SpanPolicyFunc = spanPolicy
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           blobMin,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	return o
}

// noRecycleCleaner deletes obsolete files, and disables WAL recycling.
// Pebble recycles WAL files unless its Cleaner implements the unexported
// base.NeedsFileContents interface (obsolete_files.go: `_, noRecycle :=
// d.opts.Cleaner.(base.NeedsFileContents)`). ArchiveCleaner has that method;
// embedded one level deeper than DeleteCleaner, it contributes only that
// method, while Clean (delete) comes from DeleteCleaner.
type noRecycleCleaner struct {
	pebble.DeleteCleaner
	archiveMethods
}

type archiveMethods struct{ pebble.ArchiveCleaner }

func (noRecycleCleaner) String() string { return "delete-no-recycle" }

func (s *Store) eventListener() *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			s.errors.Add(1)
			s.logLimited("disktier: pebble background error: %v", err)
		},
		// Pebble's default handler for corruption found in the background
		// calls Logger.Fatalf; a cache drops the entries instead (reads
		// report them as misses, and eviction deletes the files whole).
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			s.logLimited("disktier: pebble: %s", info)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			s.logLimited("disktier: pebble write stall: %s", info.Reason)
		},
	}
}

// logLimited logs at most one line per second: a background fault can make
// Pebble retry (and report) a flush in a tight loop.
func (s *Store) logLimited(format string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastLimitedLog.Load()
	if now-last < int64(time.Second) || !s.lastLimitedLog.CompareAndSwap(last, now) {
		return
	}
	s.opts.Logger(format, args...)
}

// openHandle opens Pebble on the store's directory. A WAL that Pebble
// reports corrupt (a torn WAL older than the last one, which a fault during a
// WAL rotation can leave) is deleted and the open retried once: the WALs hold
// a suffix of the committed batches, so dropping all of them leaves a
// consistent, older state, and this is a cache.
func (s *Store) openHandle() (*handle, error) {
	h, err := s.tryOpen()
	if err == nil || !pebble.IsCorruptionError(err) {
		return h, err
	}
	s.opts.Logger("disktier: open: %v; deleting the WAL files and retrying", err)
	names, lerr := s.opts.FS.List(s.opts.Dir)
	if lerr != nil {
		return nil, fmt.Errorf("%w: open: %w", ErrStorage, errors.Join(err, lerr))
	}
	for _, n := range names {
		if isWAL(n) {
			if rerr := s.opts.FS.Remove(s.opts.FS.PathJoin(s.opts.Dir, n)); rerr != nil {
				return nil, fmt.Errorf("%w: open: %w", ErrStorage, errors.Join(err, rerr))
			}
		}
	}
	return s.tryOpen()
}

func (s *Store) tryOpen() (*handle, error) {
	h := &handle{}
	db, err := pebble.Open(s.opts.Dir, s.pebbleOptions(h))
	if err != nil {
		return nil, fmt.Errorf("%w: open: %w", ErrStorage, err)
	}
	h.db = db
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// closeHandle closes h unless a panic left Pebble's locks held.
func (s *Store) closeHandle(h *handle) (err error) {
	h.cancel()
	h.bg.Wait()
	if h.wedged.Load() {
		return fmt.Errorf("%w: pebble instance abandoned after a panic", ErrUnavailable)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: pebble panicked on close: %v", ErrStorage, r)
		}
	}()
	return h.db.Close()
}

// commit applies b durably (WAL synced) and closes it. It reports a fault
// that Pebble signalled only through Logger.Fatalf: DB.Apply logs a failed
// WAL write or sync as fatal and then returns nil.
func (s *Store) commit(h *handle, b *pebble.Batch) (err error) {
	return s.commitWith(h, b, pebble.Sync)
}

// commitWith commits b with wo: pebble.NoSync for writes whose loss in a
// crash is harmless (the next synced commit makes them durable anyway).
func (s *Store) commitWith(h *handle, b *pebble.Batch, wo *pebble.WriteOptions) (err error) {
	if h.broken() {
		_ = b.Close()
		return ErrUnavailable
	}
	defer func() {
		if r := recover(); r != nil {
			// commitWrite panics on a WAL writer error with the commit
			// pipeline locked; nothing of this instance is safe to call.
			h.wedged.Store(true)
			s.errors.Add(1)
			s.opts.Logger("disktier: pebble panicked in commit, abandoning the instance: %v", r)
			s.kickMaintainer()
			err = fmt.Errorf("%w: pebble panicked: %v", ErrUnavailable, r)
		}
	}()
	before := h.faults.Load()
	err = b.Commit(wo)
	_ = b.Close()
	if err == nil && h.faults.Load() != before {
		err = errors.New("a storage fault was reported during the commit")
	}
	if err != nil {
		if h.faults.Load() == before {
			s.errors.Add(1) // fault counted itself
		}
		return fmt.Errorf("%w: commit: %w", ErrStorage, err)
	}
	return nil
}
