package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/tiercache/tiercache/internal/testutil"
)

// RunServer starts a single NATS server with JetStream on a random port of
// 127.0.0.1, its store in t.TempDir(), and shuts it down in t.Cleanup.
// opts may be nil; its Host, Port (0), JetStream, StoreDir (""), NoLog and
// NoSigs are set as needed.
func RunServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	var o server.Options
	if opts != nil {
		o = *opts
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	o.JetStream = true
	o.NoLog, o.NoSigs = true, true
	s := start(t, &o)
	t.Cleanup(func() { shutdown(s) })
	return s
}

func start(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		shutdown(s)
		t.Fatalf("natstest: server %s not ready", o.ServerName)
	}
	return s
}

func shutdown(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// Cluster is an in-process JetStream cluster.
type Cluster struct {
	t    testing.TB
	name string

	mu      sync.Mutex        // guards the fields below
	servers []*server.Server  // nil for a stopped node
	opts    []*server.Options // how each node starts again: same name, ports, store
	addrs   []*net.TCPAddr    // each node's route address
	clients []string          // each node's client URL
}

// RunCluster starts an n-node JetStream cluster on random ports and waits
// until its meta group has a leader and every node as a peer. Nodes are
// shut down in t.Cleanup.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, name: fmt.Sprintf("natstest-%d", time.Now().UnixNano()%1e6)}
	t.Cleanup(c.shutdownAll)
	// A clustered JetStream server needs its routes configured when it
	// starts, so the route ports are chosen first.
	for range n {
		c.addrs = append(c.addrs, freeAddr(t))
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("%s-n%d", c.name, i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: c.name,
				Host: "127.0.0.1",
				Port: c.addrs[i].Port,
			},
			Routes: c.routesExcept(i),
		}
		s := start(t, o)
		// Fix the client port so that a restarted node comes back where
		// its clients expect it.
		o.Port = s.Addr().(*net.TCPAddr).Port
		c.mu.Lock()
		c.servers = append(c.servers, s)
		c.opts = append(c.opts, o)
		c.clients = append(c.clients, s.ClientURL())
		c.mu.Unlock()
	}
	c.WaitReady()
	return c
}

// freeAddr returns a TCP address of 127.0.0.1 that was free a moment ago.
func freeAddr(t testing.TB) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr)
}

func (c *Cluster) routesExcept(skip int) []*url.URL {
	c.mu.Lock()
	defer c.mu.Unlock()
	var routes []*url.URL
	for i, a := range c.addrs {
		if i != skip {
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: a.String()})
		}
	}
	return routes
}

// Len returns the number of nodes, running or not.
func (c *Cluster) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.opts)
}

// Server returns node i, or nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// URL returns node i's client URL (stable across restarts).
func (c *Cluster) URL(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clients[i]
}

// URLs returns every node's client URL, comma-separated.
func (c *Cluster) URLs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.clients, ",")
}

// Stop shuts node i down (it can be started again with Restart).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		shutdown(s)
	}
}

// Restart shuts node i down if it is running and starts it again with the
// same name, ports and store, then waits for the cluster to be ready.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	c.mu.Lock()
	o := *c.opts[i]
	c.mu.Unlock()
	s := start(c.t, &o)
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	c.WaitReady()
}

// Leader returns the running node that leads the JetStream meta group, or
// nil.
func (c *Cluster) Leader() *server.Server {
	for _, s := range c.running() {
		if s.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

func (c *Cluster) running() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*server.Server
	for _, s := range c.servers {
		if s != nil && s.Running() {
			out = append(out, s)
		}
	}
	return out
}

// WaitReady waits until the meta group has a leader that counts every node
// (running or not) as a peer, and every running node is current.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	n := c.Len()
	testutil.CheckFor(c.t, 60*time.Second, func() error {
		l := c.Leader()
		if l == nil {
			return fmt.Errorf("no JetStream meta leader")
		}
		if p := len(l.JetStreamClusterPeers()); p != n {
			return fmt.Errorf("meta leader %s has %d peers, want %d", l.Name(), p, n)
		}
		for _, s := range c.running() {
			if !s.JetStreamIsCurrent() {
				return fmt.Errorf("node %s is not current", s.Name())
			}
		}
		return nil
	})
}

func (c *Cluster) shutdownAll() {
	for i := range c.Len() {
		c.Stop(i)
	}
}

// TCPProxy relays TCP connections to a target; Cut disconnects every
// client and refuses new ones (they are accepted and closed at once) until
// Restore.
type TCPProxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu    sync.Mutex // guards the fields below
	cut   bool
	conns map[net.Conn]struct{}
}

// Proxy starts a TCP proxy on 127.0.0.1:0 to target, a host:port or a NATS
// URL; it is closed in t.Cleanup.
func Proxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		target = u.Host
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: proxy: %v", err)
	}
	p := &TCPProxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// URL returns the proxy's address as a NATS URL.
func (p *TCPProxy) URL() string { return "nats://" + p.ln.Addr().String() }

// Cut closes every relayed connection and refuses new ones.
func (p *TCPProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore lets connections through again.
func (p *TCPProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, up) {
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// track registers a relayed pair, unless the proxy was cut meanwhile.
func (p *TCPProxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		_ = a.Close()
		_ = b.Close()
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	return true
}

func (p *TCPProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *TCPProxy) close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
