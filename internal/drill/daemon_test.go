package drill

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/testutil"
)

// readyTimeout bounds a daemon's start: generous, for -race builds on two
// loaded cores.
const readyTimeout = 60 * time.Second

// daemon is a tiercached that a drill starts, kills and restarts on the
// same socket and data directory.
type daemon struct {
	t       testing.TB
	name    string
	bin     string
	socket  string
	dataDir string
	args    []string // every flag but --socket, --data-dir and --log-format
	env     []string // added to the test's environment (see daemonEnv)

	admin *redis.Client // for INFO and the like; survives restarts

	mu   sync.Mutex // guards the fields below
	proc *process   // the current (or last) process; nil before the first start
	logs []string   // the logs of earlier processes
}

// process is one run of a daemon.
type process struct {
	cmd    *exec.Cmd
	log    testutil.SyncBuffer // stdout and stderr
	exited chan struct{}
	code   int // valid once exited is closed
}

// newDaemon returns a daemon named name (its --node-id) running bin
// (bins["tiercached"] if empty) with args, its socket and data directory
// in a fresh test directory; call start to run it. It is killed at the
// end of the test if still running, and its logs are checked for data
// races and panics then.
func newDaemon(t testing.TB, name, bin string, args ...string) *daemon {
	t.Helper()
	if bin == "" {
		bin = bins["tiercached"]
	}
	dir := t.TempDir()
	d := &daemon{
		t: t, name: name, bin: bin,
		socket:  filepath.Join(dir, "tc.sock"),
		dataDir: filepath.Join(dir, "data"),
		args:    append([]string{"--node-id", name}, args...),
	}
	d.admin = redis.NewClient(&redis.Options{
		Network: "unix", Addr: d.socket, Protocol: 2, MaxRetries: -1,
		PoolSize: 1, DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
	})
	t.Cleanup(func() {
		d.admin.Close()
		if p := d.current(); p != nil && !p.done() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		d.checkLogs()
		if t.Failed() {
			t.Logf("%s: last log lines:\n%s", d.name, tail(d.allLogs(), 40))
			d.saveLogs()
		}
	})
	return d
}

// daemonEnv is the environment of a daemon: the test's, without TIERCACHE_*
// variables and GOMEMLIMIT (the drills pass flags), plus extra.
func daemonEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TIERCACHE_") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

func (p *process) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (d *daemon) current() *process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

// start runs the daemon and waits until it logs "ready".
func (d *daemon) start() {
	d.t.Helper()
	p := d.launch()
	deadline := time.Now().Add(readyTimeout)
	for !strings.Contains(p.log.String(), `"msg":"ready"`) {
		if p.done() {
			d.t.Fatalf("%s exited with %d before it was ready:\n%s", d.name, p.code, tail(p.log.String(), 40))
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s not ready after %v:\n%s", d.name, readyTimeout, tail(p.log.String(), 40))
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// launch starts the process without waiting for it to be ready.
func (d *daemon) launch() *process {
	d.t.Helper()
	if p := d.current(); p != nil && !p.done() {
		d.t.Fatalf("%s is already running", d.name)
	}
	p := &process{exited: make(chan struct{})}
	args := append([]string{"--socket", d.socket, "--data-dir", d.dataDir, "--log-format", "json"}, d.args...)
	p.cmd = exec.Command(d.bin, args...)
	p.cmd.Env = daemonEnv(d.env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		d.t.Fatalf("%s: %v", d.name, err)
	}
	go func() {
		p.code = testutil.ExitCode(p.cmd.Wait())
		close(p.exited)
	}()
	d.mu.Lock()
	if d.proc != nil {
		d.logs = append(d.logs, d.proc.log.String())
	}
	d.proc = p
	d.mu.Unlock()
	return p
}

// pid returns the running process's id.
func (d *daemon) pid() int { return d.current().cmd.Process.Pid }

// kill sends SIGKILL and waits for the process to be gone. It returns the
// time just before the signal was sent: the process died after it.
func (d *daemon) kill() time.Time {
	d.t.Helper()
	p := d.current()
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.done() {
		d.t.Fatalf("%s: SIGKILL: %v", d.name, err)
	}
	<-p.exited
	return at
}

// stop sends SIGTERM and checks that the daemon exits 0.
func (d *daemon) stop() {
	d.t.Helper()
	p := d.current()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatalf("%s: SIGTERM: %v", d.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(2 * readyTimeout):
		d.t.Fatalf("%s still running %v after SIGTERM", d.name, 2*readyTimeout)
	}
	if p.code != 0 {
		d.t.Fatalf("%s exited with %d after SIGTERM:\n%s", d.name, p.code, tail(p.log.String(), 40))
	}
}

// checkAlive fails the test if the daemon exited.
func (d *daemon) checkAlive() {
	d.t.Helper()
	if p := d.current(); p.done() {
		d.t.Fatalf("%s exited with %d:\n%s", d.name, p.code, tail(p.log.String(), 40))
	}
}

func (d *daemon) allLogs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	all := strings.Join(d.logs, "")
	if d.proc != nil {
		all += d.proc.log.String()
	}
	return all
}

// logDirEnv names a directory where the full logs of the daemons of a
// failed drill are written (they are only tailed in the test output).
const logDirEnv = "TIERCACHE_DRILL_LOGDIR"

func (d *daemon) saveLogs() {
	dir := os.Getenv(logDirEnv)
	if dir == "" {
		return
	}
	name := filepath.Join(dir, strings.NewReplacer("/", "_").Replace(d.t.Name())+"-"+d.name+".log")
	if err := os.WriteFile(name, []byte(d.allLogs()), 0o644); err != nil {
		d.t.Logf("%s: saving its log: %v", d.name, err)
		return
	}
	d.t.Logf("%s: full log in %s", d.name, name)
}

// checkLogs fails the test if a run of the daemon reported a data race
// (a -race build does not stop for one) or a panic.
func (d *daemon) checkLogs() {
	logs := d.allLogs()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if i := strings.Index(logs, bad); i >= 0 {
			d.t.Errorf("%s: its log reports %q:\n%s", d.name, bad, logs[i:min(len(logs), i+8000)])
		}
	}
}

// client returns a go-redis client of the daemon's socket with n
// connections, no retries (a drill counts every command it sends), closed
// at the end of the test.
func (d *daemon) client(n int) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Network: "unix", Addr: d.socket, Protocol: 2, MaxRetries: -1,
		PoolSize: n, MinIdleConns: 0, DialTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
	})
	d.t.Cleanup(func() { c.Close() })
	return c
}

// info returns the daemon's INFO fields.
func (d *daemon) info() map[string]string {
	d.t.Helper()
	m, err := infoOf(context.Background(), d.admin)
	if err != nil {
		d.t.Fatalf("%s: INFO: %v", d.name, err)
	}
	return m
}

// infoInt returns one numeric INFO field.
func (d *daemon) infoInt(field string) int64 {
	d.t.Helper()
	v, ok := d.info()[field]
	if !ok {
		d.t.Fatalf("%s: INFO has no %s", d.name, field)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		d.t.Fatalf("%s: INFO %s = %q: %v", d.name, field, v, err)
	}
	return n
}

func infoOf(ctx context.Context, c *redis.Client) (map[string]string, error) {
	txt, err := c.Info(ctx, "everything").Result()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
