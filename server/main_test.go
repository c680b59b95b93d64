package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is a Server on a real Unix socket, over a real Hybrid (bigcache
// L1, Pebble L2 in a temporary directory), with a manual clock.
type testServer struct {
	s     *Server
	h     *tier.Hybrid
	l1    *memtier.Cache // the Hybrid's L1, for tests that empty it
	l2    *disktier.Store
	sock  string
	clock *tier.ManualClock
	opts  Options // as given to New (before defaults)
}

// startServer starts a server; mod may change its Options (Cache and Clock
// are set already). Everything is shut down and checked in t.Cleanup.
func startServer(t testing.TB, mod func(*Options)) *testServer {
	t.Helper()
	return startServerDisk(t, 256<<20, mod)
}

// startServerDisk is startServer with an L2 of diskMax bytes.
func startServerDisk(t testing.TB, diskMax int64, mod func(*Options)) *testServer {
	t.Helper()
	clock := tier.NewManualClock(time.Now())
	// Values are read into recycled buffers, as in the daemon; poisoned
	// when freed, so that a reply built from a buffer reused under it shows.
	bufs := bufpool.New(bufpool.Options{MaxBytes: 16 << 20, Poison: true})
	l1, err := memtier.New(memtier.Options{MaxBytes: 32 << 20, Clock: clock, Buffers: bufs})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := disktier.Open(disktier.Options{Dir: t.TempDir(), MaxBytes: diskMax, Clock: clock})
	if err != nil {
		l1.Close()
		t.Fatal(err)
	}
	h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2, Clock: clock, Buffers: bufs})
	if err != nil {
		l1.Close()
		l2.Close()
		t.Fatal(err)
	}
	opts := Options{Cache: h, Models: tier.NewLocalRegistry(h.Registry), Clock: clock, Version: "test", NodeID: "node-test"}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	// A short directory: Unix socket paths are limited to ~108 bytes, and
	// t.TempDir() embeds the (possibly long) test name.
	dir, err := os.MkdirTemp("", "tcs")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if err := h.Close(); err != nil {
			t.Errorf("Hybrid.Close: %v", err)
		}
		os.RemoveAll(dir)
	})
	return &testServer{s: s, h: h, l1: l1, l2: l2, sock: sock, clock: clock, opts: opts}
}

// client returns a go-redis client of the server, closed at the end of the
// test. Without opts it is a default client (which starts with HELLO 3).
func (ts *testServer) client(t testing.TB, opts *redis.Options) *redis.Client {
	t.Helper()
	if opts == nil {
		opts = &redis.Options{}
	}
	opts.Network, opts.Addr = "unix", ts.sock
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 30 * time.Second // -race on 2 cores is slow
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a plain connection to the server, for bytes no client would send.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func (ts *testServer) dial(t testing.TB) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// reply reads one reply, with a deadline, and returns it in the compact
// form of formatReply.
func (c *rawConn) reply() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	v, err := readReply(c.br)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return formatReply(v)
}

// do sends a command as a RESP array and returns its reply.
func (c *rawConn) do(args ...string) string {
	c.t.Helper()
	c.send(encodeCommand(args...))
	return c.reply()
}

// expectClosed checks that the server closes the connection (after any
// replies already read).
func (c *rawConn) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c.br)
	if err != nil {
		c.t.Fatalf("connection not closed by the server: %v (read %q)", err, b)
	}
	if len(b) > 0 {
		c.t.Fatalf("unexpected bytes before close: %q", b)
	}
}

func encodeCommand(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// respError is an error reply.
type respError string

// readReply reads one RESP2 reply strictly: a simple string (string), an
// error (respError), an integer (int64), a bulk string ([]byte, nil for
// $-1) or an array ([]any, nil for *-1). Anything else is an error.
func readReply(br *bufio.Reader) (any, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("bad line %q", line)
	}
	body := line[1 : len(line)-2]
	if strings.ContainsAny(body, "\r\n") {
		return nil, fmt.Errorf("CR or LF inside line %q", line)
	}
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return respError(body), nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad integer %q", line)
		}
		return n, nil
	case '$':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("bad bulk length %q", line)
		}
		if n == -1 {
			return []byte(nil), nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		if string(b[n:]) != "\r\n" {
			return nil, fmt.Errorf("bulk string of %d bytes not followed by CRLF", n)
		}
		return b[:n], nil
	case '*':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("bad array length %q", line)
		}
		if n == -1 {
			return []any(nil), nil
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readReply(br); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", line)
}

// formatReply renders a reply compactly for comparisons: +OK, -ERR …, :3,
// "bulk" (quoted), (nil), [a b].
func formatReply(v any) string {
	switch v := v.(type) {
	case string:
		return "+" + v
	case respError:
		return "-" + string(v)
	case int64:
		return ":" + strconv.FormatInt(v, 10)
	case []byte:
		if v == nil {
			return "(nil)"
		}
		return strconv.Quote(string(v))
	case []any:
		if v == nil {
			return "(nil array)"
		}
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = formatReply(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("?%T", v)
}

// infoField returns one field of INFO text, and whether it is there.
func infoField(info, name string) (string, bool) {
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == name {
			return v, true
		}
	}
	return "", false
}

var waitFor = testutil.WaitFor
