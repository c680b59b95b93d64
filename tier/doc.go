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
// Hybrid holds the registry's state and applies changes to it at a
// revision (ApplyModels; ApplyModelsAsync for a registry kept elsewhere,
// which a restarted cache replays). Its rules live here only:
// ValidateModel and ValidateVersion say which names and versions a change
// may carry, with errors wrapping ErrInvalidModel and ErrInvalidVersion.
// What decides the changes is outside the cache: LocalRegistry, for a
// standalone cache, makes each rollout or purge the next revision; package
// invalidation follows a registry shared by a cluster through NATS and
// applies its changes at the revisions they have there.
//
// # Caveats
//
// Checksums are computed when a record is written to disk (Record.Seal) and
// verified when it is read back, not on the write path nor on L1 hits:
// memory is trusted, and a pass over a 4 MB value on every SET or hit would
// cost more than the rest of the request. Records larger than L1's largest
// entry are kept in L2 only.
package tier
