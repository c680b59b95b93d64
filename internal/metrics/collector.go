package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/tiercache/tiercache/tier"
)

// Collector is a prometheus.Collector over a Hybrid's counters. Register
// it once; it calls its stats function at every scrape.
type Collector struct {
	stats  func() tier.HybridStats
	models func() tier.ModelStats // nil: no per-model series

	hits, misses           *prometheus.Desc
	tierHits, tierMisses   *prometheus.Desc
	promotions, demotions  *prometheus.Desc
	evictions              *prometheus.Desc
	admitted, rejected     *prometheus.Desc
	bytes, maxBytes, keys  *prometheus.Desc
	corrupt                *prometheus.Desc
	readErrors, writeErrs  *prometheus.Desc
	storageErrors          *prometheus.Desc
	l2WriteBytes           *prometheus.Desc
	l2SecondChances        *prometheus.Desc
	pendingBytes, dropped  *prometheus.Desc
	staleWrites            *prometheus.Desc
	modelsRev, modelsKnown *prometheus.Desc
	rollouts               *prometheus.Desc
	writePolicy            *prometheus.Desc
	modelHits, modelMisses *prometheus.Desc

	// The warm-up of L1 after start (tier.HybridStats.Warmup*).
	warmupDone, warmupBytes, warmupKeys *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// Model label values of the per-model series for keys that are not a
// registered model's: model names cannot contain braces, so these never
// collide with one.
const (
	UnscopedModel     = "{unscoped}"
	UnregisteredModel = "{unregistered}"
)

// NewCollector returns a Collector reading stats, typically
// (*tier.Hybrid).Stats, and models, typically (*tier.Hybrid).ModelStats
// (nil: no per-model series). It panics if stats is nil (a programming
// error).
func NewCollector(stats func() tier.HybridStats, models func() tier.ModelStats) *Collector {
	if stats == nil {
		panic("metrics: NewCollector: stats is nil")
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tiercache_"+name, help, labels, nil)
	}
	return &Collector{
		stats:           stats,
		models:          models,
		modelHits:       d("model_hits_total", "Lookups of a model's keys that found a live entry, by model in the registry ({unscoped}: plain keys; {unregistered}: keys of models the registry has no version for).", "model"),
		modelMisses:     d("model_misses_total", "Lookups of a model's keys that found nothing, by model as tiercache_model_hits_total.", "model"),
		hits:            d("hits_total", "Lookups that found a live entry, in any tier."),
		misses:          d("misses_total", "Lookups that found no live entry in any tier."),
		tierHits:        d("tier_hits_total", "Lookups answered by a tier.", "tier"),
		tierMisses:      d("tier_misses_total", "Lookups a tier could not answer.", "tier"),
		promotions:      d("promotions_total", "L2 hits copied up to L1."),
		demotions:       d("demotions_total", "L1 entries written down to L2 on eviction or at shutdown."),
		evictions:       d("evictions_total", "Entries a tier removed to make space.", "tier"),
		admitted:        d("admitted_total", "Entries a tier's admission let in: L1, into its eviction policy's main queue; L2, entries L1 evicted that were written down.", "tier"),
		rejected:        d("rejected_total", "Entries a tier's admission turned away: L1, entries its policy let go unread (one-hit wonders); L2, those of them not written because L2 was full.", "tier"),
		bytes:           d("tier_bytes", "Bytes a tier holds (L2: the data directory on disk).", "tier"),
		maxBytes:        d("tier_max_bytes", "Configured capacity of a tier in bytes.", "tier"),
		keys:            d("tier_keys", "Entries a tier holds.", "tier"),
		corrupt:         d("l2_corrupt_entries_total", "L2 entries that failed their checksum and were dropped."),
		readErrors:      d("l2_read_errors_total", "L2 reads that failed and were served as misses."),
		writeErrs:       d("l2_write_errors_total", "L2 batch commits that failed and were retried."),
		storageErrors:   d("l2_storage_errors_total", "I/O errors the disk tier saw, its background work included."),
		l2SecondChances: d("l2_second_chances_total", "Entries the disk tier rewrote when their generation was dropped instead of evicting them, having been read since written (INFO's l2_second_chances)."),
		l2WriteBytes:    d("l2_write_bytes_total", "Bytes the disk tier wrote to the files of its directory since start: WAL, sstables, blob files and MANIFEST, flushes and compactions included (what reaches the device, before the filesystem's and the device's own amplification)."),
		pendingBytes:    d("pending_write_bytes", "Bytes of writes waiting to reach L2."),
		dropped:         d("pending_writes_dropped_total", "Queued L2 writes shed while L2 was failing (they stay in L1)."),
		staleWrites:     d("stale_writes_rejected_total", "Writes refused because their model is at another version."),
		modelsRev:       d("models_revision", "Model registry revision this daemon has applied."),
		modelsKnown:     d("models_known", "Models with a current version in the registry."),
		rollouts:        d("rollouts_applied_total", "Model changes (rollouts and purges) applied."),
		writePolicy:     d("write_policy_info", "The write policy in force; the value is always 1.", "policy"),

		warmupDone:  d("l1_warmup_done", "1 once the warm-up of L1 after start has ended (or when it is off), 0 while it runs."),
		warmupBytes: d("l1_warmup_bytes_total", "Bytes of keys and values the warm-up after start copied from L2 to L1."),
		warmupKeys:  d("l1_warmup_keys_total", "Entries the warm-up after start copied from L2 to L1."),
	}
}

// Describe sends the descriptors of every metric the collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.hits, c.misses, c.tierHits, c.tierMisses, c.promotions, c.demotions,
		c.evictions, c.admitted, c.rejected, c.bytes, c.maxBytes, c.keys, c.corrupt, c.readErrors,
		c.writeErrs, c.storageErrors, c.l2WriteBytes, c.l2SecondChances, c.pendingBytes, c.dropped, c.staleWrites,
		c.modelsRev, c.modelsKnown, c.rollouts, c.writePolicy, c.modelHits, c.modelMisses,
		c.warmupDone, c.warmupBytes, c.warmupKeys,
	} {
		ch <- d
	}
}

