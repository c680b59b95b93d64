// Command policysim replays cache-aside traces through eviction and
// admission policies and reports their hit ratios against byte
// capacities, to choose tiercached's policy (issue 22):
//
//	go run ./bench/policysim                  # full run, markdown on stdout
//	go run ./bench/policysim -quick           # small traces, seconds
//	go run ./bench/policysim -mem 64 -values 118KB -out table.md
//
// # Basics
//
// Every request is a GET; a miss is followed by a SET of the key
// (cache-aside), so a miss is the key's first appearance to the policy.
// Only requests after the trace's warm-up count, as in the harness's
// budget workload. Capacities are --mem-max of 64, 128 and 256 MiB with
// --disk-max 10× that; the single-tier policies get the sum, and each
// value costs its size.
//
// Traces (deterministic):
//   - budget: the harness's budget trace itself (harness.BudgetTrace:
//     Zipf s=1 over 1,000,000 prompts, 60,000 warm-up and 60,000 measured
//     requests);
//   - zipf-0.8, zipf-1.0, zipf-1.2: Zipf over 1,000,000 prompts, 100,000
//     warm-up and 200,000 measured requests;
//   - shift: zipf-1.0 where every key becomes new halfway through the
//     measured part (a rollout); there every policy starts empty, as the
//     daemon drops the old version's entries from both tiers (range
//     deletes in L2, which free its room) (Trace.Rollout);
//   - scan: zipf-1.0 where, during the middle half of the measured part,
//     every request is followed by one of a key never seen before (a
//     batch job walking a prompt list once);
//   - loop: keys requested in the same order over and over, their values
//     1.1 × the capacity (2 loops warm, 3 measured).
//
// Values are 118 KB, or a mix where one key in ten (by a hash of the key)
// has a 4 MiB value.
//
// # Policies
//
//   - OPT: Belady's furthest-next-use with bypass. Optimal with one value
//     size; with mixed sizes a heuristic, not a bound (exact OPT with
//     sizes is NP-hard).
//   - bound: an upper bound for every cache of the capacity, sizes mixed
//     or not (PFOO-U, see bound in opt.go), and ceiling, the compulsory
//     misses' bound (every key seen before hits).
//   - LRU, FIFO; LFU-DA: LFU with dynamic aging (count since cached plus
//     the cache's age, which rises to each evicted entry's priority).
//   - S3-FIFO (SOSP '23: small FIFO 10%, main FIFO with a 2-bit counter,
//     ghost of as many bytes as main) and W-TinyLFU (Caffeine: window LRU
//     1%, segmented LRU main 20/80, count-min sketch of 4-bit counters
//     halved every 10 × entries additions, no doorkeeper, fixed window).
//   - today: tiercached in write-back mode before admission (commit
//     694b8d4), two tiers with their own
//     capacities charged as the daemon charges them: memtier's large
//     store (CLOCK: the 118 KB and 4 MiB values never reach bigcache's
//     rings) at the record's pooled-buffer size, every dirty entry it
//     evicts written to L2 (demotion), an L2 hit copied to L1 clean
//     (promotion), and disktier's generations (1/32 of a budget that
//     leaves room for the WAL and memtables, dropped whole, oldest first,
//     with a second chance at read time: a hit on the older half of the
//     bytes is rewritten into the current generation). "today, nominal
//     bytes" is the same with each value costing its size against the
//     nominal --mem-max and --disk-max: the difference is capacity lost
//     to accounting, not to the policy.
//   - S3-FIFO 2-tier and W-TinyLFU 2-tier: the candidates as L1, deciding
//     what L1's evictions write to L2, which evicts as disktier now does
//     (same charges as today): generations dropped whole, oldest first,
//     with the second chance at drop time (CLOCK): a hit marks its entry,
//     a write of the key clears the mark, and dropping a generation
//     rewrites into the current one its entries that are marked. While
//     L2 fills every dirty eviction is written; then S3-FIFO writes what
//     leaves its main queue, never what leaves the small queue unread,
//     and W-TinyLFU what its shared sketch has seen at least twice.
//     S3-FIFO's ghost remembers policy.GhostSpan (2) × the bytes of L1
//     and L2, at most
//     policy.GhostEntries(--mem-max + --disk-max) keys.
//     The split-sketch variant gives L1 and L2 a sketch each, L2's
//     counting only L1's misses.
//
// The report gives each policy's hit ratio with its ratio to OPT, then,
// for the two-tier models, the bytes written to L2 per 1,000 measured
// requests (second-chance rewrites included) and the entries held.
//
// # Caveats
//
//   - The replay is sequential; the harness's 8 workers reorder requests
//     slightly and the daemon's flusher and maintainer act later than
//     here, so the today model's ratios are close to, not equal to, a run
//     of the daemon.
//   - disktier's backstop on Pebble's measured size (one more generation
//     dropped when the directory stays high) is not modelled: the today
//     model holds what the logical budget allows, an upper estimate.
//   - Expiry, overwrites, rollouts' range deletes and the warm-up after a
//     restart are not modelled.
package main
