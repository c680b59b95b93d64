package peer

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// Forwarded writes reach their owner: a SET under the owner's version is
// stored, one under another version refused; deletes and expiries apply.
func TestForward(t *testing.T) {
	p := newPair(t, nil, nil)
	if err := p.a.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "m", "v1")}, 1); err != nil {
		t.Fatal(err)
	}
	plain := keyOf(t, p.ring, "a", "plain")
	cur := keyOf(t, p.ring, "a", "{m}cur")
	old := keyOf(t, p.ring, "a", "{m}old")
	mine := keyOf(t, p.ring, "b", "mine")
	at := time.Now().Add(time.Hour).UnixMilli()

	for _, f := range []struct {
		key, value []byte
		tag        string
	}{{plain, []byte("p"), ""}, {cur, []byte("c"), "v1"}, {old, []byte("o"), "v0"}} {
		if !p.b.Forward(f.key, f.value, at, f.tag) {
			t.Fatalf("Forward(%q) not queued", f.key)
		}
	}
	if p.b.Forward(mine, []byte("x"), 0, "") {
		t.Fatal("a key b owns was forwarded")
	}
	testutil.WaitFor(t, 10*time.Second, "the forwarded SETs", func() bool {
		st := p.b.Stats()
		return st.SetsForwarded+st.SetsRefused == 3
	})
	for _, k := range [][]byte{plain, cur} {
		r, err := p.a.Get(k)
		if err != nil || r.ExpireAt() != at {
			t.Fatalf("%q at the owner: %v", k, err)
		}
	}
	if r, _ := p.a.Get(cur); string(r.Value()) != "c" {
		t.Fatalf("%q at the owner: %q", cur, r.Value())
	}
	if _, err := p.a.Get(old); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("a SET of another version was stored: %v", err)
	}

	p.b.ForwardDelete(plain)
	p.b.ForwardExpire(cur, at+1000, tier.ExpireAlways)
	testutil.WaitFor(t, 10*time.Second, "the forwarded delete and expiry", func() bool { return p.b.Stats().UpdatesForwarded == 2 })
	if _, err := p.a.Get(plain); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("deleted at the owner: %v", err)
	}
	if r, _ := p.a.Get(cur); r.ExpireAt() != at+1000 {
		t.Fatalf("expiry at the owner: %d", r.ExpireAt())
	}
	st := p.b.Stats()
	if st.SetsForwarded != 2 || st.SetsRefused != 1 || st.SetsDropped != 0 || st.UpdatesDropped != 0 || st.QueuedBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Writes of one key reach the owner in the order they were forwarded.
func TestForwardOrder(t *testing.T) {
	p := newPair(t, nil, nil)
	k := keyOf(t, p.ring, "a", "k")
	gone := keyOf(t, p.ring, "a", "gone")
	for i := range 200 {
		p.b.Forward(k, fmt.Appendf(nil, "%d", i), 0, "")
		p.b.Forward(gone, value(100*i, byte(i)), 0, "")
	}
	p.b.ForwardDelete(gone)
	testutil.WaitFor(t, 10*time.Second, "the forwarded writes", func() bool { return p.b.Stats().UpdatesForwarded == 1 })
	if r, err := p.a.Get(k); err != nil || string(r.Value()) != "199" {
		t.Fatalf("the owner has %q (%v), want the last SET", r, err)
	}
	if _, err := p.a.Get(gone); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("the SETs overtook the DEL: %v", err)
	}
}

// A full queue drops what does not fit, and counts it; what fitted is
// sent once the owner catches up.
func TestForwardQueueFull(t *testing.T) {
	const size = 256 << 10
	h := openHybrid(t)
	g := newGatedStore(h)
	s := startServer(t, ServerOptions{Store: g, NodeID: "a"})
	ring := NewRing([]Member{{ID: "a", Addr: s.Addr().String()}, {ID: "b", Addr: "b.invalid:1"}})
	keys := keysOf(t, ring, "a", "k", 10)
	frame := int64(len(appendSet(nil, keys[0], value(size, 0), 0, "")))
	c := newClient(t, ClientOptions{Ring: ring, Self: "b", QueueBytes: 4 * frame, ForwardTimeout: time.Minute})

	g.shut()
	queued := 0
	for _, k := range keys {
		if c.Forward(k, value(size, 0), 0, "") {
			queued++
		}
	}
	if st := c.Stats(); queued != 4 || st.SetsDropped != 6 || st.QueuedBytes != 4*frame {
		t.Fatalf("%d queued, stats %+v: want 4 queued in %d bytes, 6 dropped", queued, st, 4*frame)
	}
	g.release()
	testutil.WaitFor(t, 10*time.Second, "the queued SETs", func() bool { return c.Stats().SetsForwarded == 4 })
	if st := c.Stats(); st.SetsDropped != 6 || st.QueuedBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
	for i, k := range keys {
		if _, err := h.Get(k); (err == nil) != (i < 4) {
			t.Fatalf("key %d at the owner: %v", i, err)
		}
	}
}

// Writes for a dead owner are dropped and counted: the first when its
// send fails, the next at once.
func TestForwardDeadOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ring := NewRing([]Member{{ID: "a", Addr: addr}, {ID: "b", Addr: "b.invalid:1"}})
	c := newClient(t, ClientOptions{Ring: ring, Self: "b", ProbeInterval: time.Hour, MaxProbeInterval: time.Hour})
	k := keyOf(t, ring, "a", "k")
	if !c.Forward(k, []byte("v"), 0, "") {
		t.Fatal("the first SET was not queued")
	}
	testutil.WaitFor(t, 10*time.Second, "the SET to fail", func() bool { return c.Stats().SetsDropped == 1 })
	if c.Forward(k, []byte("v"), 0, "") || c.ForwardDelete(k) {
		t.Fatal("a write for an owner whose breaker is open was queued")
	}
	if st := c.Stats(); st.SetsDropped != 2 || st.UpdatesDropped != 1 || st.Errors != 1 || st.QueuedBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}
