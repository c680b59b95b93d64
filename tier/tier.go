package tier

import (
	"sync/atomic"
	"time"
)

// Tier is one level of the cache: a map from keys to records. L1 (memtier),
// L2 (disktier) and their composition (Hybrid) implement it, and the same
// conformance suite (tier/tiertest) runs against each.
//
// Keys and records are binary-safe. Records are immutable once stored:
// Get may return the stored record itself, shared with other readers, so
// the caller must not modify it; Set may keep r, so the caller must not
// modify it afterwards. An expired record is never returned.
type Tier interface {
	Get(key []byte) (Record, error)
	Set(key []byte, r Record) error
	Delete(key []byte) error
}

// Clock tells the time; tests inject a manual clock so TTLs need no sleeping.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that only moves when told to. Its zero value starts
// at the Unix epoch; it is safe for concurrent use.
type ManualClock struct{ ns atomic.Int64 }

// NewManualClock returns a ManualClock set to t.
func NewManualClock(t time.Time) *ManualClock {
	c := &ManualClock{}
	c.ns.Store(t.UnixNano())
	return c
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Stats are the counters and gauges of one tier, as reported in INFO's
// "# Tiers" section.
type Stats struct {
	Hits      uint64 // lookups that found a live record
	Misses    uint64 // lookups that did not
	Evictions uint64 // records removed to make space
	Bytes     int64  // bytes in use (L1: record bytes; L2: on disk, WAL and all)
	MaxBytes  int64  // the configured bound
	Keys      int64  // records stored
	Expiring  int64  // records stored with an expiry (L2; INFO's expires=)
	Corrupt   uint64 // records that failed their checksum (L2)
	Errors    uint64 // I/O errors seen (L2)
	// Admitted and Rejected: in L1, the entries its policy admitted to its
	// main queue and those it let go unread (S3FIFO's one-hit wonders); in
	// the Hybrid's L2 stats, the records L1 evicted that were written down
	// (demotions) and those not written because L1's policy had rejected
	// them and L2 was full.
	Admitted, Rejected uint64
	// Written is the number of bytes the tier wrote to storage since it
	// opened (L2: to the files of its directory, WAL, sstables, blob files
	// and MANIFEST, flushes and compactions included; 0 for L1).
	Written uint64
	// SecondChances is the number of entries the tier rewrote instead of
	// evicting them, having been read since written (L2: when their
	// generation was dropped; 0 for L1).
	SecondChances uint64
}

// Op is one write in a batch for the disk tier: a set when Record is not
// nil, a delete otherwise.
type Op struct {
	Key    []byte
	Record Record
}
