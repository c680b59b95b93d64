package server

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// leaseKey is a key of a typical size: a model scope and a 64-hex-digit
// hash of the inputs, 96 bytes in all.
func leaseKey(i int) []byte {
	return fmt.Appendf(nil, "{openai/clip-vit-large-patch14@v1}%062x", i)
}

// measureLeaseBytes holds n leases, then n waiters (one per key, each with
// a LEASE.GET's own notify channel), and returns the live heap each adds.
func measureLeaseBytes(n int) (perLease, perWaiter float64) {
	t := newLeaseTable(2 * n)
	defer t.close()
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = leaseKey(i)
	}
	before := heapAfterGC()
	for _, k := range keys {
		if _, _, err := t.acquire(k, time.Hour, nil); err != nil {
			panic(err)
		}
	}
	leased := heapAfterGC()
	ws := make([]*leaseWaiter, n)
	for i, k := range keys {
		ws[i] = &leaseWaiter{notify: make(chan struct{}, 1), ttl: time.Hour}
		if _, q, err := t.acquire(k, time.Hour, ws[i]); !q || err != nil {
			panic("not queued")
		}
	}
	// ws itself (8 bytes a waiter) stands for the waiting commands'
	// references, which the table does not hold.
	waited := heapAfterGC()
	runtime.KeepAlive(keys)
	runtime.KeepAlive(ws)
	return float64(leased-before) / float64(n), float64(waited-leased) / float64(n)
}

// TestLeaseBytes: a lease, and a waiter, hold less than LeaseBytes of
// live heap, the figure the memory bound counts per --max-leases.
func TestLeaseBytes(t *testing.T) {
	perLease, perWaiter := measureLeaseBytes(100_000)
	t.Logf("live heap: %.0f bytes per lease (96-byte keys, 1 h TTL), %.0f bytes per waiter", perLease, perWaiter)
	if perLease > LeaseBytes || perWaiter > LeaseBytes {
		t.Errorf("%.0f bytes per lease, %.0f per waiter: over LeaseBytes (%d)", perLease, perWaiter, LeaseBytes)
	}
}
