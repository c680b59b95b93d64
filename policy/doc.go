// Package policy holds what tiercache's tiers share about which entries to
// keep: the eviction policy a daemon runs (--eviction) and the ghost, the
// record of keys L1 dropped unread that S3-FIFO, the default policy, uses
// to tell a key asked for again from a key asked for once.
//
// # Policies
//
// S3FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
// SOSP '23) is the default: it reached the highest hit ratios of the
// policies simulated on tiercache's traces (bench/policysim) at the fewest
// bytes written to disk. A new entry enters a small FIFO queue holding a
// tenth of L1; one read while there moves to the main queue when it
// reaches the head, one not read leaves, its key going to the ghost, and
// once L2 is full it is not written there either (it was asked for once:
// a one-hit wonder). A key the ghost holds enters main directly. Main is a
// CLOCK with a 2-bit counter per entry. What leaves main is demoted to L2
// as before.
//
// LRU, LFU and FIFO are the classic policies, for workloads where they do
// better (see the README): exact LRU and FIFO, and LFU as Redis
// approximates it (a logarithmic counter per entry that decays with idle
// time; eviction takes the least frequent of a few sampled entries). Under
// them every entry L1 evicts is demoted to L2, as tiercache did before
// admission.
//
// Policies apply to L1's large records (1 KiB and more: the embeddings
// pipelines store); records under 1 KiB live in bigcache's rings, which
// are FIFO whatever the policy. L2 evicts whole generations oldest first,
// rewriting those of their entries read since written (CLOCK, package
// disktier), under every policy: the policy decides what is written to it.
package policy
