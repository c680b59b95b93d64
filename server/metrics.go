package server

import (
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBounds are the upper bounds, in seconds, of the command latency
// histogram's buckets.
var latencyBounds = []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.5, 2}

// cmdShards is how many copies of the command counters there are; a
// connection counts into copy id % cmdShards, so connections served by
// different cores rarely write the same cache line.
const cmdShards = 16

// cmdStats counts every command run and its latency, by command: the
// histogram tiercache_command_duration_seconds{command} and INFO's
// total_commands_processed. A prometheus.HistogramVec costs a few atomic
// operations on counters every connection shares; these are split in
// cmdShards copies and summed when read.
type cmdStats struct {
	names    []string // command index → name; the last is "unknown"
	boundsNs []int64
	stride   int // counters per command: one per bucket, +Inf, then the sum in ns
	shards   [cmdShards][]atomic.Uint64
	desc     *prometheus.Desc
}

func newCmdStats() *cmdStats {
	s := &cmdStats{names: append(commandNames(), "unknown"), stride: len(latencyBounds) + 2}
	for _, b := range latencyBounds {
		s.boundsNs = append(s.boundsNs, int64(b*1e9))
	}
	for i := range s.shards {
		// 64 bytes of padding on either side: shards never share a line.
		s.shards[i] = make([]atomic.Uint64, len(s.names)*s.stride+16)[8:]
	}
	s.desc = prometheus.NewDesc("tiercache_command_duration_seconds",
		"Time to run a command, from parsed request to reply queued, by command.", []string{"command"}, nil)
	return s
}

// observe counts one run of command idx (cmdUnknown for an unknown command)
// that took d, into shard.
func (s *cmdStats) observe(shard uint64, idx int, d time.Duration) {
	ns := d.Nanoseconds()
	b := 0
	for b < len(s.boundsNs) && ns > s.boundsNs[b] {
		b++
	}
	row := s.shards[shard%cmdShards][idx*s.stride : (idx+1)*s.stride]
	row[b].Add(1)
	row[s.stride-1].Add(uint64(ns))
}

// counts returns the bucket counts (not cumulative, +Inf last) and the
// total time in ns of command idx, all shards together.
func (s *cmdStats) counts(idx int) ([]uint64, uint64) {
	buckets := make([]uint64, s.stride-1)
	var sum uint64
	for i := range s.shards {
		row := s.shards[i][idx*s.stride : (idx+1)*s.stride]
		for b := range buckets {
			buckets[b] += row[b].Load()
		}
		sum += row[s.stride-1].Load()
	}
	return buckets, sum
}

// total returns the number of commands run.
func (s *cmdStats) total() uint64 {
	var n uint64
	for i := range s.shards {
		for idx := range s.names {
			row := s.shards[i][idx*s.stride : (idx+1)*s.stride]
			for b := 0; b < s.stride-1; b++ {
				n += row[b].Load()
			}
		}
	}
	return n
}

// Describe implements prometheus.Collector.
func (s *cmdStats) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

// Collect implements prometheus.Collector: one histogram per command.
func (s *cmdStats) Collect(ch chan<- prometheus.Metric) {
	for idx, name := range s.names {
		buckets, sum := s.counts(idx)
		cum := make(map[float64]uint64, len(latencyBounds))
		var n uint64
		for b, bound := range latencyBounds {
			n += buckets[b]
			cum[bound] = n
		}
		n += buckets[len(buckets)-1]
		ch <- prometheus.MustNewConstHistogram(s.desc, n, float64(sum)/1e9, cum, name)
	}
}

// registerMetrics registers the server's Prometheus metrics: the command
// latency histograms and the connection gauges. The cache's own counters
// are exported by the daemon's collector.
func registerMetrics(reg prometheus.Registerer, s *Server) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		s.cmds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tiercache_connected_clients", Help: "Client connections open now."},
			func() float64 { return float64(s.connected.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tiercache_memory_bound_bytes", Help: "The bound the daemon's resident memory stays under, computed from its settings (0: not computed)."},
			func() float64 { return float64(s.opts.MemoryBound) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tiercache_inflight_bytes", Help: "Bytes of request arguments held now (the in-flight budget in use)."},
			func() float64 { return float64(s.budget.inUse.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tiercache_budget_waiting_clients", Help: "Connections waiting for in-flight budget before reading a request's arguments."},
			func() float64 { return float64(s.budget.waiting.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_connections_received_total", Help: "Client connections accepted."},
			func() float64 { return float64(s.totalConns.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_connections_rejected_total", Help: "Client connections refused at the max-clients cap."},
			func() float64 { return float64(s.rejected.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_commands_processed_total", Help: "Commands run."},
			func() float64 { return float64(s.cmds.total()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_auth_failures_total", Help: "Failed AUTH attempts."},
			func() float64 { return float64(s.authFailures.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_leases_granted_total", Help: "Leases granted by LEASE.GET/LEASE.MGET, including those handed over to a waiter."},
			func() float64 { return float64(s.leases.Stats().Granted) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_lease_waits_total", Help: "Keys a LEASE.GET/LEASE.MGET waited for because another client held their lease."},
			func() float64 { return float64(s.leases.Stats().Waits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_lease_wakeups_total", Help: "Waiters answered with the value a SET stored."},
			func() float64 { return float64(s.leases.Stats().Wakeups) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_leases_expired_total", Help: "Leases that reached their TTL before a SET completed them."},
			func() float64 { return float64(s.leases.Stats().Expired) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tiercache_leases_active", Help: "Keys with a lease held now."},
			func() float64 { return float64(s.leases.Stats().Active) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tiercache_lease_waiters", Help: "Clients waiting for a lease's key now, counted per key."},
			func() float64 { return float64(s.leases.Stats().Waiting) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_leases_refused_total", Help: "LEASE.GET/LEASE.MGET refused because the daemon held --max-leases leases and waiters."},
			func() float64 { return float64(s.leases.Stats().Refused) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("server: registering metrics: %w", err)
		}
	}
	return nil
}

// commandNames returns the names of every command, sorted.
func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
