// Package peer is the fleet cache's ownership and transport: which daemon
// owns a key, and how daemons ask each other for values, in the style
// groupcache proved: one hop to the key's owner.
//
// # Basics
//
// Ring decides ownership. Each key has one owner among the members that
// serve peers: rendezvous (highest random weight) hashing over the
// members' node ids (github.com/dgryski/go-rendezvous, with xxhash), so a
// member joining or leaving moves only the keys it gains or loses, about
// 1/N of them, and every daemon that sees the same members computes the
// same owners, whatever the order or the process. Update replaces the
// members; Owner reads an immutable snapshot without locking.
//
// Server is the owner side. It listens on TCP and answers the other
// members from its Store (a *tier.Hybrid: L1, the write queue, L2) and
// never forwards a request, so a request makes at most one hop, which
// also rules out the distributed deadlocks groupcache's forks hit during
// rolling restarts. It serves:
//
//   - GET: the key's live record as the Store holds it (header and all),
//     or not found (Store.PeerGet: not counted as a client's lookup);
//   - SET: a value another member stored, with its expiry and the
//     version tag it was stored under; stored only if that tag is the
//     owner's own version of the key's model, checked with the write
//     (Store.SetTagged; see Fencing), else refused as stale;
//   - DELETE and EXPIRE, applied to the owner's copy;
//   - PING, which a client's breaker uses.
//
// Client is the requester side. Get asks the key's owner once, unless
// this daemon owns it, and returns the record or a miss: never an error,
// and never after more than ClientOptions.Timeout (default 100ms: a
// 64 MiB value takes about 55 ms at 10 Gbit/s, a 118 KB one well under a
// millisecond, while a miss costs the caller a computation of tens of
// milliseconds or more). Concurrent Gets of one key make one request
// (singleflight). Forward, ForwardDelete and ForwardExpire send this
// daemon's writes of a key to its owner through one ordered, bounded
// queue per peer (ClientOptions.QueueBytes); what the queue cannot take
// is dropped and counted. Forward returns at once; ForwardDelete and
// ForwardExpire wait for the owner's answer, at most Timeout, so that a
// lookup on this daemon right after a DEL does not find the owner's old
// copy. Stats has the
// counters of INFO's # Peers section; the server's bytes are in
// ServerStats.
//
// Cache puts the two together for a daemon's RESP server: it is the
// member's *tier.Hybrid with Get, SetWith, Remove and Expire that also
// involve the key's owner. A lookup that misses locally asks the owner
// through the Client and serves the record only through the Hybrid's Fill
// (the fencing rule below), which also keeps it in L1 as a clean near
// copy; a write of a key another member owns is stored here as a near
// copy too (tier.SetArgs.Near: L1 only, L2's older copy deleted) while the
// owner is up, and forwarded with the version tag it was stored under.
// The server sees only the cache interfaces it owns.
// A record of 16 KiB or more is read into the Hybrid's buffer pool
// (package bufpool), as the RESP server reads a SET's value: L1 keeps a
// large near copy by reference, and without the pool every peer-served
// GET landed in memory the process had never touched, about 30 page
// faults per 118 KB value (with the pool, a full L1 recycles what it
// evicts: 0 faults per GET in the bench harness's steady-state pass).
//
// # Protocol
//
// Peers speak a framed protocol of their own (protocol.go): a 5-byte
// header (length, request or status) and a body, requests answered in
// order on a connection, so a client may pipeline; the forward queue
// does. The first request must authenticate (ServerOptions.Password, a
// SHA-256 of which is compared in constant time); a connection that
// sends anything else gets one error reply and is closed. Mutual TLS
// (MutualTLS, LoadMutualTLS) may come under it.
//
// RESP was the alternative (a github.com/tidwall/redcon server and a
// github.com/redis/go-redis/v9 client). BenchmarkTransport serves the same
// Hybrid both ways over loopback, one client, in one run; on 2 cores
// shared with other jobs, five runs of 3,000 GETs each gave:
//
//	                  per GET       p99           CPU per GET
//	118 KB  framed    74-94 µs      0.51-0.77 ms  75-90 µs
//	118 KB  RESP      87-91 µs      0.55-0.59 ms  86-92 µs
//	4 MB    framed    3.0-3.6 ms    19-22 ms      2.7-2.9 ms
//	4 MB    RESP      4.9-7.9 ms    46-63 ms      4.0-4.7 ms
//
// (CPU is the process's, client and server together.) Even at 118 KB;
// at 4 MB the framing needs a third less CPU and allocates the record
// once (4.2 MB per GET) where go-redis and redcon copy it through their
// buffers (8.4 MB): the server writes a large record with its header in
// one writev, without copying it, which measured 12% less CPU per 4 MB
// GET than writing through its buffer, and the client reads it straight
// into the record it returns. What decided as much is the bound: redcon
// reads a command whole, growing its buffer to whatever bulk length the
// sender announces, before or after authentication. The framing reads a
// header, checks its length against the bound of the connection's state
// (4 KiB before authenticating, MaxValue plus 256 KiB after) and reads a
// body over 64 KiB only within the server's MaxInflight budget.
//
// BenchmarkGet compares a peer-served GET with a GET from the local
// Hybrid's L1 in the same run (eight runs of 3,000, in two sessions):
// 118 KB took 70-155 µs (p99 0.62-1.1 ms) and 67-138 µs of CPU; 4 MB
// took 2.2-2.7 ms per GET (1,500-1,940 MB/s, p99 9.7-16 ms) and
// 1.9-2.4 ms of CPU in seven runs, 6.8 ms (p99 39 ms) in the eighth,
// which met a burst of the other jobs. The p99 at 4 MB is the garbage
// collector's and the other jobs': every GET allocates its 4 MB record.
// A local L1 GET, a lookup that returns a reference and copies nothing,
// took 0.16-0.7 µs, so the ratio is 120-610x at 118 KB. Serving
// either to a RESP client adds the same write of the value to a socket;
// the daemon-level comparison belongs to the bench harness.
//
// # Fencing
//
// Values cross hosts with the version they were stored under: a record's
// header carries it (Tag). Two rules keep a stale value from being
// served, whichever daemon applied a rollout first:
//
//   - an owner stores a forwarded SET only if its tag is the version its
//     own registry has for the key's model ("" for a model it does not
//     know), and never answers a GET with an entry its registry holds
//     stale (Hybrid.PeerGet does not);
//   - Client.Get returns the record as the owner sent it, and the caller
//     serves it only if its tag is the version the caller's registry has
//     now (tier.Hybrid.Fill, which Cache uses; Servable says the same). A reader that applied a rollout before the owner
//     gets the old version's record and drops it; a reader behind the
//     owner gets the new version's record and drops it too. Both end in
//     a miss.
//
// The record's Epoch is the owner's and means nothing elsewhere: Fill
// rewrites it with the caller's before it keeps a near copy.
//
// # Caveats
//
//   - One hop. An owner answers from its own tiers only: a key it does
//     not have is a miss even if another member holds a copy.
//   - A delete is not a fleet-wide invalidation. ForwardDelete deletes
//     the owner's copy; near copies on other daemons live until evicted
//     or expired. A model rollout is the fleet-wide invalidation.
//   - The breaker. After a request to a peer fails (an error, or no
//     answer within Timeout), the client sends it nothing until a ping
//     succeeds: pings start ProbeInterval (100ms) after the failure and
//     back off to MaxProbeInterval (2s). Meanwhile its keys are misses
//     at once and writes forwarded to it are dropped. A dead peer costs
//     one Timeout, to each request already waiting on it when it failed.
//     An error reply (the owner's store failed) is counted but opens no
//     breaker; a pooled connection the peer closed while idle (it
//     restarted) is replaced once, without counting a failure.
//   - Forwarded writes are best effort: dropped when the queue is full,
//     the owner's breaker is open or its connection fails, never retried.
//     Cache keeps the near copy of a dropped SET in its own L2 instead
//     (Client.OnSetDropped, tier.Hybrid.KeepNear), and a daemon stopping
//     sends what is queued first (Client.Flush). Writes of one key reach
//     its owner in order; nothing orders them against Gets.
//   - Memory. The server holds at most MaxInflight bytes of large request
//     bodies plus about 128 KiB per connection (its buffers); the client
//     holds at most QueueBytes of forwarded writes (one write larger than
//     that when the queue is empty) and, for each Get in flight, the
//     record it reads.
//   - Leases at the owner. Client.Lease takes LEASE.GET/LEASE.MGET of
//     keys another member owns at that owner (opLeaseGet; the owner runs
//     lease.Table.Get with its Store's PeerGet), one request per owner,
//     on a lease pool of its own per peer (MaxLeaseConns, default 256,
//     MaxConns kept idle), since a request waits up to its WAIT. A hit
//     carries the owner's record, fenced by the requester like a Get's.
//     An owner whose breaker is open, that fails, or that does not answer
//     within Timeout plus WAIT is Unreachable: the caller takes the lease
//     locally, so during an owner's failure a key may be computed once
//     more. Tokens are the owner's with "@" and its member id, so that a
//     release (opLeaseRelease) reaches the member that granted it. The
//     holder's SET completes the lease when it reaches the owner as a
//     forwarded SET (ServerOptions.Leases): a forwarded SET dropped (queue
//     full, breaker open) leaves the lease held at the owner until its
//     TTL, and its waiters are answered a miss at their WAIT, or the lease
//     at its TTL. A requester that goes away mid-wait closes its lease
//     connection: the owner sees the read end and passes on what the
//     request held.
package peer
