// Package memtier is the in-memory tier (L1) of tiercache: a tier.Mem that
// keeps small records in bigcache's byte rings and large ones by reference,
// both inside one memory budget.
//
// # Basics
//
// A Cache maps binary keys to tier.Records. Records whose key and record
// total at least SmallRecord (1 KiB) — the embeddings pipelines store, 118 KB
// to 4 MB — live in the large store: Set keeps the record it is given (the
// RESP server hands over the buffer the value was read into, so a SET copies
// the value once, from the socket) and Get returns that same record, which
// the server writes to the socket with writev: a GET of a value in memory
// copies nothing in user space and allocates nothing of its size. Records
// are immutable once stored; one that is overwritten or evicted while a
// client is still being sent it stays alive. Records hold no pointers, so
// the collector does not scan them; it only marks one object per record.
// With Options.Buffers the records' buffers come from a bufpool.Pool: the
// large store takes a share of a record's buffer while it stores it and
// gives it back when it drops it, and the buffer is reused for a later
// value once no one holds it (readers hold records under a bufpool.Guard),
// instead of waiting for the garbage collector.
//
// Smaller records are copied into bigcache's rings (SmallBytes in all,
// MaxBytes/8 by default), where millions of them cost the garbage collector
// nothing; Get returns a copy of those. The rings take memory as they are
// first written, and the large store may use whatever part of MaxBytes they
// do not hold, so the two together never exceed MaxBytes.
//
// A record whose header says it has expired (against Options.Clock, in
// milliseconds) is never returned, and is deleted when Get finds it.
// bigcache's own time-based expiry and clean-up goroutine are disabled:
// records carry their own expiry.
//
// # Eviction
//
// The large store evicts with CLOCK (second chance): entries in write
// order, a Get marks its entry, and the oldest unmarked entry goes first,
// marked ones moving to the back with their mark cleared. A hot embedding
// therefore survives a stream of one-off writes. The rings are split into
// Shards, each a ring buffer of SmallBytes/Shards bytes with its own lock; a
// Set into a full ring evicts its oldest entries (first in, first out). Every
// record evicted for space, expired or not, is passed to the hook installed
// with SetOnEvict, so that the hybrid can write it down to L2.
//
// # Accounting
//
// Stats().Bytes is exact: it is the sum of len(key)+len(record) over the
// live entries, whatever the overwrites, deletes and evictions, and never
// exceeds MaxBytes. The budget itself is enforced on what entries cost in
// memory: a large record counts at its allocation size (the allocator's size
// class up to 32 KiB, whole 8 KiB pages above, plus the request buffer's
// headroom and the entry), the rings at the bytes ever written to them.
// bigcache does not report the entry an overwrite replaces, so each ring
// shard keeps the size of each live entry in a side map, updated under a
// per-shard mutex held around every write to that shard (see the shard type
// for its measured cost). The same mutex orders all writes of one key, to
// whichever store each goes, so a key is in at most one store.
//
// Keys are identified in the rings by a 64-bit maphash with a random seed,
// not by FNV as bigcache does by default, so that nobody can choose keys
// that collide.
//
// # Caveats
//
//   - The rings evict FIFO by write time: a small record read a million
//     times is evicted as early as one never read. Overwritten and deleted
//     ring entries keep their space until the ring reaches them.
//   - Two small keys with the same 64-bit hash (odds about n²/2⁶⁵ for n
//     keys) are one entry to bigcache: a Set of one replaces the other, a
//     Delete of one deletes the other. The large store compares whole keys.
//   - Expired records are only dropped when Get or an eviction reaches them;
//     until then they count in Bytes and Keys.
//   - Keys longer than MaxKeyLen (65517 bytes: bigcache adds its header
//     size to the key length in 16 bits) and records above MaxRecord are
//     refused with tier.ErrTooLarge. Set then deletes whatever was stored
//     under the key, so that L1 never serves a value older than the one
//     refused.
//   - Memory use exceeds MaxBytes by the rings' indices (two maps of
//     ~16–40 bytes per entry), the per-shard copy buffers (as large as the
//     largest small record) and records that were replaced but are still
//     being sent to a client or not yet collected (the daemon's Go memory
//     limit keeps the collector ahead of them). MaxBytes and SmallBytes are
//     rounded down to MiB.
//   - The eviction hook runs inside Set under a lock: it must be quick and
//     must not call into the Cache. bigcache allocates a copy of every
//     record it evicts to pass to it; the large store passes the record
//     itself.
//   - Checksums are not verified (memory is trusted); a record that does not
//     parse is treated as absent and deleted.
package memtier
