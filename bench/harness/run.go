package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// runner is the state of one Run.
type runner struct {
	cfg        Config
	work       string
	tiercached string
	peers      map[string]string // kind → binary path, for the peers found
	natsBin    string            // a nats-server binary, when a workload runs on one
	res        *Results

	mu    sync.Mutex // guards procs
	procs []*proc    // every process started, so Run can stop strays
	seq   int        // unique names for temp dirs and sockets
}

// Run runs the workloads of cfg and returns their results. It stops every
// process it started before returning, also on error and cancellation. A
// workload that fails is recorded as a note and the others still run; Run
// returns an error only when nothing can run (invalid config, no daemon).
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &runner{cfg: cfg, peers: map[string]string{}}
	h.res = &Results{Mode: cfg.Mode, CommandLine: cfg.CommandLine, Started: time.Now(), Config: summaryOf(&cfg)}
	work := cfg.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "tcbench-"); err != nil {
			return nil, err
		}
		if !cfg.KeepWorkDir {
			defer os.RemoveAll(work)
		}
	}
	h.work = work
	defer h.stopAll()

	if err := h.locateNATS(ctx); err != nil {
		return nil, err
	}
	if err := h.locateDaemon(ctx); err != nil {
		return nil, err
	}
	h.res.Machine = machineInfo()
	h.findPeers()

	for _, w := range KnownWorkloads {
		if !cfg.has(w) {
			continue
		}
		if ctx.Err() != nil {
			return h.res, ctx.Err()
		}
		t0 := time.Now()
		h.logf("== %s", w)
		var err error
		switch w {
		case WorkloadHotSet:
			err = h.hotSet(ctx)
		case WorkloadBudget:
			err = h.budget(ctx)
		case WorkloadCold:
			err = h.cold(ctx)
		case WorkloadRestart:
			err = h.restart(ctx)
		case WorkloadPropagation:
			err = h.propagation(ctx)
		case WorkloadFleet:
			err = h.fleet(ctx)
		case WorkloadPeerGet:
			err = h.peerGet(ctx)
		}
		h.stopAll()
		if err != nil {
			if ctx.Err() != nil {
				return h.res, ctx.Err()
			}
			h.note("%s failed: %v", w, err)
			h.logf("%s failed: %v", w, err)
		}
		h.logf("== %s took %.1fs", w, time.Since(t0).Seconds())
	}
	h.res.Targets = evaluateTargets(h.res, &h.cfg)
	h.res.Seconds = time.Since(h.res.Started).Seconds()
	return h.res, nil
}

