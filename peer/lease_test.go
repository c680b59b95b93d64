package peer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/lease"
)

// newLeasePair is a pair whose owner "a" serves leases from its table.
func newLeasePair(t *testing.T) (*pair, *lease.Table) {
	t.Helper()
	leases := lease.New(lease.Options{})
	t.Cleanup(leases.Close)
	return newPair(t, func(o *ServerOptions) { o.Leases = leases }, nil), leases
}

// A lease taken at the owner: the first request is granted it (a token
// naming the owner), the second waits at the owner and wakes with the
// holder's SET, forwarded by the holder's member; a release goes back to
// the owner that granted the token.
func TestLeaseAtOwner(t *testing.T) {
	p, leases := newLeasePair(t)
	ctx := context.Background()
	key := keyOf(t, p.ring, "a", "lease")
	ans, err := p.b.Lease(ctx, [][]byte{key}, time.Minute, 0)
	if err != nil || ans[0].State != lease.Granted || !strings.HasSuffix(ans[0].Token, "@a") {
		t.Fatalf("first Lease = %+v, %v; want a lease granted by a", ans, err)
	}
	woken := make(chan lease.Answer)
	go func() {
		ans, err := p.b.Lease(ctx, [][]byte{key}, time.Minute, time.Minute)
		if err != nil {
			t.Error(err)
		}
		woken <- ans[0]
	}()
	testutil.WaitFor(t, 10*time.Second, "a waiter at the owner", func() bool { return leases.Stats().Waiting == 1 })
	v := value(1000, 7)
	if !p.b.Forward(key, v, 0, "") {
		t.Fatal("the SET was not forwarded")
	}
	a := <-woken
	if a.State != lease.Hit || string(a.Value) != string(v) || a.Record == nil {
		t.Fatalf("the waiter = %v, want a hit with the record of the forwarded value", a.State)
	}

	// Release: a token of a's goes back to a, once.
	key2 := keyOf(t, p.ring, "a", "release")
	ans, err = p.b.Lease(ctx, [][]byte{key2}, time.Minute, 0)
	if err != nil || ans[0].State != lease.Granted {
		t.Fatalf("Lease = %+v, %v", ans, err)
	}
	if rel, remote := p.b.ReleaseLease(key2, ans[0].Token); !rel || !remote {
		t.Fatalf("ReleaseLease = %v, %v; want released at the owner", rel, remote)
	}
	if rel, remote := p.b.ReleaseLease(key2, ans[0].Token); rel || !remote {
		t.Fatalf("second ReleaseLease = %v, %v; want nothing released", rel, remote)
	}
	if _, remote := p.b.ReleaseLease(key2, "0123abcd"); remote {
		t.Fatal("a local token went to a peer")
	}
}

// A requester that goes away while it waits at the owner (its context
// done: its client hung up) leaves the owner's queue, and a lease handed
// to it is passed on.
func TestLeaseAbandoned(t *testing.T) {
	p, leases := newLeasePair(t)
	key := keyOf(t, p.ring, "a", "gone")
	tok, _, err := leases.Acquire(key, time.Minute, nil)
	if tok == "" || err != nil {
		t.Fatalf("Acquire: %q %v", tok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = p.b.Lease(ctx, [][]byte{key}, time.Minute, time.Minute)
	}()
	testutil.WaitFor(t, 10*time.Second, "a waiter at the owner", func() bool { return leases.Stats().Waiting == 1 })
	cancel()
	<-done
	testutil.WaitFor(t, 10*time.Second, "the waiter gone", func() bool { return leases.Stats().Waiting == 0 })
	if !leases.Release(key, tok) {
		t.Fatal("the holder lost its lease")
	}
	if st := leases.Stats(); st.Active != 0 {
		t.Fatalf("%d leases left after the release", st.Active)
	}
	if st := p.b.Stats(); st.Errors+st.Timeouts != 0 {
		t.Fatalf("an abandoned request counted as a failure: %+v", st)
	}
}

// An owner that does not answer, a key this member owns and an owner at
// its bound: the first two are Unreachable (taken locally), the third an
// error carrying the owner's bound.
func TestLeaseUnreachableAndFull(t *testing.T) {
	p, _ := newLeasePair(t)
	own := keyOf(t, p.ring, "b", "own")
	if p.b.LeaseRemote(own) {
		t.Fatal("a key b owns is remote")
	}
	full := lease.New(lease.Options{Max: 1})
	defer full.Close()
	p2 := newPair(t, func(o *ServerOptions) { o.Leases = full }, nil)
	k1, k2 := keyOf(t, p2.ring, "a", "one"), keyOf(t, p2.ring, "a", "two")
	_, err := p2.b.Lease(context.Background(), [][]byte{k1, k2}, time.Minute, 0)
	var fe *lease.FullError
	if !errors.As(err, &fe) || fe.Max != 1 {
		t.Fatalf("Lease past the owner's bound = %v, want its FullError", err)
	}
	if st := full.Stats(); st.Active != 0 {
		t.Fatalf("a refused request left %d leases", st.Active)
	}

	p.server.Close()
	key := keyOf(t, p.ring, "a", "down")
	ans, err := p.b.Lease(context.Background(), [][]byte{key, own}, time.Minute, time.Minute)
	if err != nil || ans[0].State != lease.Unreachable || ans[1].State != lease.Unreachable {
		t.Fatalf("Lease with the owner down = %+v, %v; want both unreachable", ans, err)
	}
	if p.b.LeaseRemote(key) {
		t.Fatal("the breaker is not open after the failure")
	}
}
