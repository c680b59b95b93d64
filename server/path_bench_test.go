package server

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/tier"
)

// scriptConn is a net.Conn that plays one client in request/response
// fashion: each Read returns bytes of the current command only, and the
// next command becomes readable once the server has written a reply. Replies
// are counted and dropped. It lets a benchmark run conn.serve in-process,
// so allocations and CPU profiles show the server's own path without a
// client or the kernel.
type scriptConn struct {
	cmds    [][]byte // played in a loop
	n       int      // commands left to play
	cur     []byte   // unread part of the current command
	waiting bool     // the current command was read in full: wait for its reply
	replied int64    // reply bytes written
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.cur) == 0 {
		if c.n == 0 {
			return 0, io.EOF
		}
		if c.waiting {
			// The server reads ahead only when it has replied: a real
			// client would not have sent the next command yet.
			return 0, fmt.Errorf("scriptConn: read before the reply")
		}
		c.cur = c.cmds[c.n%len(c.cmds)]
		c.n--
	}
	k := copy(p, c.cur)
	c.cur = c.cur[k:]
	c.waiting = len(c.cur) == 0
	return k, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.replied += int64(len(p))
	c.waiting = false
	return len(p), nil
}

func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "bench", Net: "unix"} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "bench", Net: "unix"} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// benchServer is a Server over a write-back Hybrid whose L1 holds the whole
// working set, so that GETs are served from memory.
func benchServer(b testing.TB) *Server {
	b.Helper()
	bufs := bufpool.New(bufpool.Options{})
	l1, err := memtier.New(memtier.Options{MaxBytes: 1 << 30, Buffers: bufs})
	if err != nil {
		b.Fatal(err)
	}
	l2, err := disktier.Open(disktier.Options{Dir: b.TempDir(), MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2, WritePolicy: tier.WriteBack, Buffers: bufs})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Cache: h, Models: tier.NewLocalRegistry(h.Registry)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := h.Close(); err != nil {
			b.Error(err)
		}
	})
	return s
}

// BenchmarkServerPath runs GET and SET through the whole server path
// (RESP parsing, command dispatch, the Hybrid and L1, reply writing) in
// request/response fashion, for the value sizes pipelines store. B/op and
// allocs/op are the server's own: a GET of a value held in memory should
// allocate nothing of the value's size.
func BenchmarkServerPath(b *testing.B) {
	const keys = 16
	for _, size := range []int{1 << 10, 118 << 10, 4 << 20} {
		value := bytes.Repeat([]byte{'v'}, size)
		sets := make([][]byte, keys)
		gets := make([][]byte, keys)
		for i := range keys {
			k := []byte(fmt.Sprintf("key:%012d", i))
			sets[i] = encodeArgs([][]byte{[]byte("SET"), k, value})
			gets[i] = encodeArgs([][]byte{[]byte("GET"), k})
		}
		for _, op := range []string{"set", "get"} {
			b.Run(fmt.Sprintf("%s/%dKB", op, size>>10), func(b *testing.B) {
				s := benchServer(b)
				play(b, s, sets, keys) // the GETs hit
				cmds := sets
				if op == "get" {
					cmds = gets
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				sc := play(b, s, cmds, b.N)
				b.StopTimer()
				if op == "get" && sc.replied < int64(b.N)*int64(size) {
					b.Fatalf("replied %d bytes to %d GETs of %d bytes: misses", sc.replied, b.N, size)
				}
			})
		}
	}
}

// play runs n commands from cmds through one connection of s.
func play(b testing.TB, s *Server, cmds [][]byte, n int) *scriptConn {
	sc := &scriptConn{cmds: cmds, n: n}
	c := newConn(s, sc)
	c.serve()
	return sc
}

// TestGetAllocatesNoValue checks that a GET of a value held in L1 (1 KB and
// more: the large store) allocates nothing of the value's size anywhere on
// the server path: the stored record is written to the connection as it is.
func TestGetAllocatesNoValue(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation accounting needs a quiet process")
	}
	s := benchServer(t)
	for _, size := range []int{1 << 10, 118 << 10, 4 << 20} {
		k := []byte(fmt.Sprintf("key:%d", size))
		play(t, s, [][]byte{encodeArgs([][]byte{[]byte("SET"), k, bytes.Repeat([]byte{'v'}, size)})}, 1)
		get := [][]byte{encodeArgs([][]byte{[]byte("GET"), k})}
		play(t, s, get, 10) // warm the connection's buffers up
		const n = 200
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		sc := play(t, s, get, n)
		runtime.ReadMemStats(&after)
		if sc.replied < n*int64(size) {
			t.Fatalf("%d bytes: replied %d bytes to %d GETs: misses", size, sc.replied, n)
		}
		// The connection itself (buffers, goroutine-free here) and stray
		// background allocations stay far below one value per GET.
		if per := (after.TotalAlloc - before.TotalAlloc) / n; per > uint64(size)/4 {
			t.Errorf("GET of %d bytes allocated %d bytes per request", size, per)
		}
	}
}
