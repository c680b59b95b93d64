// Package metrics exports tiercache's counters to Prometheus.
//
// Collector reads a tier.HybridStats snapshot at every scrape and turns it
// into tiercache_* metrics; nothing is counted twice and nothing runs
// between scrapes. The RESP server registers its own metrics (connections,
// commands, command latency) on the same registry. NewRegistry returns
// the registry the daemon serves on /metrics: the Go runtime and process
// collectors, and whatever the daemon's parts register.
//
// # Metrics
//
// Names follow the Prometheus conventions: counters end in _total, sizes
// are in bytes and end in _bytes, and a per-tier value carries a
// tier="l1"|"l2" label rather than a name per tier, so that
// sum by (tier) and ratios work across them:
//
//	tiercache_hits_total, tiercache_misses_total        GET lookups, all tiers
//	tiercache_tier_hits_total{tier}, …_misses_total     lookups per tier
//	tiercache_promotions_total, tiercache_demotions_total
//	tiercache_evictions_total{tier}
//	tiercache_tier_bytes{tier}, tiercache_tier_max_bytes{tier}, tiercache_tier_keys{tier}
//	tiercache_l2_corrupt_entries_total, tiercache_l2_read_errors_total,
//	tiercache_l2_write_errors_total, tiercache_l2_storage_errors_total
//	tiercache_pending_write_bytes, tiercache_pending_writes_dropped_total
//	tiercache_stale_writes_rejected_total
//	tiercache_models_revision, tiercache_models_known, tiercache_rollouts_applied_total
//	tiercache_write_policy_info{policy}
//	tiercache_model_hits_total{model}, tiercache_model_misses_total{model}
//
// The per-model series come from tier.Hybrid.ModelStats: one model label
// per model the registry has a version for (so their number is bounded by
// the registry), plus "{unscoped}" for plain keys and "{unregistered}" for
// keys of models the registry does not know; braces cannot occur in a model
// name, so these never collide with one.
//
// # Caveats
//
// tiercache_tier_bytes{tier="l2"} is Pebble's own measure of the data
// directory as the disk tier last sampled it, so it lags writes by up to the
// disk tier's maintenance interval.
package metrics
