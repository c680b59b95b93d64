package peer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/tier"
)

// openHybrid opens a real two-tier cache on a temporary directory, closed
// when the test ends.
func openHybrid(t testing.TB) *tier.Hybrid { return openHybridPool(t, nil) }

// openHybridPool is openHybrid whose L1 and Hybrid take their value
// buffers from pool (nil: none).
func openHybridPool(t testing.TB, pool *bufpool.Pool) *tier.Hybrid {
	t.Helper()
	return openHybridIn(t, t.TempDir(), pool)
}

// openHybridIn is openHybridPool on dir, where a Hybrid closed earlier
// may have left its L2.
func openHybridIn(t testing.TB, dir string, pool *bufpool.Pool) *tier.Hybrid {
	t.Helper()
	l1, err := memtier.New(memtier.Options{MaxBytes: 256 << 20, Buffers: pool})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := disktier.Open(disktier.Options{Dir: dir, MaxBytes: 1 << 30})
	if err != nil {
		l1.Close()
		t.Fatal(err)
	}
	h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2, Buffers: pool})
	if err != nil {
		l1.Close()
		l2.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return h
}

// startServer starts a peer server on a free loopback port, closed when
// the test ends.
func startServer(t testing.TB, o ServerOptions) *Server {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// keysOf returns n keys, made from prefix, that ring gives to member id.
func keysOf(t testing.TB, ring *Ring, id, prefix string, n int) [][]byte {
	t.Helper()
	var keys [][]byte
	for i := 0; len(keys) < n; i++ {
		k := fmt.Appendf(nil, "%s%d", prefix, i)
		if m, _ := ring.Owner(k); m.ID == id {
			keys = append(keys, k)
		}
		if i > 100*n+100 {
			t.Fatalf("no key of %s among %d", id, i)
		}
	}
	return keys
}

func keyOf(t testing.TB, ring *Ring, id, prefix string) []byte {
	return keysOf(t, ring, id, prefix, 1)[0]
}

// value returns n bytes that differ from one seed to the next.
func value(n int, seed byte) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(i*7) + seed
	}
	return v
}

func mustSet(t testing.TB, h *tier.Hybrid, key, v []byte) {
	t.Helper()
	if err := h.SetValue(key, v, 0); err != nil {
		t.Fatalf("SetValue(%q): %v", key, err)
	}
}

// rawConn dials addr and returns a connection for writing frames by hand.
func rawConn(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc
}

// readAll reads what nc sends until it is closed: the server must close
// it, or the deadline fails the read.
func readAll(t testing.TB, nc net.Conn) []byte {
	t.Helper()
	b, err := io.ReadAll(nc)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server did not close the connection (read %q)", b)
		}
	}
	return b
}
