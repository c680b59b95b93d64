package peer

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
)

// A value stored at its owner is a hit from another member, with the
// record's header as the owner stored it; an absent key is a miss; a key
// this member owns is never asked for.
func TestGet(t *testing.T) {
	// The timeout allows for the race detector, which moves 4 MB in about
	// 100ms.
	p := newPair(t, nil, func(o *ClientOptions) { o.Timeout = 10 * time.Second })
	for _, n := range []int{0, 1, 100, 118_000, 4 << 20} {
		k := keyOf(t, p.ring, "a", fmt.Sprintf("{clip}v%d:", n))
		v := value(n, byte(n))
		mustSet(t, p.a, k, v)
		r := wantHit(t, p.b, k, v)
		if !Servable(k, r, p.a) {
			t.Fatalf("a record of %q stored by the owner is not servable by the same registry", k)
		}
	}
	exp := keyOf(t, p.ring, "a", "expiring")
	at := time.Now().Add(time.Hour).UnixMilli()
	if err := p.a.SetValue(exp, []byte("v"), at); err != nil {
		t.Fatal(err)
	}
	if r := wantHit(t, p.b, exp, []byte("v")); r.ExpireAt() != at {
		t.Fatalf("expiry %d, want %d", r.ExpireAt(), at)
	}

	before := p.server.Stats()
	if _, ok := p.b.Get(keyOf(t, p.ring, "a", "absent")); ok {
		t.Fatal("an absent key is a hit")
	}
	if _, ok := p.b.Get(keyOf(t, p.ring, "b", "mine")); ok {
		t.Fatal("a key b owns is a hit")
	}
	after := p.server.Stats()
	if after.Gets != before.Gets+1 {
		t.Fatalf("%d GETs reached the owner, want 1 (the absent key; b never asks for its own)", after.Gets-before.Gets)
	}
	st := p.b.Stats()
	if st.Hits != 6 || st.Misses != 1 || st.Errors != 0 || st.Timeouts != 0 || st.Requests != 7 || st.Peers != 1 || st.PeersLive != 1 {
		t.Fatalf("stats %+v", st)
	}
	if st.BytesIn < 4<<20 || st.BytesOut == 0 || after.BytesOut < 4<<20 {
		t.Fatalf("bytes: client in %d out %d, server out %d", st.BytesIn, st.BytesOut, after.BytesOut)
	}
}

// The largest value crosses, and a reply larger than the client takes is
// a failure, not an allocation of what the peer claims.
func TestGetLargest(t *testing.T) {
	p := newPair(t, nil, func(o *ClientOptions) { o.Timeout = time.Minute })
	k := keyOf(t, p.ring, "a", "large")
	v := value(DefaultMaxValue, 3)
	mustSet(t, p.a, k, v)
	wantHit(t, p.b, k, v)

	small := newClient(t, ClientOptions{Ring: p.ring, Self: "b", MaxValue: 1 << 20, Timeout: time.Minute})
	k = keyOf(t, p.ring, "a", "over")
	mustSet(t, p.a, k, value(2<<20, 4))
	if _, ok := small.Get(k); ok {
		t.Fatal("a 2 MiB record is a hit for a client that takes 1 MiB")
	}
	if st := small.Stats(); st.Errors != 1 {
		t.Fatalf("stats %+v, want 1 error", st)
	}
}

// A dead owner (nothing listens) is one error, then its breaker is open
// and Gets return at once without asking; it closes once the owner
// answers again.
func TestDeadOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ring := NewRing([]Member{{ID: "a", Addr: addr}, {ID: "b", Addr: "b.invalid:1"}})
	c := newClient(t, ClientOptions{Ring: ring, Self: "b", ProbeInterval: 5 * time.Millisecond, MaxProbeInterval: 20 * time.Millisecond})
	k := keyOf(t, ring, "a", "k")
	if _, ok := c.Get(k); ok {
		t.Fatal("hit from a dead owner")
	}
	for range 10 {
		if _, ok := c.Get(k); ok {
			t.Fatal("hit from a dead owner")
		}
	}
	st := c.Stats()
	if st.Errors != 1 || st.Requests != 1 || st.Skipped != 10 || st.PeersLive != 0 || st.Peers != 1 {
		t.Fatalf("stats %+v: want 1 request, 1 error, then 10 skipped", st)
	}

	h := openHybrid(t)
	mustSet(t, h, k, []byte("back"))
	startServer(t, ServerOptions{Listen: addr, Store: h, NodeID: "a"})
	testutil.WaitFor(t, 10*time.Second, "the breaker to close", func() bool { return c.Stats().PeersLive == 1 })
	wantHit(t, c, k, []byte("back"))
}

