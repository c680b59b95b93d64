package drill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/internal/testutil"
)

// natsServer is an in-process nats-server with JetStream that can be
// stopped and started again on the same port with the same store, so that
// the registry survives its outage as it would on a real host.
type natsServer struct {
	t    testing.TB
	opts server.Options

	mu  sync.Mutex // guards srv
	srv *server.Server
}

// newNATSServer starts a server with base's options (may be nil) on a free
// port of 127.0.0.1 and a store in a test directory.
func newNATSServer(t testing.TB, base *server.Options) *natsServer {
	t.Helper()
	n := &natsServer{t: t}
	if base != nil {
		n.opts = *base
	}
	n.opts.Host = "127.0.0.1"
	n.opts.Port = freePort(t)
	n.opts.StoreDir = t.TempDir()
	n.start()
	return n
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start starts the server (natstest shuts it down at the end of the test).
func (n *natsServer) start() {
	n.t.Helper()
	o := n.opts
	s := natstest.RunServer(n.t, &o)
	n.mu.Lock()
	n.srv = s
	n.mu.Unlock()
}

// stop shuts the server down; its clients see their connection close.
func (n *natsServer) stop() {
	n.mu.Lock()
	s := n.srv
	n.mu.Unlock()
	s.Shutdown()
	s.WaitForShutdown()
}

// url is the server's client URL, with user:password if given.
func (n *natsServer) url(userPass ...string) string {
	scheme := "nats"
	if n.opts.TLSConfig != nil {
		scheme = "tls"
	}
	if len(userPass) == 2 {
		return fmt.Sprintf("%s://%s:%s@127.0.0.1:%d", scheme, userPass[0], userPass[1], n.opts.Port)
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, n.opts.Port)
}

// modelDaemon starts a daemon following the registry at natsURL.
func modelDaemon(t testing.TB, name, natsURL string, extra ...string) *daemon {
	t.Helper()
	d := newDaemon(t, name, "", append([]string{"--nats", natsURL, "--mem-max", "64MiB", "--disk-max", "256MiB",
		"--max-value", "1MiB"}, extra...)...)
	d.start()
	return d
}

// modelVersion returns what MODEL.GET clip answers on d: N for "vN", 0 for
// nil.
func modelVersion(ctx context.Context, c *redis.Client) (int, error) {
	v, err := c.Do(ctx, "MODEL.GET", "clip").Text()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(v, "v"))
	if err != nil || !strings.HasPrefix(v, "v") {
		return 0, fmt.Errorf("MODEL.GET clip = %q, not a version of the drill", v)
	}
	return n, nil
}

// waitVersion waits until every daemon of ds reports clip at vN.
func waitVersion(t testing.TB, n int, ds ...*daemon) {
	t.Helper()
	for _, d := range ds {
		waitFor(t, 30*time.Second, fmt.Sprintf("%s to apply clip v%d", d.name, n), func() bool {
			v, err := modelVersion(context.Background(), d.admin)
			return err == nil && v == n
		})
	}
}

// natsConnected reports INFO nats_connected of d.
func natsConnected(d *daemon) bool {
	m, err := infoOf(context.Background(), d.admin)
	return err == nil && m["nats_connected"] == "1"
}

// tierctl runs tierctl and returns its exit code, output and run time.
func tierctl(t testing.TB, args ...string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	start := time.Now()
	code, stdout, stderr = testutil.RunProcess(t, "tierctl", 2*time.Minute, exec.Command(bins["tierctl"], args...))
	return code, stdout, stderr, time.Since(start)
}

// modelLoad writes and checks clip's keys on every daemon while rollouts
// happen, and counts stale answers.
//
// Each daemon has a writer that reads MODEL.GET clip (vN) and writes
// {clip@vN}kI and {clip}kI with values whose sequence number carries N
// (N<<32 | counter). A writer holds its daemon's gate shared for that; a
// rollout takes every gate exclusively (lockAll) and gives each back once
// that daemon has applied it (unlock), so a value's N is exactly the
// version it was written under. Each daemon also has a checker
// that, without the gate, reads MODEL.GET (the highest answer so far is
// the version the daemon has reported) then every key: a {clip}kI value
// written under an older version, or any value of {clip@vM}kI with M older,
// is a stale answer.
type modelLoad struct {
	t testing.TB
	writerGates

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex // guards errs
	errs []error

	stats map[string]*loadStats
}

// loadStats are one daemon's figures.
type loadStats struct {
	written      atomic.Int64
	checked      atomic.Int64 // values and nils verified
	reported     atomic.Int64 // highest version MODEL.GET answered
	stale        atomic.Int64
	maxLatencyNs atomic.Int64 // slowest checker read
}

const loadKeys = 4

