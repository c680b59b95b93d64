package peer

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/lease"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// duo is two members, "a" and "b", each a Cache over its own Hybrid with
// a server and a client: what two daemons of a fleet wire.
type duo struct {
	ring *Ring
	a, b *Cache
}

func newDuo(t testing.TB) *duo {
	t.Helper()
	ha, hb := openHybrid(t), openHybrid(t)
	sa := startServer(t, ServerOptions{Store: ha, NodeID: "a"})
	sb := startServer(t, ServerOptions{Store: hb, NodeID: "b"})
	ring := NewRing([]Member{{ID: "a", Addr: sa.Addr().String()}, {ID: "b", Addr: sb.Addr().String()}})
	// A request timeout far above the default 100 ms: these tests check
	// what a peer answers, and a first request under the race detector on
	// a loaded machine outlasted 100 ms (a timeout, not the answer).
	return &duo{
		ring: ring,
		a:    NewCache(ha, newClient(t, ClientOptions{Ring: ring, Self: "a", Timeout: 5 * time.Second})),
		b:    NewCache(hb, newClient(t, ClientOptions{Ring: ring, Self: "b", Timeout: 5 * time.Second})),
	}
}

func rollout(t testing.TB, h *tier.Hybrid, model, version string, rev uint64) {
	t.Helper()
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, model, version)}, rev); err != nil {
		t.Fatal(err)
	}
}

// A value set on its owner is served to another member, which keeps a
// near copy; a lookup nobody can serve is a miss, not an error.
func TestCacheGet(t *testing.T) {
	d := newDuo(t)
	k := keyOf(t, d.ring, "a", "k")
	v := value(118<<10, 3)
	if _, err := d.a.SetWith(k, v, tier.SetArgs{}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r, err := d.b.Get(k)
		if err != nil || string(r.Value()) != string(v) {
			t.Fatalf("Get %d on b: %v", i, err)
		}
	}
	if st := d.b.PeerStats(); st.Hits != 1 || st.Requests != 1 {
		t.Fatalf("b's peer stats %+v: want one request, one hit (the second Get is the near copy's)", st)
	}
	missing := keyOf(t, d.ring, "a", "missing")
	if _, err := d.b.Get(missing); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Get of a key nobody has: %v", err)
	}
	if st := d.b.PeerStats(); st.Misses != 1 {
		t.Fatalf("b's peer stats %+v: want one miss", st)
	}
	// The owner's lookups for peers are not its clients' lookups.
	if st := d.a.Stats(); st.Hits != 0 || st.Misses != 0 {
		t.Fatalf("a's keyspace counts %d hits, %d misses: want none", st.Hits, st.Misses)
	}
}

// A member does not serve a peer's record of another version than its
// own, whichever of the two applied a rollout first.
func TestCacheFenced(t *testing.T) {
	d := newDuo(t)
	rollout(t, d.a.Hybrid, "m", "v1", 1)
	rollout(t, d.b.Hybrid, "m", "v1", 1)
	k := keyOf(t, d.ring, "a", "{m}k")
	if _, err := d.a.SetWith(k, []byte("computed with v1"), tier.SetArgs{}); err != nil {
		t.Fatal(err)
	}
	rollout(t, d.b.Hybrid, "m", "v2", 2) // b is ahead of the owner
	if _, err := d.b.Get(k); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("b at v2 served the owner's v1 value: %v", err)
	}
	if st := d.b.PeerStats(); st.Fenced != 1 || st.Hits != 0 || st.Misses != 1 {
		t.Fatalf("b's peer stats %+v: want one fenced miss", st)
	}
	rollout(t, d.a.Hybrid, "m", "v2", 2)
	rollout(t, d.a.Hybrid, "m", "v3", 3) // now the owner is ahead
	if _, err := d.a.SetWith(k, []byte("computed with v3"), tier.SetArgs{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.b.Get(k); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("b at v2 served the owner's v3 value: %v", err)
	}
	rollout(t, d.b.Hybrid, "m", "v3", 3)
	if r, err := d.b.Get(k); err != nil || string(r.Value()) != "computed with v3" {
		t.Fatalf("b at v3: %v", err)
	}
}

