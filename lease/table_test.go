package lease

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTable returns a Table of max leases and waiters, closed at the end.
func newTable(t *testing.T, max int) *Table {
	t.Helper()
	tb := New(Options{Max: max})
	t.Cleanup(tb.Close)
	return tb
}

// mustGrant acquires key's lease and fails unless it is granted.
func mustGrant(t *testing.T, tb *Table, key string, ttl time.Duration) string {
	t.Helper()
	tok, q, err := tb.Acquire([]byte(key), ttl, nil)
	if tok == "" || q || err != nil {
		t.Fatalf("Acquire %s = %q, %v, %v; want a grant", key, tok, q, err)
	}
	return tok
}

// mustQueue queues a waiter for key and fails unless it is queued.
func mustQueue(t *testing.T, tb *Table, key string, ttl time.Duration) (*Waiter, chan struct{}) {
	t.Helper()
	ch := make(chan struct{}, 1)
	w := NewWaiter(ch, ttl)
	if tok, q, err := tb.Acquire([]byte(key), ttl, w); !q || tok != "" || err != nil {
		t.Fatalf("Acquire %s with a waiter = %q, %v, %v; want queued", key, tok, q, err)
	}
	return w, ch
}

// TestCompleteWakesAll: a Complete hands the value to every waiter, ends
// the lease, and a new Acquire is granted a fresh one.
func TestCompleteWakesAll(t *testing.T) {
	tb := newTable(t, 10)
	tok := mustGrant(t, tb, "k", time.Hour)
	if got, q, err := tb.Acquire([]byte("k"), time.Hour, nil); got != "" || q || err != nil {
		t.Fatalf("Acquire of a held key without a waiter = %q, %v, %v; want nothing", got, q, err)
	}
	var ws []*Waiter
	var chs []chan struct{}
	for range 3 {
		w, ch := mustQueue(t, tb, "k", time.Hour)
		ws, chs = append(ws, w), append(chs, ch)
	}
	value := []byte("v")
	tb.Complete([]byte("k"), value)
	value[0] = 'x' // the waiters have a copy
	for i, w := range ws {
		<-chs[i]
		tb.Leave([]byte("k"), w, false)
		if st, v, _ := w.Outcome(); st != Hit || string(v) != "v" {
			t.Errorf("waiter %d: %v %q, want Hit v", i, st, v)
		}
	}
	if tb.Release([]byte("k"), tok) {
		t.Error("a completed lease still releases")
	}
	if st := tb.Stats(); st.Active != 0 || st.Waiting != 0 || st.Wakeups != 3 || st.Waits != 3 || st.Granted != 1 {
		t.Errorf("stats %+v", st)
	}
	mustGrant(t, tb, "k", time.Hour)
}

