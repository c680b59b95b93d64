package drill

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	env     []string // added to the test's environment (see testutil.Env)

	admin *redis.Client // for INFO and the like; survives restarts

	mu   sync.Mutex        // guards the fields below
	proc *testutil.Process // the current (or last) run; nil before the first start
	logs []string          // the logs of earlier runs
}

// newDaemon returns a daemon named name (its --node-id) running bin
// (bins["tiercached"] if empty) with args, its socket and data directory
// in a fresh test directory; call start to run it. It is killed at the
// end of the test if still running, and its logs are checked for data
// races and panics then (and saved, if the test failed; see logDirEnv).
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
		if p := d.current(); p != nil {
			p.Kill()
		}
		d.checkLogs()
		if t.Failed() {
			d.saveLogs()
		}
	})
	return d
}

func (d *daemon) current() *testutil.Process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

// start runs the daemon and waits until it logs "ready".
func (d *daemon) start() {
	d.t.Helper()
	d.launch().WaitLogLine(readyTimeout, "ready")
}

// launch starts the process without waiting for it to be ready.
func (d *daemon) launch() *testutil.Process {
	d.t.Helper()
	if p := d.current(); p != nil && !p.Exited() {
		d.t.Fatalf("%s is already running", d.name)
	}
	args := append([]string{"--socket", d.socket, "--data-dir", d.dataDir, "--log-format", "json"}, d.args...)
	cmd := exec.Command(d.bin, args...)
	cmd.Env = testutil.Env(d.env...)
	p := testutil.StartProcess(d.t, d.name, cmd)
	d.mu.Lock()
	if d.proc != nil {
		d.logs = append(d.logs, d.proc.Stderr())
	}
	d.proc = p
	d.mu.Unlock()
	return p
}

// pid returns the running process's id.
func (d *daemon) pid() int { return d.current().Pid() }

// kill sends SIGKILL and waits for the process to be gone. It returns the
// time just before the signal was sent: the process died after it.
func (d *daemon) kill() time.Time {
	p := d.current()
	at := time.Now()
	p.Kill()
	return at
}

// stop sends SIGTERM and checks that the daemon exits 0.
func (d *daemon) stop() {
	d.t.Helper()
	p := d.current()
	if code := p.Stop(2 * readyTimeout); code != 0 {
		d.t.Fatalf("%s exited with %d after SIGTERM:\n%s", d.name, code, testutil.Tail(p.Stderr(), 40))
	}
}

// checkAlive fails the test if the daemon exited.
func (d *daemon) checkAlive() {
	d.t.Helper()
	if p := d.current(); p.Exited() {
		d.t.Fatalf("%s exited with %d:\n%s", d.name, p.ExitCode(), testutil.Tail(p.Stderr(), 40))
	}
}

// allLogs returns the logs of every run of the daemon so far.
func (d *daemon) allLogs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	all := strings.Join(d.logs, "")
	if d.proc != nil {
		all += d.proc.Stderr()
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
