package invalidation

import "strconv"

// Status is the state of a Cluster, for INFO's "# Cluster" section
// (Fields) and tiercache_nats_connected.
type Status struct {
	// NATSConnected reports whether the connection to NATS is up.
	NATSConnected bool
	// Synced reports whether the registry has caught up with the bucket
	// (Cluster.Synced).
	Synced bool
	// URL is the NATS server in use (the embedded server's client URL, the
	// server connected to, or the configured list), without credentials.
	URL string
	// Bucket and MembersBucket are the registry and members buckets.
	Bucket, MembersBucket string
	// NodeID is this daemon's node id.
	NodeID string
	// BucketRevision is the bucket revision the follower applied last: the
	// cache's registry revision but for a moment, or after the bucket was
	// recreated with lower revisions (see the package documentation,
	// Caveats).
	BucketRevision uint64
	// Reconnects counts the connection's reconnections.
	Reconnects uint64
	// InvalidEntries counts the registry entries skipped as invalid.
	InvalidEntries uint64
}

// Fields returns s as INFO name:value pairs, in this order: nats_url,
// models_bucket, members_bucket, node_id, models_synced (0/1),
// models_bucket_revision, nats_reconnects, models_invalid_entries.
// NATSConnected is left to the caller, which reports it as nats_connected
// with the cache's registry revision and counts.
func (s Status) Fields() [][2]string {
	synced := "0"
	if s.Synced {
		synced = "1"
	}
	return [][2]string{
		{"nats_url", s.URL},
		{"models_bucket", s.Bucket},
		{"members_bucket", s.MembersBucket},
		{"node_id", s.NodeID},
		{"models_synced", synced},
		{"models_bucket_revision", strconv.FormatUint(s.BucketRevision, 10)},
		{"nats_reconnects", strconv.FormatUint(s.Reconnects, 10)},
		{"models_invalid_entries", strconv.FormatUint(s.InvalidEntries, 10)},
	}
}
