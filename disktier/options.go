package disktier

import (
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tiercache/tiercache/tier"
)

// Size units, for options and their documentation.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

// Limits checked by Validate and by the write path.
const (
	// MinMaxBytes is the smallest MaxBytes accepted: below it Pebble's own
	// files (WAL, MANIFEST, a memtable flush in progress) no longer fit in
	// the 10% slack the bound allows.
	MinMaxBytes = 16 * MiB
	// MaxKeyLen is the longest key the store accepts.
	MaxKeyLen = 64 * KiB
	// MaxInlineMax is the largest InlineMax accepted: pointer records are
	// read on every lookup and rewritten on every eviction check, so they
	// must stay small.
	MaxInlineMax = 64 * KiB
	// MinGenerations and MaxGenerations bound Options.Generations.
	MinGenerations = 2
	MaxGenerations = 1024
)

// Options configures a Store. The zero value of every field but Dir selects
// its documented default; EnsureDefaults fills them in and Validate reports
// every problem at once. Open calls both on a copy.
type Options struct {
	// Dir is the directory holding the store; it is created if needed.
	// Required.
	Dir string

	// FS is the file system the store lives on. Default vfs.Default; tests
	// use vfs.NewMem() or a vfs/errorfs wrapper to inject faults.
	FS vfs.FS

	// MaxBytes bounds the size of Dir on disk, Pebble's WAL, MANIFEST and
	// in-flight compaction outputs included: the store evicts whole
	// generations, and as a last resort makes writes wait, so that the
	// directory never exceeds 1.1 × MaxBytes. Default 10 GiB; at least
	// MinMaxBytes. On the default FS, Open lowers it to 90% of the size of
	// the filesystem holding Dir when it is larger (and logs it): a bound
	// the filesystem cannot hold would let the store fill it, after which
	// Pebble cannot even flush the deletions that would free space.
	MaxBytes int64

	// Clock tells the time for TTLs. Default tier.SystemClock{}.
	Clock tier.Clock

	// CacheSize is the size of Pebble's block cache, in bytes. Default
	// min(256 MiB, MaxBytes/8): values are read once per lookup and copied
	// out, so a larger cache mostly duplicates the OS page cache.
	CacheSize int64

	// MemTableSize is the size of one Pebble memtable. A write batch larger
	// than half of it bypasses the memtable (Pebble queues it as a flushable
	// batch and flushes it on its own), so it is sized for multi-MB values.
	// The WAL keeps up to about two memtables, and a flush's output is
	// written while its WAL is still there: the budget leaves one memtable
	// of MaxBytes free for it. Default MaxBytes/32 clamped to [1 MiB,
	// 64 MiB] (MaxBytes/16 before: a live share of MaxBytes 3 points
	// lower); at most MaxBytes/16.
	MemTableSize int64

	// InlineMax is the largest record stored inline in its pointer record
	// (one Pebble lookup per hit instead of two). A negative value stores
	// every record apart. Default 128 bytes (a value of up to about 90
	// bytes); at most MaxInlineMax.
	//
	// Every write reads the pointers it replaces (for the key counts), so
	// the pointers should stay in Pebble's block cache: inlined records make
	// them as large as the records. Measured with 2,000,000 SETs of 1 KB to
	// random keys (redis-benchmark -c 16 -P 16, --mem-max 256MiB,
	// write-through), lowering the default from 4 KiB to 128 bytes took
	// the daemon from 29,900 to 45,500 SETs/s, while L2-served GETs of those
	// values stayed within the run-to-run noise (pipelined 51,400 → 46,600
	// and 55,600 → 54,700/s; one client 10,100 → 11,300 and 11,100 →
	// 11,900/s): the second lookup is served from the cached pointer.
	InlineMax int

	// Logger receives the store's and Pebble's log lines. Pebble's fatal
	// messages are routed here too, and never end the process: the store
	// treats them as a storage fault and recovers (see "Storage faults" in
	// the package documentation). Default: discard.
	Logger func(format string, args ...any)

	// Generations is the number of live generations the store aims for. The
	// store evicts one generation, about 1/Generations of its data, at a
	// time, so that on average half a generation of the budget is unused;
	// more generations mean finer eviction, more range tombstones and a
	// flush per dropped generation. Default 32 (16 before: 1.5 points of
	// MaxBytes more unused); within [MinGenerations, MaxGenerations].
	Generations int

	// WriteTimeout bounds how long a write waits for eviction to make room
	// within MaxBytes (back-pressure) before it fails with ErrNoSpace.
	// Default 30s.
	WriteTimeout time.Duration
}

// EnsureDefaults fills in the default of every unset field and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 10 * GiB
	}
	if o.Clock == nil {
		o.Clock = tier.SystemClock{}
	}
	if o.CacheSize == 0 {
		o.CacheSize = min(256*MiB, o.MaxBytes/8)
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = max(1*MiB, min(64*MiB, o.MaxBytes/32))
	}
	if o.InlineMax == 0 {
		o.InlineMax = 128
	}
	if o.Logger == nil {
		o.Logger = func(string, ...any) {}
	}
	if o.Generations == 0 {
		o.Generations = 32
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 30 * time.Second
	}
	return o
}

// Validate reports every problem with o at once, in one error wrapping
// ErrInvalidOptions. It expects EnsureDefaults to have run.
func (o *Options) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if o.Dir == "" {
		add("Dir is required")
	}
	if o.FS == nil {
		add("FS is nil")
	}
	if o.Clock == nil {
		add("Clock is nil")
	}
	if o.Logger == nil {
		add("Logger is nil")
	}
	if o.MaxBytes < MinMaxBytes {
		add("MaxBytes %d is below the minimum %d", o.MaxBytes, MinMaxBytes)
	}
	if o.CacheSize < 0 {
		add("CacheSize %d is negative", o.CacheSize)
	}
	if o.MemTableSize < 1*MiB {
		add("MemTableSize %d is below 1 MiB", o.MemTableSize)
	}
	if o.MaxBytes >= MinMaxBytes && o.MemTableSize > o.MaxBytes/16 {
		add("MemTableSize %d exceeds MaxBytes/16 (%d): the WAL would not fit in the bound", o.MemTableSize, o.MaxBytes/16)
	}
	if o.MemTableSize >= 4*GiB {
		add("MemTableSize %d must be below 4 GiB (a Pebble limit)", o.MemTableSize)
	}
	if o.InlineMax > MaxInlineMax {
		add("InlineMax %d exceeds %d", o.InlineMax, MaxInlineMax)
	}
	if o.Generations < MinGenerations || o.Generations > MaxGenerations {
		add("Generations %d is outside [%d, %d]", o.Generations, MinGenerations, MaxGenerations)
	}
	if o.WriteTimeout < 0 {
		add("WriteTimeout %v is negative", o.WriteTimeout)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(problems, "; "))
}
