// Package tier defines what the cache stores and how its two levels compose.
//
// # Basics
//
// A Tier maps binary keys to records. A Record is a value with a small header
// (format version, expiry, the model epoch and version tag it was written
// under, and a CRC-32C checksum); both levels store records unchanged, so an
// entry moves between them with a single copy.
//
// L1 (package memtier) keeps records in memory, L2 (package disktier) on
// disk. Hybrid composes them: reads try L1, then writes still in flight, then
// L2, and copy an L2 hit up to L1 (promotion); entries L1 evicts for space
// are written down to L2 when L2 does not have them yet (demotion). Writes
// reach L2 through one flusher goroutine that commits group batches, at the
// latest FlushInterval after they were acknowledged (write-through), or only
// on demotion and at Close (write-back).
//
// # Rooms
//
// Hybrid is the lookup path (lookup.go: L1, the write queue, L2, promotion),
// the write path's entry points (write.go), demotion with L2 admission
// (demote.go), EXPIRE (expire.go) and the fleet's entry points (fleet.go)
// over four parts, each a type of its own that is tested alone or through
// the conformance suite:
//
//   - the write pipeline (pipeline.go): the queue of writes waiting for L2,
//     looked up by key, its flusher goroutine committing group batches,
//     back-pressure by bytes and by age, shedding while L2 fails. It is
//     driven by a small environment of functions (after pebble's
//     commitPipeline), so its tests run it with no disk at all;
//   - the model registry (Registry, modelregistry.go): versions and epochs,
//     the first-rollout rule, persistence in L2's meta records, range drops
//     and the per-model counts. It needs only a RegistryStore; Hybrid
//     embeds it, so its methods are Hybrid's;
//   - the warm-up (warm.go), a goroutine that copies L2's newest entries to
//     L1 after a start;
//   - the stripes (stripes.go), which order writes of a key against the
//     readers that act on what they read, and hold the lookup counters.
//
// Hybrid keeps more methods than the ~25 the split aimed at: 37, of which
// 21 are the cache's API that the server, the fleet cache and the daemon
// call (Get, SetWith, Remove, Expire, the fleet's PeerGet, Fill and
// NearWrites, Stats, …; the registry's methods come with the embedded
// Registry), and 16 the steps of the lookup and write paths (header, put,
// putLocked, onEvict, …). Those steps share
// the stripes, L1 and the queue under one ordering protocol (see
// stripes.go); moving them into another type would split one path across
// two. The split left it 29 methods; the fleet cache and admission added
// the rest.
//
// # Keys, models and versions
//
// A key of the form {MODEL}rest or {MODEL@VERSION}rest is model-scoped
// (ParseScope). Hybrid keeps a registry of models, each with its current
// version and an epoch: a number that changes whenever the model's version
// does (rollout) or the model is purged. Every record of a scoped key carries
// the epoch it was written under, and L2 stores it under a key that starts
// with the model and the epoch (ModelKey), so
//
//   - a read compares the record's epoch with the model's: entries of an
//     older epoch are never served, without any scan;
//   - a rollout drops the old epochs from L2 with a handful of range deletes
//     (ModelRange), whatever the number of keys;
//   - L1 drops stale records lazily, when they are read or evicted.
//
// A model's first rollout, to V, from a state without a version (the
// registry never knew the model, or purged it), is the exception: the
// {MODEL@V}… records written before it were written for V, so they stay
// where they are, under the epoch the model had until then
// (ModelState.Kept), and the rollout's range deletes go around them. The
// model's {MODEL}… and {MODEL@X}… records from before are dropped as in any
// rollout. The model's next change drops everything, kept records included.
//
// # The model registry
//
// Registry holds the registry's state and applies changes to it at a
// revision (ApplyModels; ApplyModelsAsync for a registry kept elsewhere,
// which a restarted cache replays). Its rules live here only:
// ValidateModel and ValidateVersion say which names and versions a change
// may carry, refusing the others with an *InvalidError (matching
// ErrInvalidModel or ErrInvalidVersion). A change is a ModelChange, which
// only NewRollout and NewPurge make, after those checks: they run once,
// where a change comes in (a RESP command, tierctl's arguments, a registry
// bucket entry), and what takes a ModelChange (ApplyModels, LocalRegistry,
// package invalidation) does not check it again.
// What decides the changes is outside the cache: LocalRegistry, for a
// standalone cache, makes each rollout or purge the next revision; package
// invalidation follows a registry shared by a cluster through NATS and
// applies its changes at the revisions they have there.
//
// # Warm-up
//
// After a restart L1 is empty; promotion alone refills it one client read
// at a time. NewHybrid therefore starts a goroutine that copies L2's most
// recently written or read entries up to L1 (Options.WarmBytes) while the
// cache serves: readiness is not delayed, and a GET finds in L1 whatever
// the warm-up has copied so far, or reads L2 as before.
//
// What is recent comes from L2's own layout (RecentReader): disktier reads
// back its generations newest first, which hold the entries written last
// and those its second chance moved forward because they were read from
// L2. This needs nothing written at shutdown and no new on-disk record, so
// it works the same after SIGTERM and after SIGKILL, on data directories
// written before it existed. A list of the keys L1 held, written at a clean
// stop, would also know what clients read from L1 only (which L2 never
// sees), but it would be missing after a crash, would lengthen every stop
// by a write of each L1 key, and would be a new record to keep readable;
// it is not kept.
//
// The warm-up stops when L1 holds WarmBytes (by default all of L1's
// capacity), when L1 has no room for the next entry without evicting
// another (memtier tells: Fits) or evicts anything (L1 is full: a warmed
// entry would push out another; for records small enough for L1's rings,
// 1/8 of L1, that is once the rings have taken their share), or when L2 has
// nothing more. A warmed entry is marked clean (L2 has it), so evicting it
// later writes nothing; the warmed entries no client has read are the first
// the large store's CLOCK evicts. (Stopping at 3/4 of L1, as it first did,
// left a restart of 4 GiB in a 5 GiB L1 at 95% of its keys in L1, below the
// 96% that 90% of the hot throughput needs when an L2 read costs four
// times an L1 hit; the rest came from clients' reads, at random.)
//
// Clients keep priority. Each step reads at most 256 KiB of records from
// L2 without holding any lock of the Hybrid (the keys L1 already holds are
// passed over before their record is read), then copies them under each
// key's stripe lock (no disk I/O under it); a client ready to run waits for
// one step at most. After a step during which clients queued writes, the
// warm-up pauses as long as the step took (100 µs to 50 ms): write-through
// writes have FlushInterval to reach L2 and the flusher shares the disk. After a step during which clients read from
// L2, it yields the processor, so that the connections ready to run go
// first, but does not sleep: such a read is a promotion, the work the
// warm-up does for less (no reply to write; every key read once, in
// order), and sleeping only left L1 to fill at the clients' pace (a
// restart with 256 MiB of 118 KB values under 16 connections of random
// GETs from the start: 90% of the steady throughput 2% sooner than without
// warm-up when it slept half of the time, 10% sooner yielding — 2.6 s
// instead of 2.9 s; means of 3 runs alternating with runs without it).
//
// It never overwrites what a client did: a step takes the stripes' seqs,
// then waits until the writes queued before have left the write queue (so
// that its L2 read sees them), and copies an entry only if its stripe's
// seq has not moved since (no write, delete, expiry change or demotion of
// a key of that stripe), the key is not in L1, the record has not expired,
// and its epoch is the model's current one (a rollout during the warm-up
// makes it stale). Copies are marked FlagClean: L2 has them. Close waits
// for the step in progress.
//
// Cost: one pass over the newest generations' index, pointers and records
// (in key order within a generation, from the page cache after a restart on
// the same host) and a checksum per record; the memory is L1's own. With
// the L2 of 64 MiB of values in BenchmarkWarmUp and no client, L1 refills
// at 190 MB/s with 1 KB values and 570 MB/s with 118 KB ones, against 160
// and 420 MB/s when one client reads every key once (medians of 4 runs on
// the shared 2-core machine): about 1.4 s for the 768 MiB of 118 KB values
// a 1 GiB L1 is warmed with, and no client has to ask. In a fresh process
// both pay for memory touched for the first time, L1's records and
// Pebble's block cache, which on the test machine's virtual machine
// dominates: under a load that already reads every key from L2, the
// warm-up takes over part of the promotions rather than adding to them
// (1 GiB of 118 KB values: 90% of the steady throughput after 9.6–11 s
// with or without it, the warm-up having loaded 30% of the keys).
//
// # Caveats
//
// Entries read only from L1 since they were written are not moved to a
// newer L2 generation (L2 never sees those reads): after a restart they
// rank by when they were written. Within a generation the order is by key.
//
// Checksums are computed when a record is written to disk (Record.Seal) and
// verified when it is read back, not on the write path nor on L1 hits:
// memory is trusted, and a pass over a 4 MB value on every SET or hit would
// cost more than the rest of the request. Records larger than L1's largest
// entry are kept in L2 only.
package tier
