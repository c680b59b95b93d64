package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/testutil"
)

func TestParse(t *testing.T) {
	cmd := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"
	for i := range len(cmd) {
		if _, n, err := parse([]byte(cmd[:i]), nil); n != 0 || err != nil {
			t.Fatalf("prefix %q: n=%d err=%v, want an incomplete command", cmd[:i], n, err)
		}
	}
	args, n, err := parse([]byte(cmd+"*1"), nil)
	if err != nil || n != len(cmd) || len(args) != 3 || string(args[2]) != "hello" {
		t.Fatalf("parse = %q, %d, %v", args, n, err)
	}
	for _, bad := range []string{"+PING\r\n", "*1\n", "*x\r\n", "*1\r\n$-1\r\n", "*1\r\n$999999999999\r\n"} {
		if _, _, err := parse([]byte(bad), nil); err == nil {
			t.Errorf("parse(%q) accepted it", bad)
		}
	}
}

// exercise SETs and GETs through a real Redis client, with values large
// enough to need several reads and writes.
func exercise(t *testing.T, sock string) {
	ctx := context.Background()
	// Generous timeouts: a pipeline of 22 MB under -race on a loaded
	// machine outlasted go-redis' default 3 s; this checks answers, not speed.
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock, MaxRetries: -1, Protocol: 2, DisableIdentity: true,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	defer c.Close()
	big := strings.Repeat("v", 4<<20)
	for _, v := range []string{"", "x", big} {
		if err := c.Set(ctx, "k", v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(ctx, "k").Result()
		if err != nil || got != v {
			t.Fatalf("GET: %d bytes, %v; want %d bytes", len(got), err, len(v))
		}
	}
	if err := c.Get(ctx, "missing").Err(); err != redis.Nil {
		t.Fatalf("GET missing: %v, want nil", err)
	}
	mid := strings.Repeat("m", 64<<10)
	if err := c.Set(ctx, "m", mid, 0).Err(); err != nil {
		t.Fatal(err)
	}
	pipe := c.Pipeline()
	for i := range 100 {
		if i%25 == 0 {
			pipe.Get(ctx, "k")
		} else {
			pipe.Get(ctx, "m")
		}
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		if want := map[bool]string{true: big, false: mid}[i%25 == 0]; cmd.(*redis.StringCmd).Val() != want {
			t.Fatal("pipelined GET lost its value")
		}
	}
	if err := c.Do(ctx, "DEL", "k").Err(); err == nil || !strings.Contains(err.Error(), "SET and GET only") {
		t.Fatalf("DEL: %v", err)
	}
}

func TestGoroutines(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := &store{m: make(map[string][]byte)}
	done := make(chan error)
	go func() { done <- s.accept(l) }()
	exercise(t, sock)
	l.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestEpoll(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("epoll is Linux only")
	}
	sock := filepath.Join(t.TempDir(), "e.sock")
	s := &store{m: make(map[string][]byte)}
	// The loop has no stop: it waits in epoll_wait on its own thread until
	// the test binary exits.
	go s.serveEpoll(sock)
	testutil.WaitFor(t, 10*time.Second, "the epoll loop's socket", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	exercise(t, sock)
}
