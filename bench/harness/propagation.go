package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// propModel is the model rolled out.
const propModel = "clip"

// propagation starts daemon A with an embedded NATS server and the others
// joined to it (or, with cfg.PropNATSServer, a standalone nats-server that
// every daemon joins), then for each run and rollout N: fills every daemon with
// Keys entries of the current version v(N-1) plus a probe, calls
// MODEL.ROLLOUT clip vN on A, and times from its return until
// GET {clip@v(N-1)}probe answers nil on each daemon — the moment a client
// of that daemon can no longer be served the old model's output.
func (h *runner) propagation(ctx context.Context) error {
	n := h.cfg.PropDaemons
	maxKeys := 0
	for _, r := range h.cfg.PropRuns {
		maxKeys = max(maxKeys, r.Keys)
	}
	// Room for two versions of the keys in L1 (the old ones are dropped
	// lazily), at ~120 bytes an entry.
	mem := max(int64(maxKeys)*256, 64*MiB)
	daemons := make([]*proc, n)
	var (
		url  string
		nats *proc // the standalone NATS server, if any
	)
	first := 0
	if h.cfg.PropNATSServer != "" {
		ns, u, err := h.startNATS(ctx, h.cfg.PropNATSServer)
		if err != nil {
			return err
		}
		defer func() { _ = ns.stop(30 * time.Second) }()
		nats, url = ns, u
	} else {
		a, err := h.start(ctx, kindTiercache, "tiercached-A", tcOpts{memMax: mem, diskMax: 2 * mem, policy: "back",
			nats: "embedded", natsListen: "127.0.0.1:0", nodeID: "A"}, redisOpts{}, mcOpts{})
		if err != nil {
			return err
		}
		daemons[0] = a
		m, err := info(a, "cluster")
		if err != nil {
			return err
		}
		if url = m["nats_url"]; url == "" {
			return errors.New("daemon A reports no nats_url in INFO cluster")
		}
		first = 1
	}
	for i := first; i < n; i++ {
		id := string(rune('A' + i))
		var err error
		if daemons[i], err = h.start(ctx, kindTiercache, "tiercached-"+id, tcOpts{memMax: mem, diskMax: 2 * mem,
			policy: "back", nats: url, nodeID: id}, redisOpts{}, mcOpts{}); err != nil {
			return err
		}
	}
	h.logf("propagation: %d daemons, NATS at %s", n, url)
	conns := make([]*respConn, n)
	for i, d := range daemons {
		var err error
		if conns[i], err = d.resp(); err != nil {
			return err
		}
		defer conns[i].Close()
	}
	version := 0
	if _, err := conns[0].do("MODEL.ROLLOUT", propModel, "v0"); err != nil {
		return fmt.Errorf("MODEL.ROLLOUT: %w", err)
	}
	if err := waitVersion(ctx, conns, "v0", h.cfg.PropTimeout); err != nil {
		return err
	}
	for _, run := range h.cfg.PropRuns {
		res, err := h.propRun(ctx, daemons, nats, conns, run, &version)
		if err != nil {
			return fmt.Errorf("%d keys: %w", run.Keys, err)
		}
		h.res.Propagation = append(h.res.Propagation, res)
		h.logf("propagation %d keys: each daemon p50 %.0fµs p99 %.0fµs max %.0fµs; all daemons p50 %.0fµs p99 %.0fµs max %.0fµs; rollout call p50 %.0fµs",
			run.Keys, res.EachDaemon.P50, res.EachDaemon.P99, res.EachDaemon.Max, res.AllDaemons.P50, res.AllDaemons.P99, res.AllDaemons.Max, res.Rollout.P50)
	}
	for i, d := range daemons {
		if err := h.stopProc(d, WorkloadPropagation, fmt.Sprintf("--mem-max %s, node %c", fmtBytes(mem), 'A'+i), mem); err != nil {
			return err
		}
	}
	return nil
}

// A cluster is idle when each of its processes used less than idleShare
// of one CPU over idleWindow; waitIdle gives up after idleTimeout.
const (
	idleWindow  = 20 * time.Millisecond
	idleShare   = 0.05
	idleTimeout = 10 * time.Second
)

