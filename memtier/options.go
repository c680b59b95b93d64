package memtier

import (
	"errors"
	"fmt"

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

	// recordsPerShard is how many of the largest accepted records a shard
	// must hold. It bounds two costs at 10% of MaxBytes: the copy buffer
	// bigcache keeps per shard, as large as the largest entry ever set
	// (Shards × MaxRecord in all), and the space a full ring wastes at its
	// end when the next entry does not fit there (less than one entry).
	recordsPerShard = 10

	// entryOverhead is what the ring spends per entry besides key and
	// record: bigcache's 18-byte header (timestamp, hash, key length) and
	// the queue's uvarint length prefix, at most 5 bytes.
	entryOverhead = 18 + 5

	// targetRecord is the record size the default shard count tries to
	// keep accepting: a 4 MiB value (a T5-XXL embedding) with 4 KiB to
	// spare for its key, record header and version tag.
	targetRecord = 4*mib + 4<<10

	// minDefaultShards is the fewest shards a derived default uses, so
	// that writers to different keys rarely wait on one lock, even when
	// that means giving up targetRecord (caches under ~650 MiB).
	minDefaultShards = 8

	// minMaxRecord is the smallest MaxRecord accepted: below it L1 would
	// hold little more than record headers.
	minMaxRecord = 1 << 10
)

// ErrInvalidOptions is wrapped by every error of Options.Validate.
var ErrInvalidOptions = errors.New("memtier: invalid options")

// Options configure a Cache. The zero value is valid: EnsureDefaults fills
// in every field left at zero.
//
// Shards and MaxRecord are derived from MaxBytes when both are 0. The shard
// count is a power of two, at most MaxShards, and each shard (MaxBytes /
// Shards) must hold 10 records of MaxRecord bytes. The default takes the most
// shards that still accept a 4 MiB value with its key and header, but never
// fewer than 8; MaxRecord is then the largest record a shard holds 10 of:
//
//	MaxBytes  Shards  shard    MaxRecord
//	1 MiB          8  128 KiB  13084     (~13 KB)
//	32 MiB         8    4 MiB  419407    (~410 KB: no 4 MiB value fits at all)
//	256 MiB        8   32 MiB  3355420   (~3.2 MiB: 4 shards would take 4 MiB values)
//	512 MiB        8   64 MiB  6710863   (~6.4 MiB)
//	1 GiB         16   64 MiB  6710863   (~6.4 MiB; 32 shards would give 3.2 MiB)
//	16 GiB       256   64 MiB  6710863   (~6.4 MiB)
//	1 TiB       1024    1 GiB  107374159 (~102 MiB)
type Options struct {
	// MaxBytes bounds the key and record bytes L1 holds (the daemon's
	// --mem-max). It is rounded down to a whole MiB, because bigcache sizes
	// its rings in MiB. Default DefaultMaxBytes (1 GiB); at least
	// MinMaxBytes (1 MiB), at most MaxMaxBytes (1 TiB).
	//
	// The process uses more: the indices (two maps of ~16–40 bytes per
	// entry) and the per-shard copy buffers (up to MaxBytes/10).
	MaxBytes int64

	// MaxRecord is the largest len(key)+len(record) Set accepts; larger
	// records are refused with tier.ErrTooLarge and stay in L2 only.
	// Default: the largest record each shard holds 10 of (see the table
	// above). When it is set and Shards is 0, Shards is the most shards
	// that each hold 10 such records.
	MaxRecord int

	// Shards is the number of bigcache shards, a power of two up to
	// MaxShards. Default: derived from MaxBytes and MaxRecord (see above).
	Shards int

	// Clock tells the time records expire against. Default
	// tier.SystemClock{}.
	Clock tier.Clock
}

// EnsureDefaults fills in the zero fields of o with their defaults and
// returns o. It leaves invalid values for Validate to report.
func (o *Options) EnsureDefaults() *Options {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Clock == nil {
		o.Clock = tier.SystemClock{}
	}
	if o.MaxBytes < MinMaxBytes || o.MaxBytes > MaxMaxBytes || o.MaxRecord < 0 || o.Shards < 0 {
		return o
	}
	switch {
	case o.Shards == 0 && o.MaxRecord == 0:
		o.Shards = max(shardsFor(o.MaxBytes, targetRecord), minDefaultShards, minShards(o.MaxBytes))
		o.MaxRecord = int(maxRecordFor(shardBytes(o.MaxBytes, o.Shards)))
	case o.Shards == 0:
		// 0 when no shard count fits; Validate reports it.
		o.Shards = shardsFor(o.MaxBytes, o.MaxRecord)
	case o.MaxRecord == 0 && isPowerOfTwo(o.Shards) && o.Shards <= MaxShards:
		o.MaxRecord = int(maxRecordFor(shardBytes(o.MaxBytes, o.Shards)))
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

	okShards := isPowerOfTwo(o.Shards) && o.Shards <= MaxShards
	switch {
	case o.Shards == 0 && okBytes && o.MaxRecord > 0:
		add("MaxRecord %d is too large for MaxBytes %d: even one shard does not hold %d such records",
			o.MaxRecord, o.MaxBytes, recordsPerShard)
	case o.Shards == 0:
		// Left underived because of a problem reported here.
	case !okShards:
		add("Shards %d is not a power of two in [1, %d]", o.Shards, MaxShards)
	}

	switch {
	case o.MaxRecord < 0:
		add("MaxRecord %d is negative", o.MaxRecord)
	case o.MaxRecord == 0 && okBytes && okShards:
		add("MaxRecord is 0 (call EnsureDefaults)")
	case o.MaxRecord > 0 && o.MaxRecord < minMaxRecord:
		add("MaxRecord %d is below %d (fewer shards give larger records)", o.MaxRecord, minMaxRecord)
	}

	if okBytes && okShards {
		sb := shardBytes(o.MaxBytes, o.Shards)
		if sb > maxShardBytes {
			add("shard size %d (MaxBytes/Shards) exceeds %d: use more shards", sb, maxShardBytes)
		}
		if limit := maxRecordFor(sb); int64(o.MaxRecord) > limit {
			add("MaxRecord %d exceeds %d: a shard of %d bytes must hold %d such records",
				o.MaxRecord, limit, sb, recordsPerShard)
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

// shardsFor returns the most shards (a power of two up to MaxShards) that
// each hold recordsPerShard records of size bytes, or 0 if none does.
func shardsFor(maxBytes int64, size int) int {
	for s := MaxShards; s >= 1; s /= 2 {
		if maxRecordFor(shardBytes(maxBytes, s)) >= int64(size) {
			return s
		}
	}
	return 0
}

// minShards returns the fewest shards that keep each within maxShardBytes.
func minShards(maxBytes int64) int {
	s := 1
	for shardBytes(maxBytes, s) > maxShardBytes && s < MaxShards {
		s *= 2
	}
	return s
}

func isPowerOfTwo(n int) bool { return n > 0 && n&(n-1) == 0 }
