// Command tierctl is the operator's CLI for tiercache: it publishes model
// rollouts and purges, lists the model registry and the cluster's daemons,
// and shows a daemon's tiers.
//
//	tierctl [--socket PATH] [--nats URL] COMMAND
//
//	rollout MODEL VERSION [--wait DUR]   publish a rollout; with --wait, exit 0
//	                                     once every live daemon has applied it,
//	                                     else exit 1 naming those that have not
//	models                               the registry: MODEL VERSION REVISION
//	purge MODEL                          delete MODEL from the registry
//	stats                                the local daemon's tiers and hit rates, per tier and per model
//	members                              the live daemons: NODE PEER STATE applied=REVISION SHARE
//
// tierctl talks to NATS directly when --nats is given (so a host without a
// daemon can publish), otherwise to the daemon on --socket, and then to the
// NATS server the daemon reports in INFO (nats_url) for what needs the
// cluster (the --wait barrier, revisions). With a standalone daemon
// (--nats off) rollouts and purges apply to that daemon only.
//
// MODEL and VERSION are checked with the registry's rules (tier.NewRollout,
// tier.NewPurge) before anything is contacted: an invalid one exits 2 with
// the rule it breaks, and what is published is the checked change.
//
// members prints one line per daemon in the members bucket (those that
// heartbeat: a daemon that closed or stopped answering for its TTL is not
// there), sorted by node id: its node id, the peer address other daemons
// dial ("-" when it serves no peers), its state ("live"), the registry
// revision it applied, and its share of the keys: the fraction of 100,000
// sample keys that rendezvous hashing over the members with a peer address
// gives it ("-" when it has none).
//
// NATS authentication: --nats-creds FILE, --nats-nkey FILE (an NKey user
// seed), --nats-user/--nats-password, and --nats-tls-ca/-cert/-key (or
// the TIERCACHE_NATS_* variables). A rollout or purge the NATS account may
// not publish fails at once with the server's permissions violation
// (exit 2).
package main
