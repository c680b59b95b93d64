package server

import (
	"context"
	"strings"
	"testing"
)

// INFO "# Peers" shows the fleet member's figures, after "# Cluster";
// a daemon outside a fleet has no such section.
func TestInfoPeers(t *testing.T) {
	ctx := context.Background()
	alone := startServer(t, nil).client(t, nil)
	if info := alone.Info(ctx).Val(); strings.Contains(info, "# Peers") {
		t.Fatalf("INFO of a daemon outside a fleet has a Peers section:\n%s", info)
	}

	rdb := startServer(t, func(o *Options) {
		o.Peers = func() PeersInfo {
			return PeersInfo{Listen: "10.0.0.1:7000", Peers: 2, Live: 1, Hits: 3, Misses: 1, SetsForwarded: 4, SetsDropped: 5, SetsNear: 8, BytesIn: 6, BytesOut: 7}
		}
	}).client(t, nil)
	info := rdb.Info(ctx).Val()
	if i, j := strings.Index(info, "# Cluster"), strings.Index(info, "# Peers"); i < 0 || j < i {
		t.Fatalf("no Peers section after Cluster:\n%s", info)
	}
	p := parseInfo(t, rdb.Info(ctx, "peers").Val())["Peers"]
	for name, want := range map[string]string{
		"peer_listen": "10.0.0.1:7000", "peers_live": "1", "peer_hits": "3", "peer_misses": "1", "peer_errors": "0",
		"peer_timeouts": "0", "peer_sets_forwarded": "4", "peer_sets_dropped": "5", "peer_sets_near": "8", "peer_bytes_in": "6",
		"peer_bytes_out": "7", "peer_hit_ratio": "0.7500",
	} {
		if p[name] != want {
			t.Errorf("%s:%s, want %s", name, p[name], want)
		}
	}
}
