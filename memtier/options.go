package memtier

import (
	"errors"
	"fmt"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/policy"
	"github.com/tiercache/tiercache/tier"
)

// Size limits of Options.
const (
	// DefaultMaxBytes is the capacity used when Options.MaxBytes is 0.
	DefaultMaxBytes = 1 << 30
	// MinMaxBytes is the smallest capacity accepted.
	MinMaxBytes = 1 << 20
	// MaxMaxBytes is the largest capacity accepted: MaxShards shards of
	// 1 GiB each.
	MaxMaxBytes = MaxShards * maxShardBytes
	// MaxShards is the largest number of shards accepted.
	MaxShards = 1024
	// MaxKeyLen is the longest key L1 stores. bigcache keeps key lengths
	// in 16 bits, and computes 18 (its header) + key length in 16 bits too
	// when it reads an entry back: a key of 65518 to 65535 bytes wraps that
	// sum and panics in Get, a longer one is truncated when stored.
	MaxKeyLen = 1<<16 - 1 - 18
)

const (
	mib = 1 << 20

	// maxShardBytes bounds one shard's ring buffer. bigcache indexes the
	// ring with uint32, so a shard of 4 GiB or more would wrap indices and
	// serve the wrong entries; 1 GiB keeps well clear of that.
	maxShardBytes = 1 << 30

	// recordsPerShard is how many of the largest small records a ring
	// shard must hold, so that the space a full ring wastes at its end
	// (less than one entry) stays small.
	recordsPerShard = 10

	// entryOverhead is what the ring spends per entry besides key and
	// record: bigcache's 18-byte header (timestamp, hash, key length) and
	// the queue's uvarint length prefix, at most 5 bytes.
	entryOverhead = 18 + 5

	// DefaultSmallRecord is the default SmallRecord.
	DefaultSmallRecord = 1 << 10

	// minSmallRecord and maxSmallRecord bound SmallRecord: a record header
	// alone is 32 bytes, and rings are for small records.
	minSmallRecord = 64
	maxSmallRecord = 64 << 10

	// maxDefaultShards is the most ring shards a derived default uses;
	// each default shard is at least 1 MiB.
	maxDefaultShards = 64

	// minMaxRecord is the smallest MaxRecord accepted: below it L1 would
	// hold little more than record headers.
	minMaxRecord = 1 << 10
)

// ErrInvalidOptions is wrapped by every error of Options.Validate.
var ErrInvalidOptions = errors.New("memtier: invalid options")

// Options configure a Cache. The zero value is valid: EnsureDefaults fills
// in every field left at zero.
//
// L1 keeps records in two stores that share MaxBytes. Records whose key and
// record total less than SmallRecord (1 KiB) are copied into bigcache's
// rings, SmallBytes in all, where millions of them cost the garbage
// collector nothing. Larger ones, the embeddings pipelines store, are kept
// by reference (see Cache.Set): no copy in, none out. The rings take memory
// as they are first written, and the large store may use whatever they do
// not hold yet, so MaxBytes bounds both together. The derived defaults:
//
//	MaxBytes  SmallBytes  Shards  MaxRecord
//	1 MiB          1 MiB       1  1 KiB
//	32 MiB         4 MiB       4  2.8 MiB
//	256 MiB       32 MiB      32  22.4 MiB
//	1 GiB        128 MiB      64  89.6 MiB
//	16 GiB         2 GiB      64  1.4 GiB
type Options struct {
	// MaxBytes bounds the memory L1's records take, both stores together
	// (the daemon's --mem-max). It is rounded down to a whole MiB, because
	// bigcache sizes its rings in MiB. Default DefaultMaxBytes (1 GiB); at
	// least MinMaxBytes (1 MiB), at most MaxMaxBytes (1 TiB). Large records
	// count at their allocation size (the allocator's size class or whole
	// pages, plus their entry); Stats().Bytes reports key and record bytes.
	//
	// The process uses more: the rings' indices (two maps of ~16–40 bytes
	// per entry) and the per-shard copy buffers (as large as the largest
	// small record).
	MaxBytes int64

	// SmallRecord is the size (len(key)+len(record)) from which records
	// are kept by reference instead of in the rings. Default
	// DefaultSmallRecord (1 KiB); between 64 bytes and 64 KiB.
	SmallRecord int

	// SmallBytes is the rings' capacity, a part of MaxBytes. Default
	// MaxBytes/8, rounded down to a MiB, at least 1 MiB.
	SmallBytes int64

	// MaxRecord is the largest len(key)+len(record) Set accepts; larger
	// records are refused with tier.ErrTooLarge and stay in L2 only.
	// Default: a tenth of what the large store has beside the rings
	// ((MaxBytes-SmallBytes)/10), at least 1 KiB.
	MaxRecord int

	// Shards is the number of ring shards, a power of two up to
	// MaxShards. Default: the most, up to 64, that leave each at least
	// 1 MiB.
	Shards int

	// Clock tells the time records expire against. Default
	// tier.SystemClock{}.
	Clock tier.Clock

	// Buffers, if not nil, is the pool the records given to Set may have
	// been read into: the large store takes a share of such a record's
	// buffer while it stores it and gives it back when it drops it, so that
	// the buffer is reused once nothing holds it (see package bufpool).
	// Default nil: records are left to the garbage collector.
	Buffers *bufpool.Pool

	// Eviction is the large store's eviction policy (the rings are FIFO
	// whatever it is). Default policy.Default (S3FIFO).
	Eviction policy.Eviction

	// GhostBytes sizes S3FIFO's ghost (policy.NewGhost), which remembers
	// the keys L1 drops unread: policy.GhostSpan times this many bytes of
	// entries. The daemon passes L1's and L2's capacities together.
	// Default MaxBytes.
	GhostBytes int64
}

