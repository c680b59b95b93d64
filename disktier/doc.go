// Package disktier is the disk tier (L2) of the cache: a Store keeps
// records in Pebble, bounded in size, and implements tier.Disk.
//
// # Basics
//
// Every entry has a pointer record under p|key (kind, generation, expiry,
// size) and, unless it is small enough to live inline in the pointer
// (Options.InlineMax), its record under d|gen|key. q|gen|key indexes the
// keys written in each generation; m|... holds the meta: the live
// generations with their byte counts, the key count, the count of entries
// with an expiry (Stats().Expiring) and PutMeta values. Open reads only the
// meta keys, so it takes milliseconds whatever the amount of data.
//
// Writes go through one writer mutex and one Pebble batch each, committed
// with a WAL sync; the key count, the count of entries with an expiry and
// the current generation's byte count are updated in the same batch, so they
// are exact across restarts. Each write reads the pointer it replaces or
// deletes, whose header holds the old expiry (a batch of writes reads them
// in key order through one iterator); records are kept apart from their
// pointers unless tiny (Options.InlineMax), so that the pointers these
// reads visit stay in Pebble's block cache; eviction, the removal of
// expired or corrupt entries and DropRange's background count adjust both
// counts likewise. A lookup reads the pointer, then the record, and
// verifies the record's checksum: a corrupt one (bad checksum, a Pebble
// block checksum error, a malformed pointer) is deleted, counted in
// Stats().Corrupt and reported as a miss.
//
// Eviction is by generation. Writes go to the current generation, which is
// rolled when it holds 1/Generations of the byte budget. When the live
// generations exceed the budget (MaxBytes less one memtable, for a flush's
// output written while its WAL is still there, and one generation, for a
// dropped generation whose files Pebble has not deleted yet), the
// background maintainer drops the oldest: it unlinks the pointers that still name it (found through its q
// index, so the cost is per key of that generation, not per key stored),
// then range-deletes its d and q spans. Pebble's output files are cut at
// every generation boundary (Options.Experimental.SpanPolicyFunc), so a
// dropped generation's files are deleted whole, without being read. The
// maintainer also measures the directory (Metrics().DiskSpaceUsage()) and
// drops one more generation when it stays above MaxBytes; every write
// checks the measure plus what was written since (twice what it writes for
// a batch larger than half a memtable, which Pebble flushes on its own)
// against MaxBytes plus a fortieth, and waits for the maintainer
// (back-pressure, at most Options.WriteTimeout), which evicts until the
// waiting write fits. The directory stays below 1.1 × MaxBytes, WAL
// included.
//
// # Capacity
//
// Of MaxBytes, the live entries take all but one memtable (MaxBytes/32 by
// default, at most 64 MiB), one generation of headroom and, on average,
// half a generation not yet filled again since the last drop: about 94% of
// MaxBytes with the defaults (32 generations), 91% just after a drop.
// Overwritten and deleted entries count until their generation is dropped
// (see Caveats), so a load that overwrites or deletes much keeps fewer.
// Measured with a cache-aside load of 118 KiB values (a lookup, a write on
// a miss; uniform keys, four times MaxBytes written; TestLiveShare): the
// values were 0.91 of MaxBytes at the end (505 of 120,832 bytes, at 64
// MiB), peak directory 1.04 ×
// MaxBytes (on disk, 0.93 at the end and 0.91 at the lowest over the last
// 40% of the load; peak 1.02). The sizing before (room for two memtables of
// MaxBytes/16 and another MaxBytes/16, 16 generations) kept 0.76 on the
// same load (0.78–0.79 of --disk-max in the daemon's budget workload): Pebble's
// own files were not the cause (at the end: 0.2 MiB of sstables, no WAL
// beyond the memtable's, no obsolete blob file waiting for a rewrite, since
// whole generations are deleted), the reservation (19% of MaxBytes) and the
// eviction granularity (1.5% on average, 3% just after a drop) were.
// A second chance given at read time (as before: a hit in the older half
// of the generations rewrote its entry at once) left the old copy taking
// room until its generation dropped: 0.88 of MaxBytes with a Zipf load
// reading the store directly; given at drop time, the old copy goes with
// its generation.
//
// Every byte the store writes to its directory (WAL, sstables, blob files,
// MANIFEST; a flush's and a compaction's output) is counted in
// Stats().Written, below Pebble (Pebble's own metrics miss blob file
// rewrites and count a flush's blob bytes twice). A value is written
// twice: to the WAL, and to a blob file when its memtable is flushed
// (2.0× the records' bytes on the load above, with 118 KiB values).
//
// Second chance (CLOCK over generations): a hit marks its entry, in memory
// by 64-bit key hash with the generation its pointer names (at most
// RefEntries(MaxBytes) marks, RefEntryBytes each, counted in
// MemoryBound); a write of the key clears the mark. Dropping a generation
// rewrites into the current one, in batches, the entries still in it that
// were marked, and unlinks the rest; its marks are then forgotten. A read
// costs no write, a rewrite happens only when its entry would otherwise be
// evicted, and the old copy leaves with its generation. Marks are not
// persisted: after a restart the first drop of each old generation gives
// no second chance.
//
// ReadRecent reads the entries back newest generation first (in key order
// within one), through the q indices, for the Hybrid to warm L1 after a
// restart: the newest generations hold what was written last and what a
// second chance moved forward. It uses no record besides those the store
// keeps anyway, so it works after a crash as after a clean stop, on
// directories written before it existed; it counts no lookup and marks
// nothing, reads the pointers and records of a generation in key
// order through one iterator each, does not read the records of keys the
// caller says it holds, and each call is bounded (maxBytes, 1024 index
// entries) and resumes from a cursor, so that no iterator is held between
// calls.
//
// DropRange writes one range delete per namespace and live generation and
// returns; a background count over a snapshot taken just before the delete
// fixes the key and expiring counts, and a background compaction of the dropped spans
// returns the space. TTLs are enforced on read with Options.Clock; expired
// entries are deleted when read, by a rate-limited background sweep over
// the pointers, and with their generation.
//
// # Storage faults
//
// Pebble treats a failed WAL write, a failed MANIFEST write and a few other
// errors as fatal: it calls Logger.Fatalf, whose default ends the process,
// and some paths panic (WAL rotation, where the panic then fails to unlock a
// mutex, a fatal error no recover can catch). The store never lets it: WAL
// I/O errors are caught below Pebble (see walGuardFS) and Fatalf is routed
// to the store. Either marks the Pebble instance faulty: the write in flight
// fails with ErrStorage, later writes with ErrUnavailable, Errors is
// counted, and the instance keeps serving reads. The maintainer probes the
// directory with a synced write, with back-off; once it succeeds it closes
// the faulty instance and reopens Pebble, which replays the WAL up to the
// last acknowledged write. Background errors (a failed flush or compaction,
// which Pebble retries) are counted and logged.
//
// # Caveats
//
//   - The bytes of an overwritten or deleted entry stay on disk until its
//     generation is dropped; so do records apart of at least 16 KiB, kept
//     in Pebble blob files, whose entries DropRange removed, unless Pebble
//     rewrites the blob file first. Eviction accounts for them.
//   - The key and expiring counts after a DropRange are fixed in the
//     background (poll Stats); a restart before that recounts every key in
//     the background. A store written before the expiring count existed
//     (no "me" meta key) is recounted the same way at its first Open; until
//     the count is applied, Expiring reflects only the writes since Open.
//   - A pointer Pebble cannot read (a block checksum error) is taken to have
//     had no expiry when it is overwritten or removed, so Expiring may stay
//     too high by one per such entry until a recount.
//   - On a Pebble block checksum mismatch, Pebble searches the block for a
//     single flipped bit, recomputing the block's checksum up to 320k times:
//     reading a corrupt multi-MB record costs seconds to minutes of CPU, once
//     (the entry is then deleted).
//   - If a Pebble call panics despite the above, the instance is abandoned
//     (its locks may be held) and the tier stays unavailable until the
//     process restarts. If the directory's WAL is corrupt at reopen, the WAL
//     files are deleted: the entries written since the last flush are lost,
//     which a cache can afford.
//   - A write waits at most Options.WriteTimeout for room; a single record or
//     batch larger than a quarter of the budget is refused (tier.ErrTooLarge).
//   - Generations order entries by write, and by read only through the
//     second chance at drop time: ReadRecent ranks an entry read often but
//     written long ago by its write, or by its last second chance. Index
//     entries of overwritten or deleted keys stay until
//     their generation is dropped; ReadRecent reads their pointer to skip
//     them.
package disktier
