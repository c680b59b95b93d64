package peer

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/tier"
)

// newClient starts a client, closed when the test ends.
func newClient(t testing.TB, o ClientOptions) *Client {
	t.Helper()
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pair is the smallest fleet: member "a" owns keys in its Hybrid and
// serves them; member "b" asks a for them through its Client.
type pair struct {
	a      *tier.Hybrid
	server *Server
	ring   *Ring
	b      *Client
}

// newPair starts a pair; so and co adjust the options (nil: defaults),
// and addr, when not empty, replaces the address b dials for a (a proxy).
func newPair(t testing.TB, so func(*ServerOptions), co func(*ClientOptions)) *pair {
	t.Helper()
	p := &pair{a: openHybrid(t)}
	sopts := ServerOptions{Store: p.a, NodeID: "a"}
	if so != nil {
		so(&sopts)
	}
	p.server = startServer(t, sopts)
	p.ring = NewRing([]Member{{ID: "a", Addr: p.server.Addr().String()}, {ID: "b", Addr: "b.invalid:1"}})
	copts := ClientOptions{Ring: p.ring, Self: "b"}
	if co != nil {
		co(&copts)
	}
	p.b = newClient(t, copts)
	return p
}

// wantHit checks that c.Get(key) is a hit with value v.
func wantHit(t testing.TB, c *Client, key, v []byte) tier.Record {
	t.Helper()
	r, ok := c.Get(key)
	if !ok {
		t.Fatalf("Get(%q): miss, want a hit (stats %+v)", key, c.Stats())
	}
	if !bytes.Equal(r.Value(), v) {
		t.Fatalf("Get(%q): value of %d bytes, want the %d stored", key, len(r.Value()), len(v))
	}
	return r
}

// gatedStore is a Hybrid whose PeerGets and SetTaggeds wait while the gate is
// shut: an owner that is busy, while its connections stay up.
type gatedStore struct {
	*tier.Hybrid
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGatedStore(h *tier.Hybrid) *gatedStore {
	g := &gatedStore{Hybrid: h, open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gatedStore) shut() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedStore) release() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

func (g *gatedStore) wait() {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	<-open
}

func (g *gatedStore) PeerGet(key []byte) (tier.Record, error) {
	g.wait()
	return g.Hybrid.PeerGet(key)
}

func (g *gatedStore) SetTagged(key, value []byte, expireAt int64, tag string) error {
	g.wait()
	return g.Hybrid.SetTagged(key, value, expireAt, tag)
}

// freezer is a TCP proxy that can stop passing bytes, in both directions,
// as a SIGSTOPped daemon stops answering while its kernel still accepts
// connections.
type freezer struct {
	t      testing.TB
	ln     net.Listener
	target string
	gate   sync.RWMutex // write-locked while frozen
	mu     struct {
		sync.Mutex
		frozen bool
		conns  []net.Conn
		closed bool
	}
	wg sync.WaitGroup
}

func newFreezer(t testing.TB, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{t: t, ln: ln, target: target}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *freezer) addr() string { return f.ln.Addr().String() }

func (f *freezer) freeze() {
	f.gate.Lock()
	f.mu.Lock()
	f.mu.frozen = true
	f.mu.Unlock()
}

func (f *freezer) thaw() {
	f.mu.Lock()
	f.mu.frozen = false
	f.mu.Unlock()
	f.gate.Unlock()
}

func (f *freezer) accept() {
	defer f.wg.Done()
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", f.target)
		if err != nil {
			in.Close()
			continue
		}
		f.mu.Lock()
		if f.mu.closed {
			f.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		f.mu.conns = append(f.mu.conns, in, out)
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(in, out)
		go f.pipe(out, in)
	}
}

func (f *freezer) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.gate.RLock()
			_, werr := dst.Write(buf[:n])
			f.gate.RUnlock()
			if werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (f *freezer) close() {
	f.mu.Lock()
	f.mu.closed = true
	frozen := f.mu.frozen
	conns := f.mu.conns
	f.mu.Unlock()
	if frozen {
		f.thaw()
	}
	f.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	f.wg.Wait()
}

// waitJoined waits until n goroutines wait in singleflight for a request
// another one made: then they are certain to share its answer.
func waitJoined(t testing.TB, n int) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d Gets joining one request", n), func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		joined := 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "singleflight.(*Group).Do") && strings.Contains(g, "sync.(*WaitGroup).Wait") {
				joined++
			}
		}
		return joined == n
	})
}