func (h *runner) logf(format string, args ...any) {
	fmt.Fprintf(h.cfg.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (h *runner) note(format string, args ...any) {
	h.res.Notes = append(h.res.Notes, fmt.Sprintf(format, args...))
}

// tempDir makes a fresh directory under the work directory.
func (h *runner) tempDir(name string) string {
	h.mu.Lock()
	h.seq++
	d := filepath.Join(h.work, fmt.Sprintf("%s-%d", name, h.seq))
	h.mu.Unlock()
	_ = os.MkdirAll(d, 0o700)
	return d
}

// sockPath is a fresh socket path under the work directory (kept short:
// Unix socket paths are limited to 108 bytes).
func (h *runner) sockPath(name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	return filepath.Join(h.work, fmt.Sprintf("%d.sock", h.seq))
}

// track remembers p so that stopAll can stop it.
func (h *runner) track(p *proc, err error) (*proc, error) {
	if err == nil {
		h.mu.Lock()
		h.procs = append(h.procs, p)
		h.mu.Unlock()
	}
	return p, err
}

// stopAll stops every process still running.
func (h *runner) stopAll() {
	h.mu.Lock()
	ps := h.procs
	h.procs = nil
	h.mu.Unlock()
	for _, p := range ps {
		if err := p.stop(30 * time.Second); err != nil {
			h.logf("stop: %v", err)
		}
	}
}

// start starts a system by kind with the workload's settings, tracked.
func (h *runner) start(ctx context.Context, kind, name string, tc tcOpts, ro redisOpts, mo mcOpts) (*proc, error) {
	switch kind {
	case kindTiercache:
		return h.track(h.startTiercache(ctx, name, tc))
	case kindRedis:
		return h.track(h.startRedis(ctx, name, ro))
	case kindMemcached:
		return h.track(h.startMemcached(ctx, name, mo))
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// memory records p's peak RSS for workload after it stopped.
func (h *runner) memory(workload string, p *proc, setting string, budget int64) {
	h.res.Memory = append(h.res.Memory, MemResult{Workload: workload, System: p.name, Setting: setting, PeakRSS: p.readPeakOrLast(), Budget: budget})
}

// readPeakOrLast is the peak read at stop, or read now if still running.
func (p *proc) readPeakOrLast() int64 {
	select {
	case <-p.done:
		return p.peak
	default:
		return p.readPeak()
	}
}

// stopProc stops p and records its peak RSS.
func (h *runner) stopProc(p *proc, workload, setting string, budget int64) error {
	err := p.stop(2 * time.Minute)
	h.memory(workload, p, setting, budget)
	return err
}

// locateNATS builds nats-server from the module when cfg.PropNATSServer
// is "build" and the propagation workload runs, or when the fleet or
// peerget workload (always on a standalone server) runs and no binary is
// named.
func (h *runner) locateNATS(ctx context.Context) error {
	prop := h.cfg.PropNATSServer == "build" && h.cfg.has(WorkloadPropagation)
	fleet := (h.cfg.has(WorkloadFleet) || h.cfg.has(WorkloadPeerGet)) && (h.cfg.PropNATSServer == "" || h.cfg.PropNATSServer == "build")
	if h.cfg.PropNATSServer != "" && h.cfg.PropNATSServer != "build" {
		h.natsBin = h.cfg.PropNATSServer
	}
	if !prop && !fleet {
		return nil
	}
	mod := h.cfg.ModuleDir
	if mod == "" {
		var err error
		if mod, err = ModuleRoot(); err != nil {
			return err
		}
	}
	h.natsBin = filepath.Join(h.work, "nats-server")
	if prop {
		h.cfg.PropNATSServer = h.natsBin
	}
	h.logf("building nats-server from %s's go.mod", mod)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", h.natsBin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = mod
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build github.com/nats-io/nats-server/v2: %v\n%s", err, out)
	}
	return nil
}

// locateDaemon builds tiercached unless cfg.Tiercached names it.
func (h *runner) locateDaemon(ctx context.Context) error {
	if h.cfg.Tiercached != "" {
		h.tiercached = h.cfg.Tiercached
	} else {
		mod := h.cfg.ModuleDir
		if mod == "" {
			var err error
			if mod, err = ModuleRoot(); err != nil {
				return err
			}
		}
		h.tiercached = filepath.Join(h.work, "tiercached")
		h.logf("building tiercached from %s", mod)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", h.tiercached, "./cmd/tiercached")
		cmd.Dir = mod
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/tiercached: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(h.tiercached, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %v: %s", h.tiercached, err, out)
	}
	h.res.Systems = append(h.res.Systems, SystemInfo{Name: kindTiercache, Version: strings.TrimSpace(string(out)), Available: true})
	return nil
}

// ModuleRoot is the nearest directory at or above the working directory
// with a go.mod.
func ModuleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", errors.New("bench: no go.mod above the working directory; set Config.ModuleDir or Config.Tiercached")
		}
		d = up
	}
}

// findPeers looks the configured peers up on PATH and records versions.
func (h *runner) findPeers() {
	bins := map[string]string{kindRedis: "redis-server", kindMemcached: "memcached"}
	versionArg := map[string]string{kindRedis: "--version", kindMemcached: "-V"}
	for _, p := range h.cfg.Peers {
		path, err := exec.LookPath(bins[p])
		if err != nil {
			h.res.Systems = append(h.res.Systems, SystemInfo{Name: p, Note: bins[p] + " not on PATH: skipped"})
			h.note("%s not on PATH: %s skipped in every workload", bins[p], p)
			continue
		}
		out, _ := exec.Command(path, versionArg[p]).CombinedOutput()
		h.peers[p] = path
		h.res.Systems = append(h.res.Systems, SystemInfo{Name: p, Version: strings.TrimSpace(string(out)), Available: true})
	}
}

// peerKinds are the available peers in a stable order.
func (h *runner) peerKinds() []string {
	var ks []string
	for _, k := range []string{kindRedis, kindMemcached} {
		if h.peers[k] != "" {
			ks = append(ks, k)
		}
	}
	return ks
}

func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemTotal = kb << 10
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func summaryOf(c *Config) ConfigSummary {
	return ConfigSummary{
		Pipeline: c.Pipeline, HotDurationSec: c.HotDuration.Seconds(), HotRounds: c.HotRounds, HotBytes: c.HotBytes, HotMemMax: c.HotMemMax,
		BudgetKeys: c.BudgetKeys, BudgetValue: c.BudgetValue, BudgetZipfS: c.BudgetZipfS, BudgetPeerMem: c.BudgetPeerMem, BudgetDiskFactor: c.BudgetDiskFactor,
		BudgetWarmup: c.BudgetWarmup, BudgetRequests: c.BudgetRequests, BudgetConns: c.BudgetConns, BudgetPolicy: c.BudgetPolicy,
		EncoderDelayMs: float64(c.EncoderDelay) / 1e6, ColdMemMax: c.ColdMemMax, ColdFactor: c.ColdFactor,
		RestartBytes: c.RestartBytes, PropDaemons: c.PropDaemons, PropRuns: c.PropRuns, PropNATS: propNATSMode(c), Seed: c.Seed,
		FleetDaemons: c.FleetDaemons, FleetMemMax: c.FleetMemMax, FleetLossRequests: c.FleetLossRequests,
		FleetStampedePrompts: c.FleetStampedePrompts, FleetStampedeClients: c.FleetStampedeClients,
	}
}

// info reads INFO [section] from a RESP system into a map.
func info(p *proc, section string) (map[string]string, error) {
	c, err := p.resp()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	args := []string{"INFO"}
	if section != "" {
		args = append(args, section)
	}
	s, err := c.doString(args...)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}