func startModelLoad(t testing.TB, ds ...*daemon) *modelLoad {
	l := &modelLoad{t: t, stats: map[string]*loadStats{}, writerGates: writerGates{gates: gatesOf(ds)}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	// The maps are filled before any goroutine starts: the writers read
	// them without a lock.
	for _, d := range ds {
		l.stats[d.name] = &loadStats{}
	}
	for _, d := range ds {
		st := l.stats[d.name]
		l.wg.Add(2)
		go func() {
			defer l.wg.Done()
			l.writer(d, st)
		}()
		go func() {
			defer l.wg.Done()
			l.checker(d, st)
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *modelLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, err)
	}
}

// stop stops the load and reports its errors. Idempotent.
func (l *modelLoad) stop() {
	l.cancel()
	l.unlockAll() // a drill that failed during a rollout
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		l.t.Error(err)
	}
	l.errs = nil
}

func (l *modelLoad) writer(d *daemon, st *loadStats) {
	c := d.client(1)
	defer c.Close()
	gate := l.gates[d.name]
	var n uint64
	for l.ctx.Err() == nil {
		gate.RLock()
		err := func() error {
			ver, err := modelVersion(l.ctx, c)
			if err != nil {
				return err
			}
			for i := range loadKeys {
				for _, k := range []string{fmt.Sprintf("{clip@v%d}k%d", ver, i), fmt.Sprintf("{clip}k%d", i)} {
					n++
					if err := c.Set(l.ctx, k, NewValue([]byte(k), uint64(ver)<<32|n, 256+int(n%2048)), 0).Err(); err != nil {
						return fmt.Errorf("SET %s at v%d: %w", k, ver, err)
					}
					st.written.Add(1)
				}
			}
			return nil
		}()
		gate.RUnlock()
		if err != nil && l.ctx.Err() == nil {
			l.fail(fmt.Errorf("%s writer: %w", d.name, err))
			return
		}
	}
}

func (l *modelLoad) checker(d *daemon, st *loadStats) {
	c := d.client(1)
	defer c.Close()
	get := func(k string) (ver int, found bool, err error) {
		start := time.Now()
		v, err := c.Get(l.ctx, k).Bytes()
		if took := time.Since(start).Nanoseconds(); took > st.maxLatencyNs.Load() {
			st.maxLatencyNs.Store(took)
		}
		if errors.Is(err, redis.Nil) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		seq, err := CheckValue([]byte(k), v)
		if err != nil {
			return 0, false, err
		}
		return int(seq >> 32), true, nil
	}
	for l.ctx.Err() == nil {
		err := func() error {
			rep, err := modelVersion(l.ctx, c)
			if err != nil {
				return err
			}
			if prev := st.reported.Load(); int64(rep) < prev {
				return fmt.Errorf("MODEL.GET clip went back from v%d to v%d", prev, rep)
			}
			st.reported.Store(int64(rep))
			for i := range loadKeys {
				k := fmt.Sprintf("{clip}k%d", i)
				ver, found, err := get(k)
				if err != nil {
					return fmt.Errorf("GET %s: %w", k, err)
				}
				if found && ver < rep {
					st.stale.Add(1)
					return fmt.Errorf("stale answer: GET %s served a value written at v%d after the daemon reported v%d", k, ver, rep)
				}
				st.checked.Add(1)
				for _, old := range []int{rep - 1, rep - 2} {
					if old < 1 {
						continue
					}
					k := fmt.Sprintf("{clip@v%d}k%d", old, i)
					if _, found, err := get(k); err != nil {
						return fmt.Errorf("GET %s: %w", k, err)
					} else if found {
						st.stale.Add(1)
						return fmt.Errorf("stale answer: GET %s served a value after the daemon reported v%d", k, rep)
					}
					st.checked.Add(1)
				}
				k = fmt.Sprintf("{clip@v%d}k%d", rep, i)
				if _, _, err := get(k); err != nil {
					return fmt.Errorf("GET %s: %w", k, err)
				}
				st.checked.Add(1)
			}
			return nil
		}()
		if err != nil && l.ctx.Err() == nil {
			l.fail(fmt.Errorf("%s checker: %w", d.name, err))
			return
		}
	}
}

// waitChecked waits until every daemon's checker verified n more values.
func (l *modelLoad) waitChecked(n int64) {
	l.t.Helper()
	base := map[string]int64{}
	for name, st := range l.stats {
		base[name] = st.checked.Load()
	}
	waitFor(l.t, time.Minute, fmt.Sprintf("every checker to verify %d more values", n), func() bool {
		if l.failed() {
			return true
		}
		for name, st := range l.stats {
			if st.checked.Load()-base[name] < n {
				return false
			}
		}
		return true
	})
}

func (l *modelLoad) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.errs) > 0
}

// summary is the figures of every daemon, in one line.
func (l *modelLoad) summary() string {
	var parts []string
	var checked, written, stale int64
	var slowest time.Duration
	for _, st := range l.stats {
		checked += st.checked.Load()
		written += st.written.Load()
		stale += st.stale.Load()
		slowest = max(slowest, time.Duration(st.maxLatencyNs.Load()))
	}
	parts = append(parts, fmt.Sprintf("%d values written, %d answers checked on %d daemons, %d stale, slowest read %v",
		written, checked, len(l.stats), stale, slowest.Round(time.Millisecond)))
	return strings.Join(parts, "; ")
}
