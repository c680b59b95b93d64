package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/testutil"
)

// bins holds the daemon under test, built once by TestMain.
var bins map[string]string

var waitFor = testutil.WaitFor

func TestMain(m *testing.M) {
	os.Exit(testutil.Main(m, &bins, testutil.Command{Name: "tiercached", Pkg: "github.com/tiercache/tiercache/cmd/tiercached", Race: raceEnabled}))
}

// readyTimeout bounds a daemon's start: generous, for -race builds on
// two loaded cores.
const readyTimeout = 30 * time.Second

// proc is a tiercached process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout testutil.SyncBuffer
	stderr testutil.SyncBuffer
	exited chan struct{} // closed once Wait returned
	code   int           // exit code, valid once exited is closed
}

// testEnv is the environment of a daemon under test: the test's own,
// without TIERCACHE_* variables and GOMEMLIMIT, plus env.
func testEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// startProc starts the daemon with exactly args and env (see testEnv),
// without waiting for it to be ready. It is killed at the end of the test
// if still running.
func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, exited: make(chan struct{})}
	p.cmd = exec.Command(bins["tiercached"], args...)
	p.cmd.Env = env
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.code = testutil.ExitCode(p.cmd.Wait())
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
			t.Logf("killed daemon; its log:\n%s", p.stderr.String())
		}
	})
	return p
}

// run runs the daemon to completion and returns its exit code and output.
func runProc(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startProc(t, env, args...)
	code = p.wait(readyTimeout)
	return code, p.stdout.String(), p.stderr.String()
}

// wait waits up to timeout for the process to exit and returns its code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("daemon still running after %v; log:\n%s", timeout, p.stderr.String())
		return 0
	}
}

// logLines returns the JSON log lines so far (tests run with
// --log-format json).
func (p *proc) logLines() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// logLine returns the first log line with message msg, or nil.
func (p *proc) logLine(msg string) map[string]any {
	for _, m := range p.logLines() {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}

// waitReady waits for the "ready" log line and returns it.
func (p *proc) waitReady() map[string]any {
	p.t.Helper()
	var ready map[string]any
	deadline := time.Now().Add(readyTimeout)
	for ready == nil {
		select {
		case <-p.exited:
			p.t.Fatalf("daemon exited with %d before it was ready; stderr:\n%s", p.code, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("daemon not ready after %v; stderr:\n%s", readyTimeout, p.stderr.String())
		}
		ready = p.logLine("ready")
		if ready == nil {
			time.Sleep(5 * time.Millisecond) // polling interval
		}
	}
	return ready
}

// signal sends sig to the daemon.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// stop sends SIGTERM and checks the daemon exits 0 within 5 s.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(5 * time.Second); code != 0 {
		p.t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
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
	n.proc = startProc(t, testEnv(env...), append(baseArgs(n.socket, n.dataDir), extra...)...)
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
