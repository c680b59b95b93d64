package harness

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
	"go.uber.org/goleak"
)

// tinyConfig runs every workload at toy sizes: seconds, not minutes.
func tinyConfig(t *testing.T) Config {
	c := QuickConfig()
	c.Mode = "test"
	c.Log = testWriter{t}
	c.CommandLine = "go test ./bench/harness"
	c.HotSizes = []int{1024, 16 << 10}
	c.HotConns = []int{1, 4}
	c.HotDuration = 100 * time.Millisecond
	c.HotBytes = 1 * MiB
	c.HotMemMax = 64 * MiB
	c.HotPolicies = []string{"back"}
	c.HotRounds = 2 // the alternation, reduced to medians
	c.BudgetKeys = 5000
	c.BudgetValue = 8 << 10
	c.BudgetMem = []int64{8 * MiB, 16 * MiB}
	c.BudgetPeerMem = []int64{32 * MiB}
	c.BudgetWarmup, c.BudgetRequests = 1000, 1000
	c.BudgetConns = 2
	c.ColdMemMax = 2 * MiB
	c.ColdFactor = 4
	c.ColdDuration = 300 * time.Millisecond
	c.ColdConns = 4
	c.RestartBytes = 4 * MiB
	c.RestartValue = 8 << 10
	c.RestartConns = 4
	c.RestartWindow = 50 * time.Millisecond
	c.RestartTimeout = 20 * time.Second
	c.PropDaemons = 3
	c.PropRuns = []PropRun{{Keys: 100, Rollouts: 3}}
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRunTiny runs the whole harness in a reduced form so that it cannot
// rot: every workload, every peer found on PATH, the report and plots.
func TestRunTiny(t *testing.T) {
	defer goleak.VerifyNone(t)
	// A peer that is absent is left out of every workload, and the test
	// checks that; under CI, which installs both, it fails the test.
	peers := map[string]bool{}
	for _, k := range []string{kindRedis, kindMemcached} {
		bin := map[string]string{kindRedis: "redis-server", kindMemcached: "memcached"}[k]
		if _, err := exec.LookPath(bin); err == nil {
			peers[k] = true
		} else if testutil.UnderCI() {
			testutil.NeedTool(t, bin, "Debian package "+bin+"; .ci/run installs it")
		} else {
			t.Logf("%s not on PATH: the harness must skip it", bin)
		}
	}
	cfg := tinyConfig(t)
	res := runTiny(t, cfg)
	want := len(cfg.HotSizes) * len(cfg.HotConns) * 2 * (1 + len(peers))
	if len(res.HotSet) != want {
		t.Errorf("hot set: %d rows, want %d", len(res.HotSet), want)
	}
	for _, x := range res.HotSet {
		if x.Requests == 0 || x.P99 <= 0 || x.Errors > 0 {
			t.Errorf("hot set row %+v: no requests, no latency or errors", x)
		}
		if x.Op == "GET" && x.HitRatio < 0.99 {
			t.Errorf("hot set %s GET %d: hit ratio %.3f", x.System, x.Size, x.HitRatio)
		}
		if !peers[x.System] && x.System != kindTiercache {
			t.Errorf("row for absent peer %s", x.System)
		}
	}
	if got, want := len(res.Budget), len(cfg.BudgetMem)*(1+len(peers))+len(cfg.BudgetPeerMem)*len(peers); got != want {
		t.Errorf("budget: %d rows, want %d", got, want)
	}
	for _, x := range res.Budget {
		if x.Requests != int64(cfg.BudgetRequests) || x.HitRatio <= 0 || x.HitRatio >= 1 {
			t.Errorf("budget row %+v", x)
		}
	}
	if len(res.Cold) != 1 || res.Cold[0].OpsPerSec <= 0 || res.Cold[0].L2Share <= 0 {
		t.Errorf("cold: %+v", res.Cold)
	}
	if tc := res.restartRow(kindTiercache); tc == nil || tc.FirstHitSeconds <= 0 {
		t.Errorf("restart: %+v", res.Restart)
	}
	if rd := res.restartRow(kindRedis); peers[kindRedis] && (rd == nil || rd.FirstHitSeconds <= 0) {
		t.Errorf("restart: no Redis row: %+v", res.Restart)
	}
	if len(res.Propagation) != 1 || res.Propagation[0].Timeouts > 0 || len(res.Propagation[0].PerDaemon) != cfg.PropDaemons {
		t.Errorf("propagation: %+v", res.Propagation)
	}
	if len(res.Memory) == 0 {
		t.Error("no memory rows")
	}
	for _, m := range res.Memory {
		if m.PeakRSS <= 0 {
			t.Errorf("memory row %+v: no peak RSS", m)
		}
	}
	if len(res.Targets) == 0 {
		t.Error("no targets evaluated")
	}

	dir := t.TempDir()
	if err := Write(dir, res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.md", "results.json", "hotset_get.png", "hotset_set.png", "budget_hit_ratio.png", "restart.png", "propagation.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var back Results
	b, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	if err := json.Unmarshal(b, &back); err != nil || len(back.HotSet) != len(res.HotSet) {
		t.Errorf("results.json does not round-trip: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	for _, s := range []string{"## 1. Hot set", "## 2. Budget", "## 3. Cold tier", "## 4. Restart", "## 5. Propagation", "## 6. Memory", "## Targets", "go test ./bench/harness"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("results.md lacks %q", s)
		}
	}
	if peers[kindRedis] && !strings.Contains(string(md), "req/s ÷ Redis") {
		t.Error("results.md shows no ratio to Redis")
	}
}

// TestPropagationStandaloneNATS runs the propagation workload on a
// standalone nats-server built from the module, every daemon joined to it.
func TestPropagationStandaloneNATS(t *testing.T) {
	defer goleak.VerifyNone(t)
	cfg := tinyConfig(t)
	cfg.Workloads = []string{WorkloadPropagation}
	cfg.PropNATSServer = "build"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Propagation) != 1 || res.Propagation[0].Timeouts > 0 || len(res.Propagation[0].PerDaemon) != cfg.PropDaemons {
		t.Fatalf("propagation: %+v", res.Propagation)
	}
	if res.Config.PropNATS != "standalone" {
		t.Errorf("results record NATS %q, want standalone", res.Config.PropNATS)
	}
	dir := t.TempDir()
	if err := Write(dir, res); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	if !strings.Contains(string(md), "standalone `nats-server -js`") {
		t.Error("results.md does not say the NATS server was standalone")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{FullConfig(), QuickConfig()} {
		if err := c.EnsureDefaults().Validate(); err != nil {
			t.Errorf("%s: %v", c.Mode, err)
		}
	}
	bad := Config{Workloads: []string{"nope"}, Peers: []string{"valkey"}, HotPolicies: []string{"sideways"}}
	err := bad.EnsureDefaults().Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, s := range []string{"nope", "valkey", "sideways"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
}

// TestMedianRounds checks that each cell keeps its median round by
// throughput, with the range of the others, in first-seen order.
func TestMedianRounds(t *testing.T) {
	row := func(system string, conns int, ops float64) HotResult {
		return HotResult{System: system, Op: "GET", Size: 1024, Conns: conns, OpsPerSec: ops, Latency: Latency{P99: ops / 10}}
	}
	got := medianRounds([]HotResult{
		row("a", 1, 30), row("a", 16, 5), row("b", 1, 7),
		row("a", 1, 10), row("a", 16, 6), row("b", 1, 8),
		row("a", 1, 20), row("a", 16, 4), row("b", 1, 9),
	})
	want := []struct {
		system         string
		conns          int
		ops, p99, l, h float64
	}{{"a", 1, 20, 2, 10, 30}, {"a", 16, 5, 0.5, 4, 6}, {"b", 1, 8, 0.8, 7, 9}}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.System != w.system || g.Conns != w.conns || g.OpsPerSec != w.ops || g.P99 != w.p99 || g.MinOpsPerSec != w.l || g.MaxOpsPerSec != w.h || g.Rounds != 3 {
			t.Errorf("row %d: %+v, want %+v", i, g, w)
		}
	}
}

func TestItemMax(t *testing.T) {
	for _, c := range []struct {
		size int
		want int64
	}{{1024, 0}, {120832, 0}, {4 << 20, 8 << 20}, {1 << 20, 2 << 20}} {
		if got := itemMaxFor(c.size); got != c.want {
			t.Errorf("itemMaxFor(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

func TestLRUHits(t *testing.T) {
	tr := []int32{1, 2, 1, 3, 1, 2, 4, 1}
	// Capacity 2, nothing warm: hits at i=2 and i=4 only (2 is evicted by 3, 1 by 4).
	if hit, first := lruHits(tr, 0, 2); hit != 2.0/8 || first != 4.0/8 {
		t.Errorf("lruHits = %v, %v; want 0.25, 0.5", hit, first)
	}
	if hit, _ := lruHits(tr, 0, 10); hit != 4.0/8 {
		t.Errorf("unbounded: %v, want 0.5", hit)
	}
	if hit, _ := lruHits(tr, 0, 0); hit != 0 {
		t.Errorf("capacity 0: %v", hit)
	}
}

// TestFleetTiny runs the fleet workload at toy sizes: peer fill must hit at
// least as often as private caches on the same trace, with peer hits; the
// LEASE.GET replay must take leases; and in the fleet stampede, where
// duplicates can only come from clients asking at once, GET then SET must
// compute each prompt once per client, leases once per prompt with peer
// fill and once per daemon without. Those counts follow from the
// stampede's order (a computing client waits until every client asked)
// and the lease semantics, not from timing.
func TestFleetTiny(t *testing.T) {
	defer goleak.VerifyNone(t)
	cfg := tinyConfig(t)
	cfg.Workloads = []string{WorkloadFleet}
	cfg.FleetDaemons = []int{3}
	cfg.FleetMemMax = 2 * MiB
	cfg.BudgetDiskFactor = 8
	cfg.BudgetWarmup, cfg.BudgetRequests = 2000, 2000
	cfg.FleetPeerSizes = []int{16 << 10, 1 << 20}
	cfg.FleetPeerKeys, cfg.FleetPeerKeysLarge = 100, 8
	cfg.FleetPeerMemMax = 256 * MiB
	cfg.FleetLossRequests = 4000
	cfg.FleetLossDown = 300 * time.Millisecond
	cfg.FleetLossWindow = 100 * time.Millisecond
	cfg.FleetStampedePrompts, cfg.FleetStampedeClients = 20, 2
	res := runTiny(t, cfg)
	if len(res.Fleet) != 1 {
		t.Fatalf("fleet: %d results, want 1", len(res.Fleet))
	}
	f := res.Fleet[0]
	pf, ls, off, one := f.row(FleetPeerFill), f.row(FleetLeases), f.row(FleetPrivate), f.row(FleetOne)
	if pf == nil || ls == nil || off == nil || one == nil {
		t.Fatalf("fleet rows: %+v", f.Rows)
	}
	for _, r := range []*FleetRow{pf, ls, off, one} {
		if r.Requests != int64(cfg.BudgetRequests) || r.HitRatio <= 0 || r.HitRatio >= 1 || r.EncoderRunsPerPrompt < 1 ||
			r.Overlapping < 0 || r.Later < 0 || r.Overlapping+r.Later != r.Sets-r.PromptsMissed {
			t.Errorf("fleet row %+v", *r)
		}
	}
	if !ls.Leases || ls.LeasesGranted == 0 || pf.Leases || pf.LeasesGranted != 0 {
		t.Errorf("LEASE.GET replay: leases %v, %d granted; GET replay: leases %v, %d granted", ls.Leases, ls.LeasesGranted, pf.Leases, pf.LeasesGranted)
	}
	const daemons, perDaemon = 3, 2
	clients, prompts := int64(daemons*perDaemon), int64(cfg.FleetStampedePrompts)
	for _, c := range []struct {
		peerFill, leases bool
		runs             int64
	}{
		{true, false, clients * prompts}, // every client computes
		{true, true, prompts},            // once for the fleet
		{false, false, clients * prompts},
		{false, true, daemons * prompts}, // once per daemon
	} {
		s := f.stampede(c.peerFill, c.leases)
		if s == nil {
			t.Errorf("no stampede with peer fill %v, leases %v: %+v", c.peerFill, c.leases, f.Stampede)
			continue
		}
		if s.Clients != int(clients) || s.Prompts != int(prompts) || s.Runs != c.runs || s.Runs+s.Hits != clients*prompts || s.LeaseMisses != 0 {
			t.Errorf("stampede with peer fill %v, leases %v: %+v, want %d runs", c.peerFill, c.leases, *s, c.runs)
		}
	}
	if pf.HitRatio < off.HitRatio {
		t.Errorf("peer fill hit ratio %.3f < peer fill off %.3f", pf.HitRatio, off.HitRatio)
	}
	if pf.PeerHits == 0 || off.PeerHits != 0 {
		t.Errorf("peer hits: %d with peer fill, %d without", pf.PeerHits, off.PeerHits)
	}
	if pf.EncoderRunsPerPrompt > off.EncoderRunsPerPrompt {
		t.Errorf("encoder runs per prompt: %.3f with peer fill > %.3f without", pf.EncoderRunsPerPrompt, off.EncoderRunsPerPrompt)
	}
	if len(res.FleetPeerGet) != len(cfg.FleetPeerSizes) {
		t.Fatalf("peer-served GET: %+v", res.FleetPeerGet)
	}
	for _, g := range res.FleetPeerGet {
		if g.PeerHits+g.PeerMisses < int64(g.Keys) || g.PeerHits == 0 || g.Peer.P99 <= 0 || g.PeerCPUMicros <= 0 || g.LocalCPUMicros <= 0 || g.PeerOpsPerSec16 <= 0 {
			t.Errorf("peer-served GET %+v", g)
		}
	}
	l := res.FleetLoss
	if l == nil || l.KillSeconds <= 0 || l.ReturnSeconds <= l.KillSeconds || len(l.Windows) == 0 || l.Baseline <= 0 {
		t.Fatalf("member loss: %+v", l)
	}
	dir := t.TempDir()
	if err := Write(dir, res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"fleet_hit_ratio.png", "fleet_loss.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	for _, s := range []string{"## 7. Fleet (peer fill)", FleetPeerFill, FleetLeases, "Fleet stampede", "Peer-served GET", "Member loss"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("results.md lacks %q", s)
		}
	}
}

// runTiny runs cfg within two minutes and fails the test if the run, or
// one of its workloads (a note saying so), failed.
// TestPeerGetTiny runs the peerget workload alone: the peer-served GET
// measurement without the fleet replays.
func TestPeerGetTiny(t *testing.T) {
	defer goleak.VerifyNone(t)
	cfg := tinyConfig(t)
	cfg.Workloads = []string{WorkloadPeerGet}
	cfg.FleetPeerSizes = []int{16 << 10}
	cfg.FleetPeerKeys = 100
	cfg.FleetPeerMemMax = 256 * MiB
	res := runTiny(t, cfg)
	if len(res.Fleet) != 0 || res.FleetLoss != nil {
		t.Errorf("peerget ran the fleet replays: %d fleet results, loss %v", len(res.Fleet), res.FleetLoss)
	}
	if len(res.FleetPeerGet) != 1 {
		t.Fatalf("peer-served GET: %+v", res.FleetPeerGet)
	}
	g := res.FleetPeerGet[0]
	if g.PeerHits+g.PeerMisses < int64(g.Keys) || g.PeerHits == 0 || g.PeerCPUMicros <= 0 || g.LocalCPUMicros <= 0 || g.PeerFaults < 0 ||
		g.SteadyPeerCPUMicros <= 0 || g.SteadyLocalCPUMicros <= 0 || g.SteadyMisses >= int64(g.Keys) {
		t.Errorf("peer-served GET %+v", g)
	}
}

// TestPageFaults reads this process's page faults, and 0 for a process
// that does not exist.
func TestPageFaults(t *testing.T) {
	if n := pageFaults(os.Getpid()); n <= 0 {
		t.Errorf("pageFaults(self) = %d, want > 0", n)
	}
	if n := pageFaults(1 << 30); n != 0 {
		t.Errorf("pageFaults(no such process) = %d, want 0", n)
	}
}

func runTiny(t *testing.T, cfg Config) *Results {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range res.Notes {
		t.Log("note:", n)
		if strings.Contains(n, "failed") {
			t.Errorf("workload failed: %s", n)
		}
	}
	return res
}
