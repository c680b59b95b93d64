package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tiercache/tiercache/lease"
	"github.com/tiercache/tiercache/policy"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/zap"
)

// Models is the model registry as the MODEL.* commands see it: what
// decides a change and its revision. tier.LocalRegistry is the one of a
// standalone daemon; a daemon in a cluster wires in the one that follows
// the cluster's registry. The commands check names and versions as they
// parse them (tier.NewRollout, tier.NewPurge) and pass on the checked
// change, which a Models does not check again.
type Models interface {
	// Rollout applies ch, a rollout (tier.NewRollout), and returns the
	// registry revision once this daemon has applied it.
	Rollout(ctx context.Context, ch tier.ModelChange) (uint64, error)
	// Purge applies ch, a purge (tier.NewPurge): it deletes the model from
	// the registry, and returns the revision once this daemon has applied
	// it.
	Purge(ctx context.Context, ch tier.ModelChange) (uint64, error)
}

// ClusterInfo is what the daemon's cluster reports in INFO's "# Cluster"
// section; the registry's revision and counts (models_revision,
// models_known, rollouts_applied) come from the cache.
type ClusterInfo struct {
	// NATSConnected is reported as nats_connected (0/1).
	NATSConnected bool
	// Extra fields are appended as name:value lines.
	Extra [][2]string
}

// PeersInfo is what a fleet member reports in INFO's "# Peers" section:
// its peer address and the counters of peer fill (package peer), as the
// daemon wires them. The keyspace counts (keyspace_hits, the tiers' and the
// models' hits and misses) stay this daemon's own: a lookup that misses
// here and that a peer then serves is a keyspace miss and a peer hit.
type PeersInfo struct {
	// Listen is the address peers dial (peer_listen).
	Listen string
	// Peers are the other members with a peer address; Live those this
	// daemon is not avoiding after a failure (peers, peers_live).
	Peers, Live int
	// Hits are lookups that missed here and were served from their owner;
	// Misses those the owner did not have, or had under another version
	// (Fenced of them); Errors, Timeouts and Skipped those that failed,
	// took too long, or were not asked because the owner had just failed.
	Hits, Misses, Fenced, Errors, Timeouts, Skipped uint64
	// SetsForwarded are writes sent to their owner and stored there,
	// SetsRefused those it refused (another version), SetsDropped those
	// that never reached it (full queue, owner down).
	SetsForwarded, SetsRefused, SetsDropped uint64
	// SetsNear are writes of keys another member owns that this daemon
	// kept in memory only (tier.SetArgs.Near), the owner storing them for
	// the fleet.
	SetsNear uint64
	// Served are lookups this daemon answered for peers, ServedHits those
	// it had the key for; SetsReceived the writes peers forwarded that it
	// stored, SetsStale those it refused.
	Served, ServedHits, SetsReceived, SetsStale uint64
	// AuthFailures are peer connections refused for want of the password
	// or a valid certificate.
	AuthFailures uint64
	// BytesIn and BytesOut are the bytes read from and written to peers,
	// both directions of the peer protocol, TLS included.
	BytesIn, BytesOut uint64
}

