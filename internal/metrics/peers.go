package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tiercache/tiercache/server"
)

// PeerCollector is a prometheus.Collector over a fleet member's peer fill
// figures: the tiercache_peer_* series, the same as INFO's "# Peers".
// Register it once, only in a daemon that is in a fleet.
type PeerCollector struct {
	info func() server.PeersInfo

	peers, live                                  *prometheus.Desc
	hits, misses, fenced, errors, timeouts, skip *prometheus.Desc
	setsForwarded, setsRefused, setsDropped      *prometheus.Desc
	setsNear                                     *prometheus.Desc
	served, servedHits, setsReceived, setsStale  *prometheus.Desc
	authFailures, bytesIn, bytesOut              *prometheus.Desc
}

var _ prometheus.Collector = (*PeerCollector)(nil)

// NewPeerCollector returns a PeerCollector reading info at every scrape.
// It panics if info is nil (a programming error).
func NewPeerCollector(info func() server.PeersInfo) *PeerCollector {
	if info == nil {
		panic("metrics: NewPeerCollector: info is nil")
	}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("tiercache_peer_"+name, help, nil, nil)
	}
	return &PeerCollector{
		info:          info,
		peers:         d("members", "Other fleet members with a peer address."),
		live:          d("members_live", "Other fleet members this daemon is not avoiding after a failure."),
		hits:          d("hits_total", "Lookups that missed locally and were served from the key's owner."),
		misses:        d("misses_total", "Lookups the key's owner could not serve: absent, expired, or another version (fenced)."),
		fenced:        d("fenced_total", "Records an owner sent that were refused: stored under another model version than this daemon's."),
		errors:        d("errors_total", "Lookups of an owner that failed: refused, reset, an error reply."),
		timeouts:      d("timeouts_total", "Lookups of an owner that got no answer within --peer-timeout."),
		skip:          d("skipped_total", "Lookups not sent because their owner had just failed (its breaker was open)."),
		setsForwarded: d("sets_forwarded_total", "Writes forwarded to their owner and stored there."),
		setsRefused:   d("sets_refused_total", "Writes forwarded to their owner and refused (another model version)."),
		setsDropped:   d("sets_dropped_total", "Writes that never reached their owner: full queue, owner down."),
		setsNear:      d("sets_near_total", "Writes of keys other members own kept here in memory only, the owner storing them."),
		served:        d("served_total", "Lookups this daemon answered for other members."),
		servedHits:    d("served_hits_total", "Lookups this daemon answered for other members with a value."),
		setsReceived:  d("sets_received_total", "Writes other members forwarded that this daemon stored."),
		setsStale:     d("sets_stale_total", "Writes other members forwarded that this daemon refused (another model version)."),
		authFailures:  d("auth_failures_total", "Peer connections refused: no or wrong password, or no valid certificate."),
		bytesIn:       d("bytes_in_total", "Bytes read from peers, both directions of the peer protocol, TLS included."),
		bytesOut:      d("bytes_out_total", "Bytes written to peers, both directions of the peer protocol, TLS included."),
	}
}

// Describe sends the descriptors of every metric the collector exports.
func (c *PeerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.peers, c.live, c.hits, c.misses, c.fenced, c.errors, c.timeouts, c.skip,
		c.setsForwarded, c.setsRefused, c.setsDropped, c.setsNear, c.served, c.servedHits, c.setsReceived, c.setsStale,
		c.authFailures, c.bytesIn, c.bytesOut,
	} {
		ch <- d
	}
}

// Collect reads one snapshot and sends it.
func (c *PeerCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.info()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(p.Peers))
	ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(p.Live))
	counter(c.hits, p.Hits)
	counter(c.misses, p.Misses)
	counter(c.fenced, p.Fenced)
	counter(c.errors, p.Errors)
	counter(c.timeouts, p.Timeouts)
	counter(c.skip, p.Skipped)
	counter(c.setsForwarded, p.SetsForwarded)
	counter(c.setsRefused, p.SetsRefused)
	counter(c.setsDropped, p.SetsDropped)
	counter(c.setsNear, p.SetsNear)
	counter(c.served, p.Served)
	counter(c.servedHits, p.ServedHits)
	counter(c.setsReceived, p.SetsReceived)
	counter(c.setsStale, p.SetsStale)
	counter(c.authFailures, p.AuthFailures)
	counter(c.bytesIn, p.BytesIn)
	counter(c.bytesOut, p.BytesOut)
}
