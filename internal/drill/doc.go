// Package drill holds tiercache's reliability drills: tests that run the
// real daemon (tiercached and tierctl, built by TestMain), real nats-server
// instances in-process and real Redis clients, break something — the
// process, the disk, NATS, the network, the client count — and check what
// users rely on while and after it happens. The package itself is only the
// drills' value format and a /proc reader; everything else is in the
// tests.
//
// # Basics
//
// Every value a drill writes is made by NewValue: a sequence number, a
// ChaCha8 payload (incompressible, so disk sizes are real) and a trailing
// SHA-256 checksum over the key, the sequence number and the payload.
// CheckValue (and CheckValueReader, for values streamed without holding
// them) tells a good value's write apart from a wrong, torn, truncated or
// misplaced one. Each drill has a checker that reads continuously and
// verifies every value it gets, and ends with one t.Log line of figures.
//
// Run the fast drills with the rest of the tests:
//
//	go test ./internal/drill                # about a minute; with -race, about two
//
// and the long ones, with the full sizes, one at a time:
//
//	TIERCACHE_DRILL_LONG=1 go test -run 'TestDrillSIGKILL$' -v -timeout 30m ./internal/drill
//
// # Drills
//
//   - TestDrillSIGKILL: write-through daemon (--flush-interval 200ms)
//     under SET/GET/DEL from several go-redis clients, killed with SIGKILL
//     at a random point, 5 cycles (long: 50). After each restart nothing
//     corrupt is served, every write acknowledged more than
//     --flush-interval before the kill is there (ack times taken by the
//     clients; the kill time is taken before the signal is sent, so both
//     err on the strict side), no acknowledged delete is undone, and every
//     client reads its own writes while the daemon runs.
//   - TestDrillDiskFull: the data directory on a tmpfs mounted by the test
//     (root only; otherwise it skips — tier/fault_test.go covers the same
//     faults in-process with errorfs): a 128 MiB filesystem with
//     --disk-max 100MiB, and a 64 MiB one with --disk-max 256MiB (which
//     the daemon must lower to 90% of the filesystem). A filler file
//     takes the rest of the disk: SETs are still acknowledged and served
//     from memory, INFO l2_write_errors and l2_errors report the failures;
//     deleting the filler lets the daemon write its queue down by itself;
//     after SIGKILL and restart everything written before, during (unless
//     pending_writes_dropped says shed) and after is there.
//   - TestDrillNATSDown: three daemons on one nats-server, restarted on the
//     same port with its JetStream store after an outage of 3s (long:
//     30s) during which MODEL.ROLLOUT and tierctl rollout fail at once and
//     change nothing. A writer and a checker per daemon run throughout;
//     no checker ever sees a value written under a version older than the
//     one its daemon reported by MODEL.GET (writers hold a gate that
//     rollouts take exclusively, so a value's version is exact).
//   - TestDrillNATSPartition: one daemon reaches NATS through
//     natstest.Proxy, which is cut while a rollout happens, 2 times
//     (long: 10); once the daemon reports itself connected again, its very
//     first answers are at the new version.
//   - TestDrillFirstRollout: two daemons whose registry does not know
//     clip cache {clip@v1}, {clip@v2} and {clip} entries; one is stopped
//     while clip's first rollout, to v1, is made on the other. Both keep
//     their own {clip@v1} entries (the stopped one once it has replayed
//     the rollout, before its first answer) and answer nil for the others,
//     and still do after a restart.
//   - TestDrillFleetFencing: three daemons as a fleet cache
//     (--peer-listen) serve peer-filled GETs and SETs of {clip} keys while
//     clip is rolled out 200 times; no reader gets a value of a version
//     older than its daemon reported by MODEL.GET before the GET, and
//     peer_hits > 0. Without tier.Hybrid.Fill's tag check it fails within
//     its first rollouts.
//   - TestDrillFleetOwnerKill: a member of a three-daemon fleet
//     (--peer-timeout 200ms) killed with SIGKILL under load: the others'
//     clients get no error and no stale read, and no GET after the kill
//     takes over --peer-timeout + 5 ms; restarted, it rejoins and serves
//     a key it owned from its L2.
//   - TestDrillSIGKILL, TestDrillNATSDown and TestDrillFirstRollout also
//     run with peer fill on (subtests peer=on; the SIGKILL one, a fleet of
//     one, with 2 cycles, long: 20).
//   - TestDrillFlood: 5,000 connections at once, then (with them open) 40
//     clients × 16 MiB values (long: 200 × 64 MiB) streamed by raw RESP
//     writers at once, while a probe does SET/GET of small keys. The
//     daemon's RSS (VmRSS sampled, and VmHWM) must stay under the bound
//     documented in the README (flood_test.go computes it from the flags:
//     in-flight budget and its small-command lane, 1.15 × --mem-max, the
//     write queue, Pebble's caches and write path, 64 MiB); the probe
//     keeps being served (no error, commands completed during the flood;
//     p99 and max reported); every value is stored intact or refused with
//     an error. This daemon is built without -race.
//   - TestDrillNATSPermissions: nats-server configured by
//     testdata/nats-permissions.conf, the documented example of users for
//     the daemons (read the registry, announce themselves) and for
//     pipelines (roll out one model each); a pipeline's rollout of a model
//     it does not own is refused with a permissions violation and changes
//     nothing. TestDrillNATSTLS (mutual TLS, with a CA and certificates the
//     test makes) and TestDrillNATSCreds (a JWT creds file, the server in
//     operator mode) and TestDrillNATSNKey (users authenticated by NKey)
//     show the daemon's other ways to authenticate.
//
// # Environment
//
//   - TIERCACHE_DRILL_LONG=1: the full sizes (see each drill).
//   - TIERCACHE_DRILL_PPROF=FILE: TestDrillFloodProfile runs the flood
//     against an in-process server and writes the heap profile of its peak.
//   - TIERCACHE_DRILL_LOGDIR=DIR: the full logs of the daemons of a failed
//     drill are written there (the test output has their last lines).
//
// # Findings
//
// Bugs the drills found, all fixed since:
//
//   - walprealloc: with --disk-max 256MiB on a 64 MiB filesystem, 10 MiB
//     of writes filled the filesystem (Pebble preallocated 1.1 × its
//     memtable size, 17.6 MiB, for each of several WALs, invisible in the
//     files' sizes), the flush that would have freed it failed with
//     ENOSPC, and the daemon never wrote to disk again. disktier now caps
//     WAL preallocation at 1 MiB and lowers MaxBytes to 90% of the
//     filesystem (TestDrillDiskFull/fs=64MiB,disk-max=256MiB).
//   - budget-fifo: a small command's arguments waited for the in-flight
//     budget behind every large value queued before it (FIFO), so during
//     a flood of large SETs a GET of a 10-byte key waited seconds (40 ×
//     16 MiB: up to 12 s) to minutes (200 × 64 MiB: the probe's commands
//     cut by its 30 s read timeout). Commands up to 1 MiB now have a
//     32 MiB lane of their own (server/budget.go;
//     server TestBudgetSmallCommandsNotQueuedBehindLarge).
//   - flood-rss: 200 × 64 MiB values peaked at 1,028–1,072 MiB RSS against
//     the bound then documented (998 MiB), which left out copies of large
//     values: the record tier.NewRecord copied each SET's value into (as
//     much again as the in-flight budget) and Pebble's write path
//     (batches queued as memtables, the flush's buffers). SET now builds
//     its record in the request buffer (tier.SetArgs.Spare), and the
//     documented bound counts the write queue and Pebble's write path.
//   - The members bucket (memory storage) was gone after a NATS server
//     restart and the daemons kept writing through their stale handle, so
//     tierctl rollout --wait waited for nobody (4bec404).
//   - Writes acknowledged 230–290 ms before a SIGKILL were lost under
//     heavy load with --flush-interval 200ms (72ff24c tightened the
//     write-through back-pressure).
//   - A rollout NATS refused for lack of permission waited for its
//     timeout and reported "context deadline exceeded";
//     invalidation.PermissionWatch now fails it at once with the
//     violation.
//
// # Caveats
//
//   - The drills need Linux (/proc, tmpfs, Unix sockets); the disk drill
//     needs root and the flood drill 6,000 file descriptors, and they skip
//     with a message otherwise.
//   - Timings are those of a shared 2-core machine; the drills poll for
//     what they wait for and bound it generously, and their figures are
//     for comparing runs on one machine.
package drill
