// Package memtier is the in-memory tier (L1) of tiercache: a tier.Mem built
// on bigcache, which keeps entries in large byte rings so that millions of
// them cost the garbage collector nothing.
//
// # Basics
//
// A Cache maps binary keys to tier.Records. Get returns a copy of the record
// and Set copies it in; a record whose header says it has expired (against
// Options.Clock, in milliseconds) is never returned, and is deleted when Get
// finds it. bigcache's own time-based expiry and clean-up goroutine are
// disabled: records carry their own expiry.
//
// The cache is split into Shards, each a ring buffer of MaxBytes/Shards
// bytes with its own lock. A Set into a full shard evicts the shard's oldest
// entries (first in, first out) until the new one fits, and passes each
// evicted record, expired or not, to the hook installed with SetOnEvict, so
// that the hybrid can write it down to L2. The shard count is derived so that
// a shard holds 10 of the largest records accepted (MaxRecord); see Options
// for the table.
//
// Stats().Bytes is exact: it is the sum of len(key)+len(record) over the live
// entries, whatever the overwrites, deletes and evictions, and never exceeds
// MaxBytes (it cannot: the rings hold at most MaxBytes). bigcache does not
// report the entry an overwrite replaces, so each shard keeps the size of
// each live entry in a side map, updated under a per-shard mutex held around
// every write to that shard (see the shard type for its measured cost).
//
// Keys are identified by a 64-bit maphash with a random seed, not by FNV as
// bigcache does by default, so that nobody can choose keys that collide.
//
// # Caveats
//
//   - Eviction is FIFO by write time: a record read a million times is
//     evicted as early as one never read. Overwritten and deleted entries keep
//     their space in the ring until it reaches them, so a cache can evict
//     while Bytes is well below MaxBytes.
//   - Two keys with the same 64-bit hash (odds about n²/2⁶⁵ for n keys) are
//     one entry to bigcache: a Set of one replaces the other, a Delete of
//     one deletes the other.
//   - Expired records are only dropped when Get or an eviction reaches them;
//     until then they count in Bytes and Keys.
//   - Keys longer than MaxKeyLen (65517 bytes: bigcache adds its header
//     size to the key length in 16 bits) and records above MaxRecord are
//     refused with tier.ErrTooLarge. Set then deletes whatever was stored
//     under the key, so that L1 never serves a value older than the one
//     refused.
//   - Memory use exceeds MaxBytes by the per-shard copy buffers (each as
//     large as the largest entry set in its shard, so at most MaxBytes/10 in
//     all) and by the two hash maps (bigcache's index and the side map of
//     sizes, ~16–40 bytes per entry each). MaxBytes is rounded down to MiB.
//   - The eviction hook runs inside Set under a shard lock: it must be quick
//     and must not call into the Cache. bigcache allocates a copy of every
//     evicted record to pass to it, so evictions produce garbage of their
//     size.
//   - Checksums are not verified (memory is trusted); a record that does not
//     parse is treated as absent and deleted.
package memtier
