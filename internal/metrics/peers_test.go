package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tiercache/tiercache/server"
)

func TestPeerCollectorValues(t *testing.T) {
	c := NewPeerCollector(func() server.PeersInfo {
		return server.PeersInfo{Peers: 2, Live: 1, Hits: 7, Misses: 3, Timeouts: 1, SetsForwarded: 4, SetsDropped: 2, SetsNear: 9, BytesIn: 100, BytesOut: 50}
	})
	want := `
# HELP tiercache_peer_hits_total Lookups that missed locally and were served from the key's owner.
# TYPE tiercache_peer_hits_total counter
tiercache_peer_hits_total 7
# HELP tiercache_peer_members_live Other fleet members this daemon is not avoiding after a failure.
# TYPE tiercache_peer_members_live gauge
tiercache_peer_members_live 1
# HELP tiercache_peer_sets_dropped_total Writes that never reached their owner: full queue, owner down.
# TYPE tiercache_peer_sets_dropped_total counter
tiercache_peer_sets_dropped_total 2
# HELP tiercache_peer_sets_near_total Writes of keys other members own kept here in memory only, the owner storing them.
# TYPE tiercache_peer_sets_near_total counter
tiercache_peer_sets_near_total 9
# HELP tiercache_peer_timeouts_total Lookups of an owner that got no answer within --peer-timeout.
# TYPE tiercache_peer_timeouts_total counter
tiercache_peer_timeouts_total 1
`
	err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"tiercache_peer_hits_total", "tiercache_peer_members_live", "tiercache_peer_sets_dropped_total", "tiercache_peer_sets_near_total", "tiercache_peer_timeouts_total")
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c); n != 19 {
		t.Fatalf("%d series, want 19", n)
	}
}
