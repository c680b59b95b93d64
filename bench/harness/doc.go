// Package harness is tiercache's benchmark harness: it starts tiercached
// and the peers found on PATH (redis-server, memcached) on Unix sockets in
// a temporary directory, drives every system with the same load generator
// and reports the figures side by side, as ratios.
//
// # Basics
//
//	res, err := harness.Run(ctx, harness.QuickConfig())
//	err = harness.Write("bench/out", res) // results.md, results.json, PNGs
//
// Config holds every size, duration and count; FullConfig is the run whose
// output is committed in bench/results, QuickConfig the one that finishes
// in under two minutes. Run builds ./cmd/tiercached unless
// Config.Tiercached names a binary, runs the workloads in order (hot set,
// budget, cold tier, restart, propagation), stops every process it started
// and returns Results; a workload that fails becomes a note and the others
// still run.
//
// # Workloads
//
//   - hot set: GET and SET over keys that all fit in memory, per value size
//     and connection count.
//   - budget: a cache-aside replay of one Zipf trace at equal memory
//     budgets; a miss costs an encoder delay that is accounted, not slept.
//   - cold tier: a working set several times --mem-max, read at random, so
//     GETs are served from L2; compared with the same daemon's hot figure.
//   - restart: time from process start to the first hit and to 90% of the
//     steady throughput, tiercached from L2 against Redis from an RDB.
//   - propagation: time from MODEL.ROLLOUT returning on one daemon to the
//     first stale-free GET on each of several daemons joined over NATS.
//
// Peak RSS (VmHWM) of every process is recorded next to its budget.
//
// # Caveats
//
// The load generator shares the machine's cores with the servers, and the
// machine is shared: absolute numbers move between runs by 10–20%, so
// conclusions rest on ratios measured in the same run. L2 reads are served
// through the kernel's page cache when memory is free, as in production.
// The harness never sends traffic anywhere but Unix sockets and the
// loopback NATS port of the daemons it started.
package harness