// waitIdle samples the CPU time of every thread of pids (Linux
// /proc/PID/task/*/schedstat, nanoseconds) until, over one window, each
// process used less than share of a CPU. It reports false if that did not
// happen within timeout or the CPU time cannot be read.
func waitIdle(ctx context.Context, pids []int, window time.Duration, share float64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	prev := make([]int64, len(pids))
	for i, pid := range pids {
		var ok bool
		if prev[i], ok = cpuNanos(pid); !ok {
			return false
		}
	}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(window)
		idle := true
		for i, pid := range pids {
			cur, ok := cpuNanos(pid)
			if !ok {
				return false
			}
			if float64(cur-prev[i]) >= share*float64(window.Nanoseconds()) {
				idle = false
			}
			prev[i] = cur
		}
		if idle {
			return true
		}
	}
	return false
}

// cpuNanos is the CPU time used so far by the live threads of pid.
func cpuNanos(pid int) (int64, bool) {
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "schedstat"))
	if err != nil || len(tasks) == 0 {
		return 0, false
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += n
	}
	return sum, true
}

// propNATSMode names where the propagation cluster's NATS server runs.
func propNATSMode(c *Config) string {
	if c.PropNATSServer != "" {
		return "standalone"
	}
	return ""
}

// startNATS starts cfg.PropNATSServer with JetStream on a random loopback
// port and returns it with its client URL, read from the ports file the
// server writes once it listens.
func (h *runner) startNATS(ctx context.Context, bin string) (*proc, string, error) {
	dir := h.tempDir("nats")
	argv := []string{bin, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", filepath.Join(dir, "js"), "--ports_file_dir", dir}
	p, err := launch("nats-server", "nats", "", argv)
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if url, ok := readPortsFile(dir, filepath.Base(bin), p.pid()); ok {
			h.mu.Lock()
			h.procs = append(h.procs, p)
			h.mu.Unlock()
			return p, url, nil
		}
		select {
		case <-p.done:
			return nil, "", fmt.Errorf("nats-server exited during start-up (%v): %s", p.err, p.log)
		case <-ctx.Done():
			p.kill()
			return nil, "", ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, "", fmt.Errorf("nats-server wrote no ports file in %s: %s", dir, p.log)
		}
	}
}

// readPortsFile reads the client URL from the EXE_PID.ports file that
// nats-server writes to its --ports_file_dir (EXE: its program name).
func readPortsFile(dir, exe string, pid int) (string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s_%d.ports", exe, pid)))
	if err != nil {
		return "", false
	}
	var ports struct {
		Nats []string `json:"nats"`
	}
	if json.Unmarshal(b, &ports) != nil || len(ports.Nats) == 0 {
		return "", false
	}
	return ports.Nats[0], true
}