// An owner that stops answering (SIGSTOP: its kernel still accepts
// connections) costs one Timeout; then its breaker is open, Gets return
// at once, and it closes again once the owner answers.
func TestFrozenOwner(t *testing.T) {
	const timeout = 500 * time.Millisecond
	h := openHybrid(t)
	s := startServer(t, ServerOptions{Store: h, NodeID: "a"})
	f := newFreezer(t, s.Addr().String())
	ring := NewRing([]Member{{ID: "a", Addr: f.addr()}, {ID: "b", Addr: "b.invalid:1"}})
	c := newClient(t, ClientOptions{Ring: ring, Self: "b", Timeout: timeout, ProbeInterval: 10 * time.Millisecond, MaxProbeInterval: 50 * time.Millisecond})
	keys := keysOf(t, ring, "a", "k", 2)
	for _, k := range keys {
		mustSet(t, h, k, k)
	}
	wantHit(t, c, keys[0], keys[0]) // a pooled connection: the freeze catches it in use

	f.freeze()
	start := time.Now()
	if _, ok := c.Get(keys[1]); ok {
		t.Fatal("hit from a frozen owner")
	}
	if took := time.Since(start); took < timeout || took > timeout+time.Second {
		t.Fatalf("the first Get to a frozen owner took %v, want its timeout %v", took, timeout)
	}
	for _, k := range keys {
		start := time.Now()
		if _, ok := c.Get(k); ok {
			t.Fatal("hit from a frozen owner")
		}
		if took := time.Since(start); took > timeout/2 {
			t.Fatalf("a Get with the breaker open took %v", took)
		}
	}
	st := c.Stats()
	if st.Timeouts != 1 || st.Errors != 0 || st.Skipped != 2 || st.PeersLive != 0 {
		t.Fatalf("stats %+v: want 1 timeout, then 2 skipped", st)
	}

	f.thaw()
	testutil.WaitFor(t, 10*time.Second, "the breaker to close", func() bool { return c.Stats().PeersLive == 1 })
	wantHit(t, c, keys[1], keys[1])
}

// Concurrent Gets of one key make one request, whose answer each gets.
func TestSingleflight(t *testing.T) {
	const n = 16
	h := openHybrid(t)
	g := newGatedStore(h)
	s := startServer(t, ServerOptions{Store: g, NodeID: "a"})
	ring := NewRing([]Member{{ID: "a", Addr: s.Addr().String()}, {ID: "b", Addr: "b.invalid:1"}})
	c := newClient(t, ClientOptions{Ring: ring, Self: "b", Timeout: time.Minute})
	k := keyOf(t, ring, "a", "popular")
	v := value(118_000, 1)
	mustSet(t, h, k, v)

	g.shut()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if r, ok := c.Get(k); !ok || !bytes.Equal(r.Value(), v) {
				errs <- fmt.Errorf("Get: hit %v", ok)
			}
		})
	}
	testutil.WaitFor(t, 10*time.Second, "the request to reach the owner", func() bool { return s.Stats().Gets == 1 })
	waitJoined(t, n-1)
	g.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := s.Stats().Gets; got != 1 {
		t.Fatalf("%d concurrent Gets of one key made %d requests, want 1", n, got)
	}
	if st := c.Stats(); st.Requests != 1 || st.Hits != n {
		t.Fatalf("stats %+v: want 1 request, %d hits", st, n)
	}
}

// Gets of distinct keys run concurrently, on MaxConns connections at most.
func TestConcurrentGets(t *testing.T) {
	p := newPair(t, nil, func(o *ClientOptions) { o.MaxConns = 4; o.Timeout = 10 * time.Second })
	keys := keysOf(t, p.ring, "a", "c", 64)
	for i, k := range keys {
		mustSet(t, p.a, k, value(10_000+i, byte(i)))
	}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < len(keys); i += 16 {
				wantHit(t, p.b, keys[i], value(10_000+i, byte(i)))
			}
		})
	}
	wg.Wait()
	if st := p.server.Stats(); st.Conns > 4 {
		t.Fatalf("%d connections, at most 4 allowed", st.Conns)
	}
}