// GhostMemory is what the ghost of Options with GhostBytes takes in
// memory at most, beside MaxBytes (0 for policies without a ghost).
func (o *Options) GhostMemory() int64 {
	if o.Eviction != policy.S3FIFO {
		return 0
	}
	gb := o.GhostBytes
	if gb == 0 {
		gb = o.MaxBytes
	}
	return int64(policy.GhostEntries(gb)) * policy.GhostEntryBytes
}

// EnsureDefaults fills in the zero fields of o with their defaults and
// returns o. It leaves invalid values for Validate to report.
func (o *Options) EnsureDefaults() *Options {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.GhostBytes == 0 {
		o.GhostBytes = o.MaxBytes
	}
	if o.Clock == nil {
		o.Clock = tier.SystemClock{}
	}
	if o.SmallRecord == 0 {
		o.SmallRecord = DefaultSmallRecord
	}
	if o.MaxBytes < MinMaxBytes || o.MaxBytes > MaxMaxBytes {
		return o
	}
	if o.SmallBytes == 0 {
		o.SmallBytes = min(max(capacity(o.MaxBytes/8), mib), capacity(o.MaxBytes))
	}
	if o.MaxRecord == 0 {
		o.MaxRecord = int(max((capacity(o.MaxBytes)-capacity(o.SmallBytes))/10, minMaxRecord))
	}
	if o.Shards == 0 && o.SmallBytes >= mib {
		o.Shards = 1
		for o.Shards < maxDefaultShards && capacity(o.SmallBytes)/int64(2*o.Shards) >= mib {
			o.Shards *= 2
		}
		for shardBytes(o.SmallBytes, o.Shards) > maxShardBytes && o.Shards < MaxShards {
			o.Shards *= 2
		}
	}
	return o
}

// Validate reports every problem of o at once, each wrapping
// ErrInvalidOptions. Call EnsureDefaults first: zero fields are invalid.
func (o *Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}

	okBytes := o.MaxBytes >= MinMaxBytes && o.MaxBytes <= MaxMaxBytes
	if !okBytes {
		add("MaxBytes %d is outside [%d, %d]", o.MaxBytes, int64(MinMaxBytes), int64(MaxMaxBytes))
	}
	okSmall := o.SmallBytes >= mib && (!okBytes || o.SmallBytes <= o.MaxBytes)
	if !okSmall {
		add("SmallBytes %d is outside [1 MiB, MaxBytes]", o.SmallBytes)
	}
	if o.SmallRecord < minSmallRecord || o.SmallRecord > maxSmallRecord {
		add("SmallRecord %d is outside [%d, %d]", o.SmallRecord, minSmallRecord, maxSmallRecord)
	}

	okShards := isPowerOfTwo(o.Shards) && o.Shards <= MaxShards
	if !okShards {
		add("Shards %d is not a power of two in [1, %d]", o.Shards, MaxShards)
	}

	switch {
	case o.MaxRecord < minMaxRecord:
		add("MaxRecord %d is below %d", o.MaxRecord, minMaxRecord)
	case okBytes && int64(o.MaxRecord) > capacity(o.MaxBytes):
		add("MaxRecord %d exceeds MaxBytes %d", o.MaxRecord, capacity(o.MaxBytes))
	}

	if okSmall && okShards {
		sb := shardBytes(o.SmallBytes, o.Shards)
		if sb > maxShardBytes {
			add("ring shard size %d (SmallBytes/Shards) exceeds %d: use more shards", sb, maxShardBytes)
		}
		if limit := maxRecordFor(sb); int64(o.SmallRecord) > limit {
			add("SmallRecord %d exceeds %d: a ring shard of %d bytes must hold %d such records",
				o.SmallRecord, limit, sb, recordsPerShard)
		}
	}

	if o.Clock == nil {
		add("Clock is nil")
	}
	return errors.Join(errs...)
}

// capacity is MaxBytes as bigcache enforces it: whole MiB.
func capacity(maxBytes int64) int64 { return maxBytes / mib * mib }

// shardBytes is the size of one shard's ring, computed the way bigcache does.
func shardBytes(maxBytes int64, shards int) int64 { return capacity(maxBytes) / int64(shards) }

// maxRecordFor returns the largest key+record of which a shard of sb bytes
// holds recordsPerShard (the ring loses its first byte to a sentinel index).
func maxRecordFor(sb int64) int64 { return (sb-1)/recordsPerShard - entryOverhead }

func isPowerOfTwo(n int) bool { return n > 0 && n&(n-1) == 0 }
