package lease

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// store is a map as a Lookup, with a Set that completes the lease.
type store struct {
	mu sync.Mutex // guards m
	m  map[string][]byte
}

func (s *store) lookup(key []byte) (tier.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(key)]
	if !ok {
		return nil, tier.ErrNotFound
	}
	return tier.NewRecord(tier.Header{}, v), nil
}

func (s *store) set(tb *Table, key, value string) {
	s.mu.Lock()
	s.m[key] = []byte(value)
	s.mu.Unlock()
	tb.Complete([]byte(key), []byte(value))
}

// TestGet: a hit, a grant, and a waiter woken by the holder's SET, in one
// call; the waiter's pause runs once before it waits.
func TestGet(t *testing.T) {
	tb := newTable(t, 10)
	s := &store{m: map[string][]byte{"a": []byte("A")}}
	ans, err := tb.Get(context.Background(), [][]byte{[]byte("a"), []byte("b")}, time.Minute, 0, s.lookup, nil)
	if err != nil || ans[0].State != Hit || string(ans[0].Value) != "A" || ans[1].State != Granted {
		t.Fatalf("Get = %+v, %v; want a hit and a grant", ans, err)
	}
	paused := make(chan struct{})
	done := make(chan []Answer)
	go func() {
		ans, err := tb.Get(context.Background(), [][]byte{[]byte("a"), []byte("b")}, time.Minute, time.Minute, s.lookup,
			func() error { close(paused); return nil })
		if err != nil {
			t.Error(err)
		}
		done <- ans
	}()
	<-paused
	s.set(tb, "b", "B")
	ans = <-done
	if ans[0].State != Hit || string(ans[0].Value) != "A" || ans[1].State != Hit || string(ans[1].Value) != "B" || ans[1].Record != nil {
		t.Fatalf("waiter's Get = %+v; want two hits, the second from the completion", ans)
	}
}

// TestGetAbandon: a caller gone during its wait (ctx cancelled) passes on
// the lease it was granted to the waiter behind it.
func TestGetAbandon(t *testing.T) {
	tb := newTable(t, 10)
	s := &store{m: map[string][]byte{}}
	tok := mustGrant(t, tb, "k", time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	paused := make(chan struct{})
	errc := make(chan error)
	go func() {
		_, err := tb.Get(ctx, [][]byte{[]byte("x"), []byte("k")}, time.Minute, time.Minute, s.lookup,
			func() error { close(paused); return nil })
		errc <- err
	}()
	<-paused
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned Get = %v, want context.Canceled", err)
	}
	if tb.Release([]byte("x"), tok) {
		t.Fatal("a foreign token released x")
	}
	if tok2 := mustGrant(t, tb, "x", time.Minute); tok2 == "" {
		t.Fatal("x's lease was not passed on")
	}
	if !tb.Release([]byte("k"), tok) {
		t.Fatal("the holder of k lost its lease")
	}
	if st := tb.Stats(); st.Waiting != 0 {
		t.Fatalf("%d waiters left", st.Waiting)
	}
}

// TestGetFull: a refusal at the bound gives back what the call took and
// carries the bound.
func TestGetFull(t *testing.T) {
	tb := newTable(t, 1)
	s := &store{m: map[string][]byte{}}
	_, err := tb.Get(context.Background(), [][]byte{[]byte("a"), []byte("b")}, time.Minute, 0, s.lookup, nil)
	var full *FullError
	if !errors.As(err, &full) || full.Max != 1 || !errors.Is(err, ErrFull) {
		t.Fatalf("Get past the bound = %v, want a FullError of 1", err)
	}
	if st := tb.Stats(); st.Active != 0 {
		t.Fatalf("%d leases held after a refusal", st.Active)
	}
}
