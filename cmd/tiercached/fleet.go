package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/tiercache/tiercache/invalidation"
	"github.com/tiercache/tiercache/peer"
	"github.com/tiercache/tiercache/server"
	"go.uber.org/zap"
)

// A fleet member's cache is the server's cache and takes its leases.
var (
	_ server.Cache  = (*peer.Cache)(nil)
	_ server.Leaser = (*peer.Cache)(nil)
)

// fleet is what a daemon in the fleet cache (--peer-listen) runs besides
// the rest: the peer server answering the keys it owns, the ring of
// owners that membership changes update, and the client asking owners.
type fleet struct {
	server    *peer.Server
	ring      *peer.Ring
	client    *peer.Client
	cache     *peer.Cache // the daemon's Hybrid as the RESP server sees it
	advertise string      // the address announced to the other members
	log       *zap.Logger
}

// openFleet starts the peer server on --peer-listen and the client. The
// ring is empty until the cluster reports the members: until then every
// key is this daemon's own.
func (d *daemon) openFleet() (*fleet, error) {
	o := &d.opts
	var serverTLS, clientTLS *tls.Config
	if o.peerTLS() {
		var err error
		serverTLS, clientTLS, err = peer.LoadMutualTLS(o.PeerTLSCert, o.PeerTLSKey, o.PeerTLSCA)
		if err != nil {
			return nil, fmt.Errorf("--peer-tls-cert: %w", err)
		}
	}
	log := d.log.Named("peer")
	srv, err := peer.NewServer(peer.ServerOptions{
		Listen:   o.PeerListen,
		NodeID:   o.NodeID,
		Store:    d.cache,
		Password: o.PeerPassword,
		TLS:      serverTLS,
		MaxValue: int(o.MaxValue),
		Logger:   log,
		Leases:   d.leases, // a forwarded SET completes the owner's lease
	})
	if err != nil {
		return nil, listenErr("--peer-listen", o.PeerListen, err)
	}
	f := &fleet{server: srv, ring: peer.NewRing(nil), advertise: o.PeerAdvertise, log: log}
	if f.advertise == "" {
		// The address listened on names a host (Validate): with port 0,
		// the port the system chose.
		host, _, _ := net.SplitHostPort(o.PeerListen)
		_, port, _ := net.SplitHostPort(srv.Addr().String())
		f.advertise = net.JoinHostPort(host, port)
	}
	f.client, err = peer.NewClient(peer.ClientOptions{
		Ring:     f.ring,
		Self:     o.NodeID,
		Password: o.PeerPassword,
		TLS:      clientTLS,
		Timeout:  o.PeerTimeout,
		MaxValue: int(o.MaxValue),
		Logger:   log,
	})
	if err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("peer client: %w", err)
	}
	f.cache = peer.NewCache(d.cache, f.client)
	return f, nil
}

// membersChanged rebuilds the ring from the live members that serve
// peers (invalidation.Options.OnMembersChange).
func (f *fleet) membersChanged(members []invalidation.Member) {
	ms := make([]peer.Member, 0, len(members))
	for _, m := range members {
		if m.Peer != "" {
			ms = append(ms, peer.Member{ID: m.Node, Addr: m.Peer})
		}
	}
	f.ring.Update(ms)
	f.log.Info("fleet members", zap.Int("members", len(ms)), zap.Any("ids", memberIDs(ms)))
}

func memberIDs(ms []peer.Member) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

// info is INFO's "# Peers" section and the tiercache_peer_* series.
func (f *fleet) info() server.PeersInfo {
	c, s := f.cache.PeerStats(), f.server.Stats()
	return server.PeersInfo{
		Listen: f.advertise,
		Peers:  c.Peers, Live: c.PeersLive,
		Hits: c.Hits, Misses: c.Misses, Fenced: c.Fenced,
		Errors: c.Errors, Timeouts: c.Timeouts, Skipped: c.Skipped,
		SetsForwarded: c.SetsForwarded, SetsRefused: c.SetsRefused, SetsDropped: c.SetsDropped,
		SetsNear: f.cache.NearWrites(),
		Served:   s.Gets, ServedHits: s.Hits, SetsReceived: s.Sets, SetsStale: s.Stale,
		AuthFailures: s.AuthFailures,
		BytesIn:      c.BytesIn + s.BytesIn, BytesOut: c.BytesOut + s.BytesOut,
	}
}

// close stops serving peers, sends the writes still queued for their
// owners (until ctx ends), then stops asking peers. A write not sent by
// then is dropped, and its near copy stored here instead (see
// peer.NewCache). It is idempotent (both Close methods are).
func (f *fleet) close(ctx context.Context) {
	_ = f.server.Close()
	if err := f.client.Flush(ctx); err != nil {
		st := f.client.Stats()
		f.log.Warn("forwarded writes not sent before the shutdown timeout; their values are kept here",
			zap.Int64("queued_bytes", st.QueuedBytes), zap.Error(err))
	}
	_ = f.client.Close()
}