// TestHandOver: Release and expiry pass the lease to the first waiter,
// with a new token; Leave of a waiter still queued makes it a Miss.
func TestHandOver(t *testing.T) {
	tb := newTable(t, 10)
	tokA := mustGrant(t, tb, "k", time.Hour)
	w1, ch1 := mustQueue(t, tb, "k", 20*time.Millisecond)
	w2, ch2 := mustQueue(t, tb, "k", time.Hour)
	if !tb.Release([]byte("k"), tokA) {
		t.Fatal("the holder's Release failed")
	}
	<-ch1
	tb.Leave([]byte("k"), w1, false)
	st, _, tok1 := w1.Outcome()
	if st != Granted || tok1 == tokA || tok1 == "" {
		t.Fatalf("first waiter after Release: %v %q", st, tok1)
	}
	// w1's 20 ms lease expires without a Complete: w2 takes it over.
	<-ch2
	tb.Leave([]byte("k"), w2, false)
	if st, _, tok2 := w2.Outcome(); st != Granted || tok2 == tok1 {
		t.Fatalf("second waiter after expiry: %v %q", st, tok2)
	}
	if tb.Release([]byte("k"), tok1) {
		t.Error("an expired token still releases")
	}
	w3, _ := mustQueue(t, tb, "k", time.Hour)
	tb.Leave([]byte("k"), w3, false)
	if st, _, _ := w3.Outcome(); st != Miss {
		t.Errorf("a waiter that left: %v, want Miss", st)
	}
	if s := tb.Stats(); s.Expired != 1 || s.Granted != 3 || s.Waiting != 0 || s.Active != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestLeaveAbandon: a waiter handed the lease that abandons it passes it
// on to the next at once.
func TestLeaveAbandon(t *testing.T) {
	tb := newTable(t, 10)
	tok := mustGrant(t, tb, "k", time.Hour)
	w1, ch1 := mustQueue(t, tb, "k", time.Hour)
	w2, ch2 := mustQueue(t, tb, "k", time.Hour)
	tb.Release([]byte("k"), tok)
	<-ch1
	tb.Leave([]byte("k"), w1, true)
	<-ch2
	tb.Leave([]byte("k"), w2, false)
	if st, _, _ := w2.Outcome(); st != Granted {
		t.Errorf("the next waiter: %v, want Granted", st)
	}
}

// TestMax: leases and waiters together stop at Max; a refusal grants and
// queues nothing, a miss without a waiter is not refused, and room comes
// back as leases end.
func TestMax(t *testing.T) {
	tb := newTable(t, 3)
	tokA := mustGrant(t, tb, "a", time.Hour)
	mustGrant(t, tb, "b", time.Hour)
	w, _ := mustQueue(t, tb, "a", time.Hour)
	if tok, q, err := tb.Acquire([]byte("c"), time.Hour, nil); err != ErrFull || tok != "" || q {
		t.Errorf("a grant past Max = %q, %v, %v; want ErrFull", tok, q, err)
	}
	if tok, q, err := tb.Acquire([]byte("b"), time.Hour, NewWaiter(make(chan struct{}, 1), time.Hour)); err != ErrFull || tok != "" || q {
		t.Errorf("a wait past Max = %q, %v, %v; want ErrFull", tok, q, err)
	}
	if tok, q, err := tb.Acquire([]byte("b"), time.Hour, nil); err != nil || tok != "" || q {
		t.Errorf("a miss without a waiter at Max = %q, %v, %v; want nothing, no error", tok, q, err)
	}
	if s := tb.Stats(); s.Active != 2 || s.Waiting != 1 || s.Refused != 2 || s.Granted != 2 || s.Max != 3 {
		t.Errorf("stats at Max %+v", s)
	}
	tb.Leave([]byte("a"), w, false) // a waiter leaving makes room
	mustGrant(t, tb, "c", time.Hour)
	tb.Complete([]byte("a"), []byte("v")) // so does a lease completed
	if tb.Release([]byte("a"), tokA) {
		t.Error("a completed lease still releases")
	}
	mustGrant(t, tb, "d", time.Hour)
}

// TestClose: after Close nothing is granted, and no timer fires.
func TestClose(t *testing.T) {
	tb := New(Options{})
	if tb.Max() != DefaultMax {
		t.Errorf("Max() = %d, want DefaultMax", tb.Max())
	}
	mustGrant(t, tb, "k", time.Millisecond)
	tb.Close()
	tb.Close()
	if tok, q, err := tb.Acquire([]byte("j"), time.Hour, nil); tok != "" || q || err != nil {
		t.Errorf("Acquire after Close = %q, %v, %v", tok, q, err)
	}
}

// heapAfterGC is the live heap once the garbage collector has run.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// key is a key of a typical size: a model scope and a hash of the inputs,
// 96 bytes in all.
func key(i int) []byte {
	return fmt.Appendf(nil, "{openai/clip-vit-large-patch14@v1}%062x", i)
}

// measureBytes holds n leases, then n waiters (one per key, each with a
// LEASE.GET's own notify channel), and returns the live heap each adds.
func measureBytes(n int) (perLease, perWaiter float64) {
	tb := New(Options{Max: 2 * n})
	defer tb.Close()
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = key(i)
	}
	before := heapAfterGC()
	for _, k := range keys {
		if _, _, err := tb.Acquire(k, time.Hour, nil); err != nil {
			panic(err)
		}
	}
	leased := heapAfterGC()
	// ws (8 bytes a waiter) stands for the waiting callers' references,
	// which the table does not hold.
	ws := make([]*Waiter, n)
	for i, k := range keys {
		ws[i] = NewWaiter(make(chan struct{}, 1), time.Hour)
		if _, q, err := tb.Acquire(k, time.Hour, ws[i]); !q || err != nil {
			panic("not queued")
		}
	}
	waited := heapAfterGC()
	runtime.KeepAlive(keys)
	runtime.KeepAlive(ws)
	return float64(leased-before) / float64(n), float64(waited-leased) / float64(n)
}

// TestBytes: a lease, and a waiter, hold less than Bytes of live heap,
// the figure the daemon's memory bound counts per --max-leases, from a
// thousand leases to three times the default bound.
func TestBytes(t *testing.T) {
	sizes := []int{1_000, 100_000, 300_000}
	if testing.Short() {
		sizes = sizes[:2]
	}
	for _, n := range sizes {
		perLease, perWaiter := measureBytes(n)
		t.Logf("%d leases: live heap %.0f bytes per lease (96-byte keys, 1 h TTL), %.0f per waiter", n, perLease, perWaiter)
		if perLease > Bytes || perWaiter > Bytes {
			t.Errorf("%d leases: %.0f bytes per lease, %.0f per waiter: over Bytes (%d)", n, perLease, perWaiter, Bytes)
		}
	}
}