// A server that restarts on the same address leaves the client's pooled
// connections closed: the next Get replaces them, and is no failure.
func TestOwnerRestart(t *testing.T) {
	h := openHybrid(t)
	s := startServer(t, ServerOptions{Store: h, NodeID: "a"})
	addr := s.Addr().String()
	ring := NewRing([]Member{{ID: "a", Addr: addr}, {ID: "b", Addr: "b.invalid:1"}})
	c := newClient(t, ClientOptions{Ring: ring, Self: "b"})
	k := keyOf(t, ring, "a", "k")
	mustSet(t, h, k, []byte("v"))
	wantHit(t, c, k, []byte("v"))

	s.Close()
	startServer(t, ServerOptions{Listen: addr, Store: h, NodeID: "a"})
	wantHit(t, c, k, []byte("v"))
	if st := c.Stats(); st.Errors != 0 || st.PeersLive != 1 {
		t.Fatalf("stats %+v: a restarted owner is not a failure", st)
	}
}

// A server that is not the member dialled (another daemon took over its
// address) is refused.
func TestWrongPeer(t *testing.T) {
	h := openHybrid(t)
	s := startServer(t, ServerOptions{Store: h, NodeID: "c"})
	ring := NewRing([]Member{{ID: "a", Addr: s.Addr().String()}, {ID: "b", Addr: "b.invalid:1"}})
	c := newClient(t, ClientOptions{Ring: ring, Self: "b"})
	k := keyOf(t, ring, "a", "k")
	mustSet(t, h, k, []byte("v"))
	if _, ok := c.Get(k); ok {
		t.Fatal("hit from a daemon that is not the owner")
	}
	if st := c.Stats(); st.Errors != 1 {
		t.Fatalf("stats %+v, want 1 error", st)
	}
}

// The client follows the ring: keys move with membership, and a member
// that leaves is no longer asked.
func TestRingChange(t *testing.T) {
	ha, hc := openHybrid(t), openHybrid(t)
	sa := startServer(t, ServerOptions{Store: ha, NodeID: "a"})
	sc := startServer(t, ServerOptions{Store: hc, NodeID: "c"})
	a := Member{ID: "a", Addr: sa.Addr().String()}
	b := Member{ID: "b", Addr: "b.invalid:1"}
	cm := Member{ID: "c", Addr: sc.Addr().String()}
	ring := NewRing([]Member{a, b})
	c := newClient(t, ClientOptions{Ring: ring, Self: "b"})

	full := NewRing([]Member{a, b, cm})
	k := keyOf(t, full, "c", "k") // owned by a while c is away
	mustSet(t, ha, k, []byte("at a"))
	mustSet(t, hc, k, []byte("at c"))
	wantHit(t, c, k, []byte("at a"))
	ring.Update([]Member{a, b, cm})
	wantHit(t, c, k, []byte("at c"))
	if st := c.Stats(); st.Peers != 2 || st.PeersLive != 2 {
		t.Fatalf("stats %+v", st)
	}
	ring.Update([]Member{b, cm})
	testutil.WaitFor(t, 10*time.Second, "a's connections to close", func() bool { return sa.Stats().OpenConns == 0 })
	if st := c.Stats(); st.Peers != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Close is idempotent, leaves no goroutine (TestMain checks), and Gets
// and forwards after it are misses and drops.
func TestClose(t *testing.T) {
	p := newPair(t, nil, nil)
	k := keyOf(t, p.ring, "a", "k")
	mustSet(t, p.a, k, []byte("v"))
	wantHit(t, p.b, k, []byte("v"))
	p.b.Forward(k, []byte("w"), 0, "")
	for range 2 {
		if err := p.b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.server.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := p.b.Get(k); ok {
		t.Fatal("hit after Close")
	}
	if p.b.Forward(k, []byte("x"), 0, "") {
		t.Fatal("forward queued after Close")
	}
	s, err := NewServer(ServerOptions{Listen: p.server.Addr().String(), Store: p.a})
	if err != nil {
		t.Fatalf("the address is still taken after Close: %v", err)
	}
	s.Close()
}