// waitVersion polls MODEL.GET on every daemon until each reports v.
func waitVersion(ctx context.Context, conns []*respConn, v string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i, c := range conns {
		for {
			got, err := c.doString("MODEL.GET", propModel)
			if err != nil {
				return err
			}
			if got == v {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("daemon %c still at %q, want %q after %v", 'A'+i, got, v, timeout)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	}
	return nil
}

func (h *runner) propRun(ctx context.Context, daemons []*proc, nats *proc, conns []*respConn, run PropRun, version *int) (PropResult, error) {
	n := len(daemons)
	res := PropResult{Keys: run.Keys, Rollouts: run.Rollouts, Daemons: n}
	each, all, call := newHist(), newHist(), newHist()
	per := make([]*hdrhistogram.Histogram, n)
	for i := range per {
		per[i] = newHist()
	}
	var fillTotal, settleTotal time.Duration
	cluster := make([]int, 0, n+1) // the pids that must be idle before a rollout
	for _, d := range daemons {
		cluster = append(cluster, d.pid())
	}
	if nats != nil {
		cluster = append(cluster, nats.pid())
	}
	for range run.Rollouts {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		old := "v" + strconv.Itoa(*version)
		next := "v" + strconv.Itoa(*version+1)
		scope := "{" + propModel + "@" + old + "}"
		t0 := time.Now()
		if err := fillModel(ctx, daemons, scope, run.Keys); err != nil {
			return res, err
		}
		fillTotal += time.Since(t0)
		// The fill leaves work behind (GC of its garbage, the NATS
		// server's and the daemons' own): the rollout is sent once every
		// process of the cluster is idle, so that it is propagation that
		// is timed and not the fill's tail.
		t1 := time.Now()
		if !waitIdle(ctx, cluster, idleWindow, idleShare, idleTimeout) {
			res.NotIdle++
		}
		settleTotal += time.Since(t1)
		for i, c := range conns {
			if _, err := c.do("SET", scope+"probe", "x"); err != nil {
				return res, fmt.Errorf("SET probe on %c: %w", 'A'+i, err)
			}
			if got, err := c.doString("GET", scope+"probe"); err != nil || got != "x" {
				return res, fmt.Errorf("probe on %c: %q, %v", 'A'+i, got, err)
			}
		}
		// Pollers start now and wait for the rollout to return; each
		// owns its daemon's connection while it polls.
		var (
			wg       sync.WaitGroup
			returned = make(chan struct{}) // closed when ROLLOUT returned, at ret
			ret      time.Time
			lat      = make([]time.Duration, n)
			perr     = make([]error, n)
		)
		for i := 1; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-returned
				lat[i], perr[i] = pollStale(ctx, conns[i], scope+"probe", ret, h.cfg.PropTimeout)
			}()
		}
		s0 := time.Now()
		_, err := conns[0].do("MODEL.ROLLOUT", propModel, next)
		ret = time.Now()
		close(returned)
		if err == nil {
			// A applied the rollout before answering; check it.
			lat[0], perr[0] = pollStale(ctx, conns[0], scope+"probe", ret, h.cfg.PropTimeout)
		}
		wg.Wait()
		if err != nil {
			return res, fmt.Errorf("MODEL.ROLLOUT: %w", err)
		}
		*version++
		record(call, ret.Sub(s0))
		var slowest time.Duration
		for i := range n {
			if perr[i] != nil {
				if errors.Is(perr[i], errTimeout) {
					res.Timeouts++
					lat[i] = h.cfg.PropTimeout
				} else {
					return res, fmt.Errorf("daemon %c: %w", 'A'+i, perr[i])
				}
			}
			record(each, lat[i])
			record(per[i], lat[i])
			slowest = max(slowest, lat[i])
		}
		record(all, slowest)
		res.Samples = append(res.Samples, float64(slowest.Nanoseconds())/1e3)
	}
	res.FillSecs = fillTotal.Seconds() / float64(run.Rollouts)
	res.SettleSecs = settleTotal.Seconds() / float64(run.Rollouts)
	res.Rollout, res.EachDaemon, res.AllDaemons = summarize(call), summarize(each), summarize(all)
	for _, p := range per {
		res.PerDaemon = append(res.PerDaemon, summarize(p))
	}
	return res, nil
}

var errTimeout = errors.New("timed out")

// pollStale GETs key until it answers nil and returns the time since ret.
func pollStale(ctx context.Context, c *respConn, key string, ret time.Time, timeout time.Duration) (time.Duration, error) {
	for {
		got, err := c.doString("GET", key)
		if err != nil {
			return 0, err
		}
		if got == "" {
			return time.Since(ret), nil
		}
		if time.Since(ret) > timeout {
			return 0, errTimeout
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

// fillModel MSETs keys scope+"k"+i (8-byte values) on every daemon, all
// daemons in parallel, 500 keys per MSET, 4 MSETs in flight.
func fillModel(ctx context.Context, daemons []*proc, scope string, keys int) error {
	if keys == 0 {
		return nil
	}
	errs := make(chan error, len(daemons))
	for _, d := range daemons {
		go func() {
			errs <- func() error {
				c, err := d.resp()
				if err != nil {
					return err
				}
				defer c.Close()
				const per, depth = 500, 4
				val := []byte("embeddng")
				args := make([][]byte, 0, 1+2*per)
				inflight := 0
				for i := 0; i < keys && ctx.Err() == nil; i += per {
					args = append(args[:0], []byte("MSET"))
					for j := i; j < min(i+per, keys); j++ {
						args = append(args, []byte(scope+"k"+strconv.Itoa(j)), val)
					}
					c.sendArgs(args...)
					inflight++
					if inflight == depth || i+per >= keys {
						if err := c.flush(); err != nil {
							return err
						}
						for ; inflight > 0; inflight-- {
							r, err := c.recv()
							if err != nil {
								return err
							}
							if se, ok := r.(serverError); ok {
								return fmt.Errorf("MSET: %w", se)
							}
						}
					}
				}
				return ctx.Err()
			}()
		}()
	}
	var first error
	for range daemons {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
