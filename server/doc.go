// Package server serves a cache over the Redis protocol (RESP2), so that
// any Redis client can use tiercache unchanged.
//
// # Basics
//
// A Server accepts connections on any number of listeners (the daemon's
// Unix socket and optional TCP address). Each connection has one goroutine
// that reads commands, runs them in order and writes the replies; replies to
// pipelined commands are written together, when no more input is buffered.
// The commands are Redis' own (GET, SET with EX/PX/EXAT/PXAT/NX/XX/KEEPTTL/GET,
// MGET, MSET, DEL, UNLINK, EXISTS, EXPIRE, PEXPIRE, PERSIST, TTL, PTTL, DBSIZE,
// FLUSHALL, FLUSHDB, INFO, PING, ECHO, QUIT, HELLO, AUTH, SELECT 0, CLIENT, COMMAND,
// CONFIG GET) with Redis' replies and error wording, plus MODEL.ROLLOUT,
// MODEL.GET, MODEL.LIST and MODEL.PURGE, and the leases LEASE.GET,
// LEASE.MGET and LEASE.RELEASE.
//
// What the cache refuses is answered from the error's fields, never from
// its text: a *tier.StaleError is "-STALE MODEL is at V", a
// *tier.InvalidError (model name, version, key scope) and a
// *tier.TooLargeError (a key or value longer than the disk tier takes) are
// "-ERR " and their Message.
//
// # Leases
//
// A lease (lease.go) lets one client compute a missing key while the
// others wait for its SET. The table is package lease's (a lease.Table,
// bounded by Options.MaxLeases), touched only by LEASE.* commands and by a
// SET of a key that has a lease (a SET reads one atomic counter while no
// lease exists). A waiting command blocks
// its connection's goroutine, as Redis' blocking commands block their
// client: it first sends the replies of earlier pipelined commands (so its
// buffer guard is unpinned while it waits), and a watcher peeks at the
// socket so that a client that hangs up is dropped at once rather than at
// the end of its WAIT. A lease's expiry is a timer; handing it over gives
// the first waiter a new token.
//
// # What it needs of the cache
//
// The server owns the interfaces it calls, each small: Options.Cache is a
// Cache, made of Keyspace (Get, SetWith, Remove, Expire), Scopes (the
// write checks and MODEL.GET/MODEL.LIST), Reporter (INFO and DBSIZE),
// FlushAll and bufpool.Holder; *tier.Hybrid is one. The model registry
// belongs to package tier: MODEL.GET and MODEL.LIST read the cache's, and
// MODEL.ROLLOUT and MODEL.PURGE check their arguments with its rules as
// they parse them (tier.NewRollout, tier.NewPurge), once, and pass the
// checked change to Options.Models, a two-method interface the server owns
// (tier.LocalRegistry for a standalone daemon). A daemon in a
// cluster passes the registry that follows the cluster's, with
// Options.Sync and Options.Cluster; the server knows nothing of NATS and
// imports no package of tiercache but tier, lease (the leases it serves),
// policy (the eviction policy's name it reports) and internal helpers.
//
// # Limits and back-pressure
//
//   - A bulk string longer than MaxValue is answered "-ERR value too large"
//     and discarded as it streams in (never buffered); the connection stays
//     usable. A bulk length over Redis' protocol limit (512 MiB, or MaxValue
//     if larger) is answered "-ERR Protocol error: invalid bulk length" at
//     once, as malformed RESP is ("-ERR Protocol error: …"): that closes
//     the connection, and that connection only.
//   - Request bytes are read into buffers of their exact size, after being
//     taken from a server-wide in-flight budget: when many clients send
//     large values at once, readers wait for budget instead of buffering,
//     so memory stays bounded and the kernel's socket buffers push back on
//     the clients. The budget has two lanes: commands whose arguments total
//     at most 1 MiB (GET, DEL, a SET of an embedding) take a 32 MiB reserve
//     of their own, so they are never queued behind large values; larger
//     commands share MaxInflight, first come, first served. INFO reports
//     inflight_bytes and budget_waiting_clients.
//   - Arguments of 16 KiB or more are read with room in front of them, so
//     that SET and MSET build the stored record around the value in place
//     (tier.SetArgs.Spare) instead of copying it; L1 then keeps that buffer
//     as the record. These buffers are recycled (Cache.Buffers, see
//     package bufpool): a connection pins its guard while its commands
//     run, the writer holds a share of each large value it queues, and a
//     buffer nothing holds any more takes the next large value, so a
//     stream of SETs does not keep landing in fresh memory (page faults
//     and zeroing were most of a 118 KB SET's cost). Smaller arguments are read into a per-connection arena
//     that the next command reuses: a GET or a small SET allocates nothing
//     for its arguments.
//   - Large replies are written from the value itself (writev), not copied
//     into a connection buffer: a GET of an embedding held in L1 writes the
//     stored record, with no copy and no allocation. Small output buffers
//     that grew are dropped after each flush. A client that does not read
//     its replies is disconnected after WriteTimeout (between WriteTimeout
//     less a second and WriteTimeout: the deadline is moved at most once a
//     second).
//
// # Per-request costs
//
// Nothing on the request path is shared by all connections except the
// cache itself: the small-command lane of the budget is a lock-free
// counter, and command counts and latencies (INFO total_commands_processed,
// tiercache_command_duration_seconds) are kept in 16 padded copies, summed
// when read. BenchmarkServerPath runs GET and SET through the whole path
// in-process and reports its allocations.
//   - MaxClients caps connections; the rest are told so and closed.
//
// # Caveats
//
// RESP3 is not spoken: HELLO 3 answers NOPROTO and clients fall back to
// RESP2. There is one database (SELECT 0). DBSIZE is an estimate (the
// larger of L1's and L2's key counts) and counts expired entries not yet
// reclaimed.
package server
