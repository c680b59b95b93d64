package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/race"
	"github.com/tiercache/tiercache/internal/testutil"
)

// bins holds the daemon under test, built once by TestMain.
var bins map[string]string

var waitFor = testutil.WaitFor

func TestMain(m *testing.M) {
	os.Exit(testutil.Main(m, &bins, testutil.Command{Name: "tiercached", Pkg: "github.com/tiercache/tiercache/cmd/tiercached", Race: race.Enabled}))
}

// readyTimeout bounds a daemon's start: generous, for -race builds on
// two loaded cores.
const readyTimeout = 30 * time.Second

// proc is a tiercached process.
type proc struct {
	*testutil.Process
	t *testing.T
}

// startProc starts the daemon with exactly args and env (see testutil.Env),
// without waiting for it to be ready. It is killed at the end of the test
// if still running.
func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bins["tiercached"], args...)
	cmd.Env = env
	return &proc{testutil.StartProcess(t, "tiercached", cmd), t}
}

// runProc runs the daemon to completion and returns its exit code and
// output.
func runProc(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bins["tiercached"], args...)
	cmd.Env = env
	return testutil.RunProcess(t, "tiercached", readyTimeout, cmd)
}

// waitReady waits for the "ready" log line and returns it.
func (p *proc) waitReady() map[string]any {
	p.t.Helper()
	return p.WaitLogLine(readyTimeout, "ready")
}

// stop sends SIGTERM and checks the daemon exits 0 within 5 s.
func (p *proc) stop() {
	p.t.Helper()
	if code := p.Stop(5 * time.Second); code != 0 {
		p.t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.Stderr())
	}
}

// node is a started daemon on a socket in a test directory.
type node struct {
	*proc
	socket, dataDir string
	ready           map[string]any
}

// baseArgs are the arguments of a small daemon in dir: its socket and data
// directory there, small tiers, no NATS, JSON logs.
func baseArgs(socket, dataDir string) []string {
	return []string{
		"--socket", socket, "--data-dir", dataDir,
		"--mem-max", "8MiB", "--disk-max", "64MiB",
		"--nats", "off", "--log-format", "json",
	}
}

// startNode starts a small daemon with its socket and data directory in a
// fresh test directory (or those given in extra, which win: pflag keeps
// the last value of a flag) and waits until it is ready.
func startNode(t *testing.T, env []string, extra ...string) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{socket: filepath.Join(dir, "tc.sock"), dataDir: filepath.Join(dir, "data")}
	for i := 0; i+1 < len(extra); i++ {
		switch extra[i] {
		case "--socket":
			n.socket = extra[i+1]
		case "--data-dir":
			n.dataDir = extra[i+1]
		}
	}
	n.proc = startProc(t, testutil.Env(env...), append(baseArgs(n.socket, n.dataDir), extra...)...)
	n.ready = n.waitReady()
	return n
}

// client returns a Redis client of the daemon's socket, closed at the end
// of the test.
func (n *node) client(t *testing.T, password string) *redis.Client {
	return newClient(t, "unix", n.socket, password)
}

func newClient(t *testing.T, network, addr, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Network: network, Addr: addr, Password: password,
		Protocol: 2, MaxRetries: -1, PoolSize: 2, DialTimeout: 5 * time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustPing checks that the daemon answers PING.
func mustPing(t *testing.T, c *redis.Client) {
	t.Helper()
	if got, err := c.Ping(ctxT(t)).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
}