// Writes of a key another member owns reach the owner, under the version
// they were stored with here.
func TestCacheForward(t *testing.T) {
	d := newDuo(t)
	rollout(t, d.a.Hybrid, "m", "v1", 1)
	rollout(t, d.b.Hybrid, "m", "v1", 1)
	k := keyOf(t, d.ring, "a", "{m}k")
	ttl := keyOf(t, d.ring, "a", "ttl")
	mine := keyOf(t, d.ring, "b", "mine")
	at := time.Now().Add(time.Hour).UnixMilli()
	for _, key := range [][]byte{k, ttl, mine} {
		if _, err := d.b.SetWith(key, []byte("from b"), tier.SetArgs{ExpireAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	// KEEPTTL forwards the expiry kept.
	if _, err := d.b.SetWith(ttl, []byte("again"), tier.SetArgs{KeepTTL: true}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the forwarded SETs", func() bool { return d.b.PeerStats().SetsForwarded == 3 })
	for key, want := range map[string]string{string(k): "from b", string(ttl): "again"} {
		r, err := d.a.PeerGet([]byte(key))
		if err != nil || string(r.Value()) != want || r.ExpireAt() != at {
			t.Fatalf("%q at the owner: %v", key, err)
		}
		if hdr, _ := r.Header(); key == string(k) && hdr.Tag != "v1" {
			t.Fatalf("%q at the owner: tagged %q", key, hdr.Tag)
		}
	}
	if _, err := d.a.PeerGet(mine); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("a key b owns was forwarded: %v", err)
	}

	if ok, err := d.b.Expire(k, at+1000, tier.ExpireAlways); !ok || err != nil {
		t.Fatalf("Expire: %v %v", ok, err)
	}
	if ok, err := d.b.Remove(ttl); !ok || err != nil {
		t.Fatalf("Remove: %v %v", ok, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the forwarded delete and expiry", func() bool { return d.b.PeerStats().UpdatesForwarded == 2 })
	if r, err := d.a.PeerGet(k); err != nil || r.ExpireAt() != at+1000 {
		t.Fatalf("the expiry did not reach the owner: %v", err)
	}
	if _, err := d.a.PeerGet(ttl); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("the delete did not reach the owner: %v", err)
	}
}

// A DEL of a key another member owns is answered once the owner has
// deleted its copy too (within the peer timeout), and lands after the SETs
// of the key forwarded before it: a GET on the same member right after it
// is a miss, never the owner's old copy.
func TestCacheReadYourDelete(t *testing.T) {
	d := newDuo(t)
	for i := range 50 {
		k := keyOf(t, d.ring, "a", "del"+string(rune('A'+i%26))+string(rune('a'+i/26)))
		if _, err := d.b.SetWith(k, []byte("v"), tier.SetArgs{}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.b.Remove(k); err != nil {
			t.Fatal(err)
		}
		if r, err := d.b.Get(k); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("GET %q right after its DEL: %q, %v; want a miss", k, r.Value(), err)
		}
	}
	if st := d.b.PeerStats(); st.UpdatesForwarded != 50 {
		t.Fatalf("b's peer stats %+v: want the 50 deletes answered by the owner when DEL returned", st)
	}
}

// A write of a key another member owns is kept here as a near copy, in
// memory only, and stored at the owner; a write of a key this member owns,
// or of a key whose owner is down, is stored here as any write.
func TestCacheNearWrites(t *testing.T) {
	d := newDuo(t)
	theirs, ours := keyOf(t, d.ring, "a", "theirs"), keyOf(t, d.ring, "b", "ours")
	for _, k := range [][]byte{theirs, ours} {
		if _, err := d.b.SetWith(k, []byte("v"), tier.SetArgs{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.b.NearWrites(); n != 1 {
		t.Fatalf("b kept %d near copies, want 1 (the key a owns)", n)
	}
	if r, err := d.b.Hybrid.Get(theirs); err != nil || string(r.Value()) != "v" {
		t.Fatalf("b's near copy: %v", err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		_, err := d.a.Hybrid.PeerGet(theirs)
		return err
	})

	// An owner that is down: once b has given up on it, b stores what it
	// writes of a's keys as its own.
	hc := openHybrid(t)
	dead := NewRing([]Member{{ID: "b", Addr: "127.0.0.1:1"}, {ID: "c", Addr: deadAddr(t)}})
	c := NewCache(hc, newClient(t, ClientOptions{Ring: dead, Self: "b"}))
	k := keyOf(t, dead, "c", "k")
	if _, ok := c.Client().Get(k); ok {
		t.Fatal("a dead owner served a Get")
	}
	if c.Client().OwnerUp(k) {
		t.Fatal("the dead owner is still up after a failed Get")
	}
	if _, err := c.SetWith(k, []byte("v"), tier.SetArgs{}); err != nil {
		t.Fatal(err)
	}
	if n := c.NearWrites(); n != 0 {
		t.Fatalf("%d near copies of a dead owner's keys, want 0", n)
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A lease of a key another member owns that this member holds (here the
// near copy of its own write) is a hit at once, without asking the owner
// (whose server, here, takes no leases: asking it would be Unreachable).
func TestCacheLeaseLocalFirst(t *testing.T) {
	d := newDuo(t)
	k := keyOf(t, d.ring, "a", "written-on-b")
	if _, err := d.b.SetWith(k, []byte("v"), tier.SetArgs{}); err != nil {
		t.Fatal(err)
	}
	ans, err := d.b.Lease(context.Background(), [][]byte{k, keyOf(t, d.ring, "a", "absent")}, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ans[0].State != lease.Hit || string(ans[0].Value) != "v" {
		t.Fatalf("lease of a key held here: %+v, want a hit", ans[0])
	}
	if ans[1].State == lease.Hit {
		t.Fatalf("lease of an absent key: %+v", ans[1])
	}
}

// A member whose Hybrid recycles buffers reads a peer's large record into
// one: a record L1 does not keep is reused by the next peer-served GET
// once the reader's guard is unpinned, and a near copy L1 keeps is not
// (the pool poisons what it frees, so a kept copy recycled too early
// would show).
func TestCacheGetRecycles(t *testing.T) {
	pool := bufpool.New(bufpool.Options{Poison: true})
	hb := openHybridPool(t, pool)
	ha := openHybrid(t)
	sa := startServer(t, ServerOptions{Store: ha, NodeID: "a"})
	ring := NewRing([]Member{{ID: "a", Addr: sa.Addr().String()}, {ID: "b", Addr: "127.0.0.1:1"}})
	b := NewCache(hb, newClient(t, ClientOptions{Ring: ring, Self: "b"}))
	keys := keysOf(t, ring, "a", "k", 5)
	v := value(118<<10, 7)
	for _, k := range keys {
		mustSet(t, ha, k, v)
	}
	guard := pool.Guard()
	defer guard.Close()
	get := func(k []byte) {
		t.Helper()
		guard.Pin()
		defer guard.Unpin()
		r, err := b.Get(k)
		if err != nil || string(r.Value()) != string(v) {
			t.Fatalf("Get %q: %v", k, err)
		}
	}

	b.Keep = func([]byte, tier.Record) bool { return false }
	get(keys[0])
	get(keys[1])
	if st := pool.Stats(); st.Gets != 2 || st.Reused != 1 {
		t.Fatalf("pool %+v after two peer-served GETs kept nowhere: want 2 gets, 1 reused", st)
	}

	b.Keep = func([]byte, tier.Record) bool { return true }
	get(keys[2]) // kept in L1
	b.Keep = func([]byte, tier.Record) bool { return false }
	get(keys[3])
	get(keys[4])
	requests := b.PeerStats().Requests
	get(keys[2]) // the near copy, intact
	if st := b.PeerStats(); st.Requests != requests {
		t.Fatalf("the near copy was not served: %d peer requests, want %d", st.Requests, requests)
	}
}

// A near copy whose forward never reaches its owner is kept on the writer's
// disk: one the full queue did not take at once, one queued when the
// client closed (a daemon stopping) once it closes. Flush waits until the
// owner has what was queued, so a daemon stopping gives its owners their
// writes first.
func TestCacheDroppedForwardKept(t *testing.T) {
	ha := openHybrid(t)
	sa := startServer(t, ServerOptions{Store: ha, NodeID: "a"})
	fz := newFreezer(t, sa.Addr().String())
	ring := NewRing([]Member{{ID: "a", Addr: fz.addr()}, {ID: "b", Addr: "b.invalid:1"}})
	dir := t.TempDir()
	hb := openHybridIn(t, dir, nil)
	// The queue holds one of these values: the second does not fit.
	client, err := NewClient(ClientOptions{Ring: ring, Self: "b", Timeout: 5 * time.Second, ForwardTimeout: time.Minute, QueueBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b := NewCache(hb, client)
	ks := keysOf(t, ring, "a", "k", 3)
	set := func(k []byte, v string) {
		t.Helper()
		if _, err := b.SetWith(k, value(3<<10, v[0]), tier.SetArgs{}); err != nil {
			t.Fatal(err)
		}
	}

	set(ks[0], "0") // reaches a: Flush waits for it
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := client.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if r, err := ha.PeerGet(ks[0]); err != nil || !bytes.Equal(r.Value(), value(3<<10, '0')) {
		t.Fatalf("the owner has not the write Flush waited for: %v", err)
	}

	fz.freeze()     // a takes nothing more
	set(ks[1], "1") // queued, stuck
	set(ks[2], "2") // the queue is full: not queued
	if n := hb.NearWrites(); n != 3 {
		t.Fatalf("near writes %d, want 3", n)
	}
	if n := hb.NearKept(); n != 1 {
		t.Fatalf("near copies kept before the close %d, want 1 (the one not queued)", n)
	}
	shortCtx, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if err := client.Flush(shortCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with the owner frozen: %v, want the context's deadline", err)
	}
	client.Close()
	if n := hb.NearKept(); n != 2 {
		t.Fatalf("near copies kept after the close %d, want 2", n)
	}
	if st := client.Stats(); st.SetsForwarded != 1 || st.SetsDropped != 2 {
		t.Fatalf("forwarded %d, dropped %d; want 1, 2", st.SetsForwarded, st.SetsDropped)
	}
	if err := hb.Close(); err != nil {
		t.Fatal(err)
	}
	hb = openHybridIn(t, dir, nil)
	for i, k := range ks {
		r, err := hb.Get(k)
		switch {
		case i == 0 && !errors.Is(err, tier.ErrNotFound):
			t.Errorf("%s, which its owner took, is on the writer's disk too: %v", k, err)
		case i > 0 && (err != nil || !bytes.Equal(r.Value(), value(3<<10, byte('0'+i)))):
			t.Errorf("%s, never forwarded, is lost after the writer's restart: %v", k, err)
		}
	}
}
