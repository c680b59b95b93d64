package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// newTestDaemon returns a small daemon in a test directory, not started.
func newTestDaemon(t *testing.T, mod func(*options)) (*daemon, *observer.ObservedLogs) {
	t.Helper()
	dir := t.TempDir()
	core, logs := observer.New(zapcore.DebugLevel)
	o := options{
		Socket: filepath.Join(dir, "tc.sock"), DataDir: filepath.Join(dir, "data"),
		MemMax: 8 << 20, DiskMax: 64 << 20, NATS: natsOff, Logger: zap.New(core),
	}
	if mod != nil {
		mod(&o)
	}
	d, err := newDaemon(o)
	if err != nil {
		t.Fatal(err)
	}
	return d, logs
}

func TestDaemonInProcess(t *testing.T) {
	d, logs := newTestDaemon(t, func(o *options) { o.Metrics = "127.0.0.1:0"; o.TCP = "127.0.0.1:0" })
	if d.healthy.Load() {
		t.Fatal("healthy before start")
	}
	d.startServing()
	d.startServing() // once only
	if n := logs.FilterMessage("ready").Len(); n != 1 {
		t.Fatalf("%d ready lines", n)
	}
	for _, ep := range []struct{ network, addr string }{{"unix", d.opts.Socket}, {"tcp", d.tcp.Addr().String()}} {
		c := newClient(t, ep.network, ep.addr, "")
		ctx := ctxT(t)
		if err := c.Set(ctx, "k", ep.network, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get(ctx, "k").Result(); err != nil || got != ep.network {
			t.Fatalf("GET = %q, %v", got, err)
		}
		c.Close()
	}
	if code, body := httpGet(t, "http://"+d.metricsLn.Addr().String()+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.shutdown(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	if d.healthy.Load() {
		t.Fatal("healthy after shutdown")
	}
	if _, err := os.Lstat(d.opts.Socket); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left: %v", err)
	}
	select {
	case err := <-d.failed():
		t.Fatalf("listener failure reported: %v", err)
	default:
	}
}

// TestDaemonShutdownWithoutStart: a daemon that was never started still
// releases everything.
func TestDaemonShutdownWithoutStart(t *testing.T) {
	d, _ := newTestDaemon(t, func(o *options) { o.Metrics = "127.0.0.1:0"; o.TCP = "127.0.0.1:0" })
	if err := d.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{d.metricsLn, d.tcp} {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
			t.Fatalf("%v still listening", ln.Addr())
		}
	}
	// The data directory is free again.
	d2, _ := newTestDaemon(t, func(o *options) { o.DataDir = d.opts.DataDir })
	if err := d2.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonStartFailureReleases: a start-up error after the cache is open
// leaves nothing open: the same data directory opens right after.
func TestDaemonStartFailureReleases(t *testing.T) {
	dir := t.TempDir()
	// A socket path of 107 bytes is valid, but the temporary socket next
	// to it would be longer: listenUnix, the last step, fails.
	deep := filepath.Join(dir, strings.Repeat("d", maxSocketPath-len(dir)-3))
	if err := os.Mkdir(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	o := options{
		Socket: filepath.Join(deep, "s"), DataDir: filepath.Join(dir, "data"),
		MemMax: 8 << 20, DiskMax: 64 << 20, NATS: natsOff, Metrics: "127.0.0.1:0",
	}
	if len(o.Socket) != maxSocketPath {
		t.Fatalf("socket path of %d bytes", len(o.Socket))
	}
	if _, err := newDaemon(o); err == nil || !strings.Contains(err.Error(), "too deep") {
		t.Fatalf("newDaemon: %v, want the directory too deep", err)
	}
	if entries, _ := os.ReadDir(deep); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	o.Socket = filepath.Join(dir, "tc.sock")
	d, err := newDaemon(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDataDirErr(t *testing.T) {
	locked := fmt.Errorf("%w: open: %w", disktier.ErrStorage, syscall.EAGAIN)
	if err := dataDirErr("/d", locked); !errors.Is(err, errDataDirLocked) || err.Error() != "data directory /d is locked by another daemon" {
		t.Fatalf("locked: %v", err)
	}
	denied := fmt.Errorf("%w: open: %w", disktier.ErrStorage, &fs.PathError{Op: "open", Path: "/d/LOCK", Err: syscall.EACCES})
	if err := dataDirErr("/d", denied); errors.Is(err, errDataDirLocked) {
		t.Fatalf("permission denied taken for a lock: %v", err)
	}
}

func TestInspectSocket(t *testing.T) {
	dir := t.TempDir()
	absent := filepath.Join(dir, "absent")
	if fi, err := inspectSocket(absent); fi != nil || err != nil {
		t.Fatalf("absent: %v, %v", fi, err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := inspectSocket(file); !errors.Is(err, errNotSocket) {
		t.Fatalf("file: %v", err)
	}
	live := filepath.Join(dir, "live")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inspectSocket(live); !errors.Is(err, errSocketInUse) {
		t.Fatalf("live: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	fi, err := inspectSocket(live)
	if err != nil || fi == nil {
		t.Fatalf("stale: %v, %v", fi, err)
	}
	if err := removeStale(live, fi); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(live); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale socket not removed: %v", err)
	}
}

// TestListenUnixNeverWider watches the socket path while listenUnix runs
// under umask 0 (a socket would be born 0777): the path never shows any
// mode but the one asked for.
func TestListenUnixNeverWider(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "tc.sock")
	for i := range 30 {
		var stop atomic.Bool
		var wg sync.WaitGroup
		var seen sync.Map // fs.FileMode → true
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if fi, err := os.Lstat(path); err == nil {
					seen.Store(fi.Mode(), true)
				}
			}
		}()
		s, err := listenUnix(path, 0o600)
		if err == nil {
			// Let the watcher see the final state at least once.
			waitFor(t, 5*time.Second, "the watcher to see the socket", func() bool {
				_, ok := seen.Load(fs.ModeSocket | 0o600)
				return ok
			})
		}
		stop.Store(true)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		seen.Range(func(k, _ any) bool {
			if m := k.(fs.FileMode); m != fs.ModeSocket|0o600 {
				t.Errorf("round %d: the socket path had mode %v", i, m)
			}
			return true
		})
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("left behind: %v", entries)
		}
	}
}

// TestListenUnixRefusesLive: listenUnix does not take a live socket, even
// one that appeared after the daemon's first check.
func TestListenUnixRefusesLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tc.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := listenUnix(path, 0o660); !errors.Is(err, errSocketInUse) {
		t.Fatalf("listenUnix on a live socket: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

// TestSocketCloseKeepsSuccessor: close removes the socket file only while
// it is the daemon's own.
func TestSocketCloseKeepsSuccessor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tc.sock")
	s, err := listenUnix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	// Someone removed it and another daemon took the path.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	other, err := listenUnix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the successor's socket was removed: %v", err)
	}
	if err := other.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left: %v", err)
	}
}

func TestLogLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLogLimiter(time.Second)
	l.now = func() time.Time { return now }
	if ok, n := l.allow("write"); !ok || n != 0 {
		t.Fatalf("first: %v %d", ok, n)
	}
	for range 5 {
		if ok, _ := l.allow("write"); ok {
			t.Fatal("allowed within the interval")
		}
	}
	if ok, _ := l.allow("read"); !ok {
		t.Fatal("another key held back")
	}
	now = now.Add(time.Second)
	if ok, n := l.allow("write"); !ok || n != 5 {
		t.Fatalf("after the interval: %v %d, want true 5", ok, n)
	}
	if ok, n := l.allow("read"); !ok || n != 0 {
		t.Fatalf("read: %v %d", ok, n)
	}
}

func TestDiskLineLevels(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	diskLine(log, "disktier: pebble: Found 0 WALs", nil)
	diskLine(log, "disktier: storage fault, writes stop until Pebble is reopened: x", suppressed(3))
	all := logs.All()
	if len(all) != 2 || all[0].Level != zapcore.InfoLevel || all[0].Message != "pebble: Found 0 WALs" ||
		all[1].Level != zapcore.WarnLevel || all[1].Message != "storage fault, writes stop until Pebble is reopened: x" ||
		all[1].ContextMap()["suppressed"] != uint64(3) {
		t.Fatalf("logged %+v", all)
	}
}
