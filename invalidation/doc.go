// Package invalidation keeps every daemon's model registry in step through
// a NATS JetStream KeyValue bucket, so that a rollout on one daemon
// invalidates a model's entries on all of them.
//
// # Basics
//
// The registry bucket (Options.Bucket, "tiercache-models") maps each MODEL
// to its current VERSION. The KV key is the model name itself when it is a
// valid KV key made of letters, digits and "-/_=." outside the "_m."
// namespace, otherwise "_m." and the name's unpadded URL-safe base64
// (EncodeModel, DecodeModel); the value is the bare version. So
//
//	nats kv put tiercache-models openai/clip-vit-large-patch14 v2   # a rollout
//	nats kv del tiercache-models openai/clip-vit-large-patch14      # a purge
//
// are what MODEL.ROLLOUT and MODEL.PURGE do (Cluster.Rollout, Purge), and a
// bucket entry's revision (its stream sequence) is the registry revision.
// Publisher writes such changes and returns their revision: Cluster
// publishes through one, and so does tierctl, from hosts without a daemon.
//
// The registry's rules and state belong to package tier: a change is a
// tier.ModelChange, checked when it is made (tier.NewRollout,
// tier.NewPurge), and applied with tier.Registry.ApplyModelsAsync; this
// package only keeps a cache's registry in step with the bucket, through
// Cache, an interface it owns of the five registry calls it makes
// (*tier.Hybrid and *tier.Registry are ones). A change
// is checked once, where it comes in: the bucket is such an edge (any NATS
// client may write to it), so the follower makes each entry's change from
// its decoded key and value; Publisher's and Cluster's Rollout and Purge
// take a change their caller made (the server's command parser, tierctl's
// arguments) and check nothing again. Cluster's Rollout and Purge have the
// signatures of the server's Models interface, and Status is what the
// daemon reports in INFO, so the package depends on tier and not on the
// server. A daemon without NATS starts no Cluster: its registry is a
// tier.LocalRegistry.
//
// Start connects to NATS (Options.URLs: a URL list, or "embedded" for an
// in-process nats-server with JetStream that other daemons join by its
// URL), creates the bucket if it is missing and runs two goroutines (a
// third and a fourth in a fleet: see Membership):
//
//   - the follower watches the bucket with an ordered consumer and applies
//     its changes to the cache with Cache.ApplyModelsAsync (a put
//     sets the version, a delete or purge marker purges the model), passing
//     the last entry's revision. The cache serves the new state as soon as
//     the call returns, without waiting for the disk; in the background it
//     persists the registry with that revision (once for any number of
//     changes) and range-deletes the stale entries. A restart replays the
//     bucket from the persisted revision, so nothing is lost if it crashes
//     first. What has been delivered is applied as one batch (a whole
//     catch-up backlog at once, up to 4096 changes), reduced to at most two
//     changes per model with the same effect (three for a model without a
//     version at the start, whose first rollout keeps the entries written
//     for its version, where a later change drops them), since each change
//     costs the disk tier its range deletes;
//   - the heartbeat writes this daemon's Member entry (node id, revision
//     applied, version, time, peer address) to the members bucket, whose
//     entries expire after MemberTTL, every HeartbeatInterval and right
//     after each change. tierctl's rollout --wait uses MembersIn and
//     WaitAppliedIn on it.
//
// Rollout and Purge write to the bucket and return once this daemon's
// follower applied the revision written, so a client that reads after
// MODEL.ROLLOUT answered sees the new version on this daemon. A change is
// applied only by the follower, in revision order: applying one's own
// change directly could run it ahead of an older change to the same model
// from another daemon, which the follower would then apply over it.
//
// # Catching up
//
// After connecting and after every reconnection the daemon is syncing: it
// reads the stream's bounds and a snapshot of the bucket (the last entry of
// each key), then
//
//   - when every revision after the one it applied is still in the stream,
//     it replays them in order (jetstream.ResumeFromRevision), so each
//     change is applied as it happened; once the backlog is applied it
//     compares the result with the snapshot and fixes what differs, which
//     catches changes a replay cannot see (a delete marker removed by
//     `nats kv purge-deletes`, a recreated bucket that grew past the
//     applied revision);
//   - otherwise (the stream's first revision is past the next one needed,
//     or its last is below the applied one: the bucket was recreated) it
//     resynchronises from the snapshot: models absent or deleted are purged,
//     other differences applied, and a model whose version is the same but
//     whose entry is newer than the applied revision is purged and set again
//     (its history may have been v1, v2, v1, which a replay would have
//     honoured by dropping its entries); a model the cache has no version
//     for is set, purged and set again, which drops what was written for
//     its version before (a first rollout keeps that, another version in
//     between would not); then it follows from the snapshot's revision.
//
// The sync ends once everything the stream held when it began is applied.
// WaitSynced holds its caller until then, but at most SyncTimeout from the
// (re)connection; the server calls it before any model-scoped command, so
// a daemon that was stopped or cut off answers nothing stale once it is
// back. Cut off from NATS, a daemon is not syncing: it serves with the
// registry it has (the contract says keep serving), Rollout and Purge
// answer ErrUnavailable, and nats.go reconnects forever, also to servers
// of the cluster it learnt of while connected.
//
// The follower also checks the stream every two heartbeats: a watch that
// stays behind the stream's last revision (its consumer was lost with a
// NATS node) or a stream whose revisions went back (recreated) restarts the
// session.
//
// # Membership
//
// A daemon of the fleet cache (Options.PeerAddr, announced as Member.Peer)
// keeps a live view of the members bucket: a goroutine watches it
// (KeyValue.WatchAll, one ordered consumer), starts from the bucket's
// entries and applies each put, delete and purge as it comes. Cluster's
// LiveMembers returns the view, sorted by node id, without asking NATS;
// Options.OnMembersChange is called, from a goroutine of its own, when a
// member joins, leaves or changes its peer address (package peer rebuilds
// its ring of owners then). A daemon that closes deletes its entry, so it
// leaves every view at once; one that stops heartbeating (frozen, cut off,
// killed) leaves when its entry expires, MemberTTL after its last
// heartbeat.
//
// An expiry reaches a watch only if the bucket keeps limit markers: a
// nats-server since 2.11 with the stream's SubjectDeleteMarkerTTL set
// (nats.go's KeyValueConfig.LimitMarkerTTL) replaces an entry that ages
// out with a marker ("Nats-Marker-Reason: MaxAge"), which nats.go delivers
// as a purge. Without it the server removes the entry and tells no one. A
// daemon creates the members bucket with markers, and without them when
// the server is older; an operator who creates it adds them with `nats kv
// add … --marker-ttl 15s`. On a bucket without markers (an older server,
// or created by an older daemon or without --marker-ttl), the view drops
// an entry it has not seen refreshed for the bucket's TTL, checked every
// HeartbeatInterval; with markers it does so only after twice the TTL, as
// a safety net for events a watch missed.
//
// Each (re)connection starts a new watch whose first entries replace the
// view, so what happened while the daemon was cut off (daemons that left
// or joined, a members bucket lost with a NATS restart) is caught up at
// once. Cut off, the daemon keeps the view it had: every daemon cut off
// at the same time keeps the same owners for the same keys. A watch that
// delivers nothing for MemberTTL, although this daemon's own heartbeat
// puts an entry every HeartbeatInterval, is restarted the same way (its
// consumer was lost, or the bucket deleted and recreated under it).
//
// A daemon without PeerAddr or OnMembersChange keeps no view and watches
// nothing, so its NATS user needs no permission to create consumers on the
// members bucket; it still announces itself, with an empty peer address.
//
// # Caveats
//
//   - Without NATS, a daemon serves what its persisted registry says; it
//     cannot know of rollouts made meanwhile. Stale answers are bounded by
//     the time it takes to notice the cut (a closed connection at once, a
//     silent one after two missed pings, 10s) plus SyncTimeout on return.
//   - Registry entries with an invalid version, or a key that is not
//     EncodeModel's key of a valid model name, are logged, counted (Status,
//     INFO models_invalid_entries) and skipped: the model keeps the version
//     it had.
//   - tier.Registry's revision only moves forward. After the bucket was
//     deleted and recreated, its revisions restart low: the follower tracks
//     the bucket's revision itself (Status, INFO models_bucket_revision)
//     while models_revision keeps the old, higher value until the new bucket
//     passes it, and a daemon restarted then resynchronises once more.
//   - The members bucket is created with MemberTTL, Replicas and limit
//     markers by the first daemon that needs it; later daemons use it as
//     it is. A daemon leaves it at Close; a frozen or cut-off one drops out
//     after MemberTTL. Without limit markers the members views drop it up
//     to one HeartbeatInterval later, and up to twice the TTL after its
//     last heartbeat if it was in the bucket when a view's watch started
//     (the view times an entry from when it received it).
//   - With a NATS cluster, a rollout stalls while the bucket's stream has no
//     leader: nats-server elects one within its election timeout (seconds)
//     after losing the node that led it. Rollout then fails after
//     SyncTimeout with ErrUnavailable or ErrNotApplied; the caller retries.
//   - The embedded server listens without TLS; with User and Password set it
//     requires them from its clients. Credentials are passed to nats.go and
//     never logged or reported: URLs are logged without user information.
package invalidation
