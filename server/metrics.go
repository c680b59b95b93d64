package server

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics: a latency histogram per
// command and connection counters. The cache's own counters are exported
// by the daemon's collector.
type metrics struct {
	latency map[string]prometheus.Observer
	unknown prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tiercache_command_duration_seconds",
		Help:    "Time to run a command, from parsed request to reply queued, by command.",
		Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.5, 2},
	}, []string{"command"})
	m := &metrics{latency: make(map[string]prometheus.Observer, len(commands))}
	for name := range commands {
		m.latency[name] = hist.WithLabelValues(name)
	}
	m.unknown = hist.WithLabelValues("unknown")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		hist,
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
			func() float64 { return float64(s.totalCommands.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tiercache_auth_failures_total", Help: "Failed AUTH attempts."},
			func() float64 { return float64(s.authFailures.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(name string, d time.Duration) {
	o, ok := m.latency[name]
	if !ok {
		o = m.unknown
	}
	o.Observe(d.Seconds())
}
