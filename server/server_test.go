package server

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

func TestOptionsValidate(t *testing.T) {
	_, err := New(Options{MaxValue: -1, MaxClients: -1, MaxArgs: -1, WriteTimeout: -time.Second, MaxInflight: 10})
	if err == nil {
		t.Fatal("New accepted invalid options")
	}
	for _, want := range []string{"Cache is required", "Models is required", "max value -1", "max clients -1", "max args -1", "write timeout -1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	ts := startServer(t, nil)
	_, err = New(Options{Cache: ts.h, Models: tier.NewLocalRegistry(ts.h.Registry), MaxValue: 1 << 20, MaxInflight: 1 << 10})
	if err == nil || !strings.Contains(err.Error(), "in-flight budget 1024 is below the max value 1048576") {
		t.Fatalf("MaxInflight below MaxValue: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	ts := startServer(t, nil)
	idle := ts.dial(t)
	if got := idle.do("PING"); got != "+PONG" {
		t.Fatal(got)
	}
	// A client in the middle of sending a value.
	partial := ts.dial(t)
	partial.send("*3\r\n$3\r\nSET\r\n$1\r\np\r\n$100\r\n0123456789")
	// A client with a pipeline being answered: the commands the server has
	// read are run and their replies flushed before it closes.
	busy := ts.dial(t)
	const n = 2000
	var batch strings.Builder
	for i := range n {
		batch.WriteString(encodeCommand("SET", "b"+strconv.Itoa(i), "v"))
	}
	go func() { _, _ = io.WriteString(busy.nc, batch.String()) }()
	if got := busy.reply(); got != "+OK" {
		t.Fatal(got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("Shutdown took %v", time.Since(start))
	if n := ts.connectedClients(); n != 0 {
		t.Fatalf("%d clients still connected after Shutdown", n)
	}
	// Every SET acknowledged was applied.
	replies, err := busy.repliesUntilClosed()
	if err != nil {
		t.Fatalf("busy connection: %v", err)
	}
	acked := 1 + len(replies)
	for i, r := range replies {
		if r != "+OK" {
			t.Fatalf("reply %d: %s", i+1, r)
		}
	}
	t.Logf("%d of %d pipelined SETs answered before the shutdown", acked, n)
	for i := range acked {
		if _, err := ts.h.Get([]byte("b" + strconv.Itoa(i))); err != nil {
			t.Fatalf("acknowledged SET b%d: %v", i, err)
		}
	}
	for _, c := range []*rawConn{idle, partial} {
		if r, err := c.repliesUntilClosed(); err != nil || len(r) != 0 {
			t.Fatalf("connection after Shutdown: replies %v, %v", r, err)
		}
	}
	if _, err := ts.h.Get([]byte("p")); err == nil {
		t.Fatal("the half-sent SET was applied")
	}
	// No new connections, and Serve refuses new listeners.
	if nc, err := net.Dial("unix", ts.sock); err == nil {
		nc.Close()
		t.Fatal("dial succeeded after Shutdown")
	}
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "again.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := ts.s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	// Shutdown is idempotent (the cleanup calls it once more).
	if err := ts.s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	// A client that does not read its replies holds its connection in a
	// write for up to WriteTimeout; Shutdown's context cuts that short.
	ts := startServer(t, func(o *Options) { o.WriteTimeout = time.Minute })
	c := ts.dial(t)
	if got := c.do("SET", "big", strings.Repeat("x", 256<<10)); got != "+OK" {
		t.Fatal(got)
	}
	go func() { _, _ = io.WriteString(c.nc, strings.Repeat(encodeCommand("GET", "big"), 400)) }()
	// The first reply bytes show the server is answering.
	_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.br.Peek(1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := ts.s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stuck writer: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if n := ts.connectedClients(); n != 0 {
		t.Fatalf("%d clients still connected after Shutdown", n)
	}
}
