package tier

// Disk is what Hybrid needs of its L2 (implemented by disktier.Store).
type Disk interface {
	Tier
	// Write applies ops in order, atomically, and returns once they are
	// durable (synced). A later op on the same key wins.
	Write(ops []Op) error
	// DropRange removes every key k with start <= k < end. It is used to drop
	// a model's stale epochs (ModelRange) and must cost O(1) writes, not a
	// scan; the space is reclaimed in the background.
	DropRange(start, end []byte) error
	// Meta returns the value PutMeta stored under name, or ErrNotFound.
	Meta(name string) ([]byte, error)
	// PutMeta durably stores value under name, in a namespace apart from
	// the keys of Get, Set, Write and DropRange.
	PutMeta(name string, value []byte) error
	// Limits returns the longest key and the largest record Write accepts;
	// the Hybrid refuses larger ones up front rather than queue a write L2
	// would reject.
	Limits() (maxKey, maxRecord int)
	// Stats returns the tier's counters.
	Stats() Stats
	// Close flushes and closes the store. It is idempotent.
	Close() error
}

// Mem is what Hybrid needs of its L1 (implemented by memtier.Cache).
type Mem interface {
	Tier
	// MaxRecord is the largest record (with its key) L1 accepts; larger
	// ones stay in L2 only.
	MaxRecord() int
	// Range calls fn for every live record until fn returns false. fn may
	// keep the records but must not modify them.
	Range(fn func(key []byte, r Record) bool)
	// SetOnEvict installs fn, called for every record L1 evicts to make
	// space, with admitted false for a record L1's policy let go unread
	// (a one-hit wonder, not worth writing to a full L2). fn runs under
	// L1's internal lock: it must not block nor call into L1. fn may keep
	// r but must not modify it.
	SetOnEvict(fn func(key string, r Record, admitted bool))
	// Reset removes every entry.
	Reset() error
	// Stats returns the tier's counters.
	Stats() Stats
	// Close releases the cache. It is idempotent.
	Close() error
}

// RecentReader is what Hybrid needs of an L2 to warm L1 after a restart
// (implemented by disktier.Store); an L2 without it is not warmed from.
type RecentReader interface {
	// ReadRecent calls fn with the L2 key and record of live entries,
	// the most recently written or read first as far as the tier tracks
	// it, starting at cursor (nil: the most recent), until about maxBytes
	// of keys and records were passed, and returns the cursor to
	// continue from: nil once every entry was passed. It skips expired
	// entries, records longer than maxRecord, and, without reading their
	// record, the keys for which skip (if not nil) returns true. It is
	// not a lookup: it counts no hit nor miss. skip must be quick and must
	// not call into the tier; fn may keep key and r.
	ReadRecent(cursor []byte, maxBytes int64, maxRecord int, skip func(key []byte) bool, fn func(key []byte, r Record)) (next []byte, err error)
}

// FullReporter is an L2 that can tell whether it is full: whether what
// it takes now pushes out what it holds (disktier.Store is one). Without
// it, the Hybrid deems L2 full once it has evicted, or its directory holds
// three quarters of its bound.
type FullReporter interface {
	Full() bool
}

// ProvenSetter is an L1 whose eviction policy can be told that a record's
// key was asked for before (memtier.Cache is one): the Hybrid promotes L2
// hits with SetProven, where other L1s get Set.
type ProvenSetter interface {
	SetProven(key []byte, r Record) error
}

// FitChecker is an L1 that can tell whether it would store a record
// without evicting another (memtier.Cache is one). The warm-up stops at
// the first entry that does not fit; without it, at L1's first eviction.
type FitChecker interface {
	Fits(key []byte, r Record) bool
}

// ContainsChecker is an L1 that can tell whether it holds a key without
// counting a lookup or marking the entry read (memtier.Cache is one; it
// may answer true for a key it no longer holds). Without it, the warm-up
// asks with Get.
type ContainsChecker interface {
	Contains(key []byte) bool
}
