// Command tiercached is the tiercache daemon: a two-tier cache (L1 in
// memory, L2 on disk in Pebble) served over the Redis protocol on a Unix
// socket and, optionally, TCP.
//
//	go run ./cmd/tiercached                       # a working single-node daemon
//	tiercached --mem-max 2GiB --disk-max 50GiB --write-policy back --metrics 127.0.0.1:9100
//
// Every flag can also be given as an environment variable TIERCACHE_<NAME>
// (TIERCACHE_MEM_MAX for --mem-max); a flag on the command line wins, and
// an empty variable counts as unset. tiercached --help lists the flags;
// the external contract (flags, start-up errors, shutdown) is in
// CONTRACT.md.
//
// # Start-up
//
// main.go binds the flags (flags.go) into options, newDaemon (run.go)
// acquires everything that can fail, startServing launches the listeners,
// and main waits for a signal. A start-up error is one line on stderr,
// "tiercached: …", and exit status 1; every bad flag value is named in that
// line at once. newDaemon acquires in an order that leaves nothing behind
// and touches nothing of another daemon's: the metrics and TCP listeners
// first (no side effects), then a check that no live daemon answers on the
// socket, then the data directory (Pebble's LOCK file keeps a second daemon
// out), and the socket last.
//
// The socket is bound in a private directory next to its path, given its
// mode, and hard-linked into place (socket.go), so it never exists with
// wider permissions, and a link never replaces a socket another daemon
// created meanwhile. A socket file nobody listens on (connection refused)
// was left by a dead daemon and is replaced.
//
// # Shutdown
//
// SIGTERM or SIGINT: /healthz turns 503, the server stops accepting and
// lets in-flight commands finish (--shutdown-timeout, then it closes their
// connections), the socket file is removed if it is still this daemon's,
// the cache writes L1-only entries down to L2 (write-back) and closes
// Pebble, and the process exits 0. A second signal during the shutdown
// exits at once with status 2; Pebble recovers from its WAL at the next
// start, but write-back entries not yet written down are lost.
//
// # Model registry
//
// With --nats off the daemon is standalone: MODEL.ROLLOUT and MODEL.PURGE
// apply to its cache only (tier.LocalRegistry), and INFO's "# Cluster"
// says nats_mode:off. Otherwise it starts an invalidation.Cluster, which
// follows the cluster's registry bucket and publishes this daemon's
// changes to it. The server gets either one as its Models, and INFO's
// "# Cluster" fields from the Cluster's Status.
//
// # Fleet
//
// With --peer-listen (fleet.go) the daemon also serves its peers: a
// peer.Server over the Hybrid on that address (port 0: a free one, whose
// address it announces), a peer.Ring that the Cluster's OnMembersChange
// rebuilds from the live members with a peer address, and a peer.Client
// whose Self is --node-id. The RESP server's cache is then a peer.Cache
// around the Hybrid, and INFO's "# Peers" and the tiercache_peer_* series
// come from the client's and the server's counters. Shutdown stops the
// RESP server, then the peer server and client, then leaves the cluster,
// then closes the cache.
//
// # Caveats
//
// The socket's hard link needs a file system that supports links (any
// local one does); the directory holding the socket must exist.
package main
