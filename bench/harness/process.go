package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kinds of system under test.
const (
	kindTiercache = "tiercached"
	kindRedis     = "redis"
	kindMemcached = "memcached"
)

// proc is one running server: a tiercached, redis-server or memcached
// process listening on a Unix socket in the run's work directory.
type proc struct {
	name    string // e.g. "tiercached", "redis"
	kind    string
	socket  string
	tcp     string // when set, clients dial this loopback TCP address instead of socket
	cmd     *exec.Cmd
	start   time.Time // just before the process was started
	done    chan struct{}
	err     error      // the process' exit status, once done is closed
	log     *tailBuf   // the last lines of its stdout and stderr
	peak    int64      // VmHWM read at stop, bytes
	stopMu  sync.Mutex // guards stopped
	stopped bool
}

// tailBuf keeps the last few KiB a process wrote, for error messages.
type tailBuf struct {
	mu sync.Mutex // guards b
	b  []byte
}

func (t *tailBuf) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = append(t.b[:0], t.b[len(t.b)-4<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuf) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// startProc starts argv and waits until ready answers nil, the process
// exits, or timeout passes.
func startProc(ctx context.Context, name, kind, socket string, argv []string, timeout time.Duration) (*proc, error) {
	p, err := launch(name, kind, socket, argv)
	if err != nil {
		return nil, err
	}
	if timeout == 0 {
		return p, nil
	}
	if err := p.waitReady(ctx, timeout); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// launch starts argv without waiting for readiness.
func launch(name, kind, socket string, argv []string) (*proc, error) {
	p := &proc{name: name, kind: kind, socket: socket, log: &tailBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	p.cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls the socket with the kind's no-op command (PING, or
// memcached's version) until it answers.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start-up (%v): %s", p.name, p.err, p.log)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if last = p.ping(); last == nil {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v: %s", p.name, timeout, last, p.log)
}

func (p *proc) ping() error {
	if p.kind == kindMemcached {
		c, err := dialMemcache(p.socket, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.version()
		return err
	}
	c, err := p.respTimeout(time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	r, err := c.doString("PING")
	if err != nil {
		return err
	}
	if r != "PONG" {
		return fmt.Errorf("PING answered %q", r)
	}
	return nil
}

// dial opens a load connection of the right protocol.
func (p *proc) dial() (kvConn, error) {
	if p.kind == kindMemcached {
		return dialMemcache(p.socket, 5*time.Second)
	}
	return p.respTimeout(5 * time.Second)
}

// respTimeout opens a RESP connection over TCP or the Unix socket.
func (p *proc) respTimeout(timeout time.Duration) (*respConn, error) {
	if p.tcp != "" {
		return dialRESPNet("tcp", p.tcp, timeout)
	}
	return dialRESP(p.socket, timeout)
}

// resp opens a control connection (RESP kinds only).
func (p *proc) resp() (*respConn, error) {
	if p.kind == kindMemcached {
		return nil, errors.New("memcached speaks no RESP")
	}
	return p.respTimeout(5 * time.Second)
}

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// readPeak samples VmHWM (peak resident set) from /proc; it is the peak
// since the process started, so reading it just before stopping gives the
// peak of everything the process did.
func (p *proc) readPeak() int64 {
	v := procStatus(p.pid(), "VmHWM")
	if v > p.peak {
		p.peak = v
	}
	return p.peak
}

// stop sends SIGTERM and waits up to timeout for the exit, then kills. It
// records the peak RSS first. Idempotent.
func (p *proc) stop(timeout time.Duration) error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.stopped {
		return nil
	}
	p.stopped = true
	select {
	case <-p.done:
		return fmt.Errorf("%s had exited (%v): %s", p.name, p.err, p.log)
	default:
	}
	p.readPeak()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM", p.name, timeout)
	}
	var ee *exec.ExitError
	if p.err != nil && !(errors.As(p.err, &ee) && p.kind != kindTiercache) {
		return fmt.Errorf("%s exited with %v: %s", p.name, p.err, p.log)
	}
	return nil
}

// kill ends the process at once (error paths).
func (p *proc) kill() {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// procStatus reads a "kB" field of /proc/PID/status in bytes (0 if absent).
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n << 10
	}
	return 0
}

// tcOpts are the tiercached flags a workload sets.
type tcOpts struct {
	memMax, diskMax int64
	policy          string // through or back
	nats            string // off, embedded or a URL
	natsListen      string
	nodeID          string
	dataDir         string // default: a fresh directory
	noWait          bool   // return at once, without polling PING
	peerListen      string // --peer-listen (fleet workload); empty: peer fill off
	peerPassword    string
}

// sizeArg formats bytes as a flag value every system accepts.
func sizeArg(n int64) string { return strconv.FormatInt(n, 10) }

// startTiercache starts the daemon with o.
func (h *runner) startTiercache(ctx context.Context, name string, o tcOpts) (*proc, error) {
	if o.dataDir == "" {
		o.dataDir = h.tempDir(name + "-data")
	}
	sock := h.sockPath(name)
	if o.policy == "" {
		o.policy = "through"
	}
	if o.nats == "" {
		o.nats = "off"
	}
	if o.nodeID == "" {
		o.nodeID = name
	}
	argv := []string{h.tiercached,
		"--socket", sock, "--data-dir", o.dataDir,
		"--mem-max", sizeArg(o.memMax), "--disk-max", sizeArg(o.diskMax),
		"--write-policy", o.policy, "--nats", o.nats, "--node-id", o.nodeID,
		"--log-level", "warn", // --max-value: the default (64 MiB; the disk tier refuses what it cannot hold)
	}
	if o.natsListen != "" {
		argv = append(argv, "--nats-listen", o.natsListen)
	}
	if o.peerListen != "" {
		argv = append(argv, "--peer-listen", o.peerListen)
		if o.peerPassword != "" {
			argv = append(argv, "--peer-password", o.peerPassword)
		}
	}
	return startProc(ctx, name, kindTiercache, sock, argv, readyTimeout(o.noWait, time.Minute))
}

// redisOpts are the redis-server settings a workload sets.
type redisOpts struct {
	maxMemory int64  // 0: unlimited
	dir       string // working directory (RDB); default: a fresh one
	noWait    bool   // return at once, without polling PING
	tcp       bool   // listen on a free loopback TCP port, which clients then use
}

func (h *runner) startRedis(ctx context.Context, name string, o redisOpts) (*proc, error) {
	if o.dir == "" {
		o.dir = h.tempDir(name + "-data")
	}
	sock := h.sockPath(name)
	argv := []string{h.peers[kindRedis], "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", o.dir, "--dbfilename", "dump.rdb",
		"--loglevel", "warning", "--logfile", "", "--daemonize", "no",
		"--protected-mode", "no", "--proto-max-bulk-len", "512mb"}
	if o.maxMemory > 0 {
		argv = append(argv, "--maxmemory", sizeArg(o.maxMemory), "--maxmemory-policy", "allkeys-lru")
	}
	if !o.tcp {
		return startProc(ctx, name, kindRedis, sock, argv, readyTimeout(o.noWait, 5*time.Minute))
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	argv[2] = strconv.Itoa(port)
	argv = append(argv, "--bind", "127.0.0.1")
	p, err := launch(name, kindRedis, sock, argv)
	if err != nil {
		return nil, err
	}
	p.tcp = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := p.waitReady(ctx, 5*time.Minute); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// freePort is a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// mcOpts are the memcached settings a workload sets.
type mcOpts struct {
	memMB   int64 // -m
	itemMax int64 // -I; 0: memcached's default (1 MiB)
}

func (h *runner) startMemcached(ctx context.Context, name string, o mcOpts) (*proc, error) {
	sock := h.sockPath(name)
	argv := []string{h.peers[kindMemcached], "-s", sock, "-a", "0700", "-m", strconv.FormatInt(o.memMB, 10), "-c", "4096"}
	if o.itemMax > 0 {
		argv = append(argv, "-I", strconv.FormatInt(o.itemMax>>20, 10)+"m")
	}
	if os.Geteuid() == 0 {
		argv = append(argv, "-u", "root")
	}
	return startProc(ctx, name, kindMemcached, sock, argv, 30*time.Second)
}

// readyTimeout is 0 (do not wait) when noWait, else d.
func readyTimeout(noWait bool, d time.Duration) time.Duration {
	if noWait {
		return 0
	}
	return d
}