// Collect reads one snapshot of the sources and sends it.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.hits, s.Hits)
	counter(c.misses, s.Misses)
	counter(c.tierHits, s.L1Hits, "l1")
	counter(c.tierHits, s.L2Hits, "l2")
	counter(c.tierMisses, s.L1Misses, "l1")
	counter(c.tierMisses, s.L2Misses, "l2")
	counter(c.promotions, s.Promotions)
	counter(c.demotions, s.Demotions)
	for _, t := range []struct {
		name string
		st   tier.Stats
	}{{"l1", s.L1}, {"l2", s.L2}} {
		counter(c.evictions, t.st.Evictions, t.name)
		counter(c.admitted, t.st.Admitted, t.name)
		counter(c.rejected, t.st.Rejected, t.name)
		gauge(c.bytes, float64(t.st.Bytes), t.name)
		gauge(c.maxBytes, float64(t.st.MaxBytes), t.name)
		gauge(c.keys, float64(t.st.Keys), t.name)
	}
	counter(c.corrupt, s.L2.Corrupt)
	counter(c.readErrors, s.L2ReadErrors)
	counter(c.writeErrs, s.L2WriteErrors)
	counter(c.storageErrors, s.L2.Errors)
	counter(c.l2WriteBytes, s.L2.Written)
	counter(c.l2SecondChances, s.L2.SecondChances)
	gauge(c.pendingBytes, float64(s.PendingBytes))
	counter(c.dropped, s.PendingDropped)
	counter(c.staleWrites, s.StaleWrites)
	gauge(c.modelsRev, float64(s.ModelsRevision))
	gauge(c.modelsKnown, float64(s.ModelsKnown))
	counter(c.rollouts, s.RolloutsApplied)
	gauge(c.writePolicy, 1, s.WritePolicy.String())
	warmupDone := 0.0
	if s.WarmupDone {
		warmupDone = 1
	}
	gauge(c.warmupDone, warmupDone)
	counter(c.warmupBytes, uint64(s.WarmupBytes))
	counter(c.warmupKeys, s.WarmupKeys)
	if c.models != nil {
		m := c.models()
		for _, mc := range m.Models {
			counter(c.modelHits, mc.Hits, mc.Model)
			counter(c.modelMisses, mc.Misses, mc.Model)
		}
		counter(c.modelHits, m.Unscoped.Hits, UnscopedModel)
		counter(c.modelMisses, m.Unscoped.Misses, UnscopedModel)
		counter(c.modelHits, m.Unregistered.Hits, UnregisteredModel)
		counter(c.modelMisses, m.Unregistered.Misses, UnregisteredModel)
	}
}

// NewRegistry returns a registry holding the Go runtime and process
// collectors, for the daemon's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