// Options configure a Server. Zero fields take the documented defaults;
// Validate reports every problem at once.
type Options struct {
	// Cache is the storage engine. Required.
	Cache Cache
	// Models handles MODEL.ROLLOUT and MODEL.PURGE. Required: for a
	// standalone cache, tier.NewLocalRegistry(h.Registry).
	Models Models
	// Cluster fills INFO's "# Cluster" section. Default: nats_connected:0
	// and no extra fields.
	Cluster func() ClusterInfo
	// MaxmemoryPolicy is what INFO (maxmemory_policy) and CONFIG GET
	// (maxmemory-policy) report: the L1 eviction policy in force, in the
	// shape of Redis' names (policy.Eviction.RedisName). Default the
	// default policy's.
	MaxmemoryPolicy string
	// Peers, when set, fills INFO's "# Peers" section; a daemon outside a
	// fleet has none, and no such section.
	Peers func() PeersInfo
	// Sync, when set, is called before any command that names a
	// model-scoped key ({MODEL…}) or a MODEL.* command: it returns once the
	// model registry has caught up after a (re)connection to the cluster,
	// so that a daemon that was away answers nothing stale. It must return
	// at once when the registry is in sync.
	Sync func(ctx context.Context) error
	// MaxValue is the largest value accepted; a larger one, up to Redis'
	// protocol limit (ProtoMaxBulkLen), is refused with "-ERR value too
	// large" and discarded without being buffered, and the connection
	// stays usable. A bulk length over both limits is a protocol error.
	// Default 64 MiB.
	MaxValue int64
	// RequirePass, when set, makes every connection AUTH first.
	RequirePass string
	// MaxClients caps concurrent connections; a connection over the cap is
	// told "-ERR max number of clients reached" and closed. Default 10000.
	MaxClients int
	// MaxInflight bounds the bytes of request arguments held by all
	// connections at once for commands larger than 1 MiB; a connection
	// that would exceed it waits before reading more (back-pressure)
	// instead of buffering. Smaller commands have a separate 32 MiB
	// reserve, so the total held is at most MaxInflight + 32 MiB. Default
	// max(4 × MaxValue, 256 MiB).
	MaxInflight int64
	// MaxLeases bounds the leases and waiters the server holds together
	// (--max-leases): past it, a LEASE.GET or LEASE.MGET that would be
	// granted a lease or wait for one answers "-ERR max number of leases
	// reached" and grants nothing. Each costs at most lease.Bytes of memory
	// (see LeaseMemory). Default lease.DefaultMax, 100,000 (49 MiB): room
	// for a fleet's stampedes, whose leases their keys' owners hold,
	// without an unbounded table.
	MaxLeases int
	// Leases, when set, is the lease table to use, shared with the
	// daemon's peer server (a forwarded SET completes its leases); its Max
	// is MaxLeases. The server closes it at Shutdown. Default: a table of
	// its own.
	Leases *lease.Table
	// Leaser, in a fleet, takes the leases of keys another member owns
	// at that owner (*peer.Cache). Default nil: every lease is local.
	Leaser Leaser
	// MaxArgs is the largest number of arguments in one command (array
	// length). Default 1,048,576, as Redis' 1M limit on multibulk length.
	MaxArgs int
	// WriteTimeout bounds how long one reply may take to write to a client
	// that does not read (back-pressure from slow readers); the connection
	// is closed when it passes. Default 30s.
	WriteTimeout time.Duration
	// Logger receives connection-level errors and the failed-AUTH log.
	// Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer, if set, receives the command latency histograms and
	// connection gauges.
	Registerer prometheus.Registerer
	// MemoryBound, if set, is reported as memory_bound in INFO and as
	// tiercache_memory_bound_bytes: the bound the process's resident memory
	// stays under, which the daemon computes from its settings.
	MemoryBound int64
	// Version is reported as tiercache_version in INFO.
	Version string
	// NodeID is reported as node_id in INFO.
	NodeID string
	// Clock is used for TTLs (EXPIRE, TTL). Default tier.SystemClock{}.
	Clock tier.Clock
}

// InflightBytes is the most memory request arguments hold, all
// connections together: MaxInflight (after defaults) and the small-command
// lane.
func (o Options) InflightBytes() int64 {
	o.EnsureDefaults()
	return o.MaxInflight + smallReserve
}

// LeaseMemory is the most memory the lease table holds: MaxLeases (after
// defaults) × lease.Bytes.
func (o Options) LeaseMemory() int64 {
	o.EnsureDefaults()
	return int64(o.MaxLeases) * lease.Bytes
}

// EnsureDefaults fills in the zero fields.
func (o *Options) EnsureDefaults() {
	if o.MaxmemoryPolicy == "" {
		o.MaxmemoryPolicy = policy.Default.RedisName()
	}
	if o.MaxValue == 0 {
		o.MaxValue = 64 << 20
	}
	if o.MaxClients == 0 {
		o.MaxClients = 10000
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = max(4*o.MaxValue, 256<<20)
	}
	if o.MaxLeases == 0 && o.Leases != nil {
		o.MaxLeases = o.Leases.Max()
	}
	if o.MaxLeases == 0 {
		o.MaxLeases = lease.DefaultMax
	}
	if o.MaxArgs == 0 {
		o.MaxArgs = 1 << 20
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Clock == nil {
		o.Clock = tier.SystemClock{}
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Cache == nil {
		errs = append(errs, errors.New("server: Cache is required"))
	}
	if o.Models == nil {
		errs = append(errs, errors.New("server: Models is required"))
	}
	if o.MaxValue < 0 {
		errs = append(errs, fmt.Errorf("server: max value %d is negative", o.MaxValue))
	}
	if o.MaxClients < 0 {
		errs = append(errs, fmt.Errorf("server: max clients %d is negative", o.MaxClients))
	}
	if o.MaxInflight < o.MaxValue {
		errs = append(errs, fmt.Errorf("server: in-flight budget %d is below the max value %d", o.MaxInflight, o.MaxValue))
	}
	if o.MaxLeases < 0 {
		errs = append(errs, fmt.Errorf("server: max leases %d is negative", o.MaxLeases))
	}
	if o.Leases != nil && o.Leases.Max() != o.MaxLeases {
		errs = append(errs, fmt.Errorf("server: max leases %d is not the lease table's %d", o.MaxLeases, o.Leases.Max()))
	}
	if o.MaxArgs < 1 {
		errs = append(errs, fmt.Errorf("server: max args %d must be at least 1", o.MaxArgs))
	}
	if o.WriteTimeout < 0 {
		errs = append(errs, fmt.Errorf("server: write timeout %v is negative", o.WriteTimeout))
	}
	return errors.Join(errs...)
}
