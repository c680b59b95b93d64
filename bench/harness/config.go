package harness

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Workload names, as accepted by Config.Workloads and --workloads.
const (
	WorkloadHotSet      = "hotset"
	WorkloadBudget      = "budget"
	WorkloadCold        = "cold"
	WorkloadRestart     = "restart"
	WorkloadPropagation = "propagation"
	WorkloadFleet       = "fleet"
	// WorkloadPeerGet is the fleet workload's peer-served GET measurement
	// alone (a minute or two where the fleet workload takes a quarter of
	// an hour). The fleet workload runs it too, unless both are asked for.
	WorkloadPeerGet = "peerget"
)

// AllWorkloads is the default set of workloads, in the order Run runs
// them. The fleet workload is not in it (it replays the budget trace
// eight times and more): ask for it with --workloads fleet.
var AllWorkloads = []string{WorkloadHotSet, WorkloadBudget, WorkloadCold, WorkloadRestart, WorkloadPropagation}

// KnownWorkloads is every workload, in the order Run runs them.
var KnownWorkloads = append(append([]string(nil), AllWorkloads...), WorkloadFleet, WorkloadPeerGet)

// Sizes.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

// Config is one benchmark run. Start from QuickConfig or FullConfig (or a
// zero Config, which EnsureDefaults turns into FullConfig's values) and
// override fields; Validate reports every problem at once.
type Config struct {
	// Mode names the preset in the results ("quick", "full", "test").
	// Default "full".
	Mode string
	// Tiercached is the daemon binary. Default: built from ModuleDir into
	// WorkDir with "go build ./cmd/tiercached".
	Tiercached string
	// ModuleDir is the repository root, for building the daemon. Default:
	// the nearest directory above the working directory with a go.mod.
	ModuleDir string
	// WorkDir holds sockets, data directories and the built daemon; it is
	// removed at the end unless KeepWorkDir. Default: a new temp directory
	// (under /tmp, because Unix socket paths are limited to 108 bytes).
	WorkDir     string
	KeepWorkDir bool
	// Peers are the comparison systems to run if found on PATH. Default
	// redis and memcached. A peer not on PATH is skipped with a note.
	Peers []string
	// Workloads to run. Default AllWorkloads.
	Workloads []string
	// Seed makes key choices and traces repeatable. Default 1.
	Seed uint64
	// Log receives progress lines. Default io.Discard.
	Log io.Writer
	// CommandLine is recorded in the results. Default empty.
	CommandLine string

	// HotSizes are the hot set's value sizes. Default 1 KB, 118 KB, 4 MB.
	HotSizes []int
	// HotConns are the hot set's connection counts. Default 1, 16, 64.
	HotConns []int
	// HotDuration is how long each (system, op, size, conns) cell runs.
	// Default 3s.
	HotDuration time.Duration
	// HotBytes is the data per value size in the hot set: keys =
	// HotBytes/size, at least 16 and at most 10,000. Default 256 MiB.
	HotBytes int64
	// HotMemMax is tiercached's --mem-max in the hot set (Redis and
	// memcached get the same as their limit). Default 2 GiB.
	HotMemMax int64
	// HotRounds is how many times the hot set runs on every system, the
	// systems alternating within each round (so that they all see the
	// machine in each of its moods); each cell reports its median round
	// by throughput. Default 3 (quick: 1).
	HotRounds int
	// HotPolicies are the write policies tiercached runs the hot set
	// with, each as its own row ("tiercached" is write-back,
	// "tiercached-wt" write-through). Default back, through.
	HotPolicies []string
	// Pipeline is the number of requests each connection has in flight in
	// the hot set, cold tier and restart loads. Default 4.
	Pipeline int

	// BudgetKeys is the number of distinct prompts. Default 1,000,000.
	BudgetKeys int
	// BudgetValue is the cached embedding's size. Default 118 KB (120832).
	BudgetValue int
	// BudgetZipfS is the Zipf exponent of prompt popularity. Default 1.0.
	BudgetZipfS float64
	// BudgetMem are the memory budgets, each run for every system.
	// Default 64, 128, 256 MiB.
	BudgetMem []int64
	// BudgetPeerMem are extra budgets run for the peers only, so that
	// tiercached can also be compared at equal resident memory (its
	// process holds more than --mem-max). Default 512 MiB, 1 GiB.
	BudgetPeerMem []int64
	// BudgetDiskFactor sets tiercached's --disk-max to this × the memory
	// budget. Default 10 (the daemon's defaults: 1 GiB memory, 10 GiB disk).
	BudgetDiskFactor float64
	// BudgetWarmup requests replay first and are not counted; then
	// BudgetRequests are measured. Defaults 60,000 and 60,000.
	BudgetWarmup, BudgetRequests int
	// BudgetConns parallel pipeline workers replay the trace; each does
	// GET, and on a miss "encodes" and SETs. Default 8.
	BudgetConns int
	// BudgetPolicy is tiercached's write policy in the budget workload.
	// Default back: the disk tier receives what memory evicts.
	BudgetPolicy string
	// EncoderDelay is what a miss costs the pipeline (accounted, never
	// slept). Default 50ms.
	EncoderDelay time.Duration

	// ColdMemMax is tiercached's --mem-max in the cold-tier workload; the
	// working set is ColdFactor × that. Defaults 256 MiB and 8.
	ColdMemMax int64
	ColdFactor int
	// ColdDuration is how long the L2-served GET load and its hot
	// reference run; the restart workload's steady-state measurement runs
	// as long. Default 10s.
	ColdDuration time.Duration
	// ColdConns is the cold tier's connection count (the hot-set figure
	// it is compared with uses the same). Default 16.
	ColdConns int

	// RestartBytes is the data cached before the restart. Default 4 GiB
	// (the issue asks for 10 GiB; 4 GiB keeps the full run near 25
	// minutes and leaves the shared 24 GiB machine room: set --restart-bytes
	// 10GiB for the full figure).
	RestartBytes int64
	// RestartValue is the value size. Default 118 KB.
	RestartValue int
	// RestartConns is the GET load's connection count. Default 16.
	RestartConns int
	// RestartWindow is the throughput sampling window after a restart.
	// Default 100ms.
	RestartWindow time.Duration
	// RestartTimeout bounds the wait for 90% throughput. Default 2m.
	RestartTimeout time.Duration

	// PropDaemons is the number of daemons in the propagation cluster.
	// Default 5.
	PropDaemons int
	// PropRuns are the propagation runs: keys per model, rollouts.
	// Default {10,000 keys, 200 rollouts}, {1,000,000 keys, 10 rollouts}
	// (refilling 1,000,000 keys on 5 daemons takes ~12 s per rollout).
	PropRuns []PropRun
	// PropTimeout bounds the wait for one daemon to turn stale-free.
	// Default 10s.
	PropTimeout time.Duration
	// PropNATSServer, when set, is a nats-server binary ("build": built
	// from the module): the propagation cluster then runs on that
	// standalone server (JetStream on, a random loopback port) and every
	// daemon joins it with --nats URL. Empty: daemon A embeds the NATS
	// server and the others join A.
	PropNATSServer string

	// FleetDaemons are the fleet sizes the fleet workload runs; each
	// replays the budget trace (BudgetKeys, BudgetZipfS, BudgetValue,
	// BudgetWarmup + BudgetRequests, BudgetConns) round-robin over the
	// daemons. Default 3, 5.
	FleetDaemons []int
	// FleetMemMax is each fleet daemon's --mem-max; --disk-max is
	// BudgetDiskFactor × that. The single daemon compared with the fleet
	// gets N × both, the shared Redis N × FleetMemMax. Default 64 MiB
	// (quick: 16 MiB).
	FleetMemMax int64
	// FleetPeerSizes are the value sizes of the peer-served GET
	// measurement. Default 118 KB, 4 MiB.
	FleetPeerSizes []int
	// FleetPeerKeys is how many distinct keys it reads at sizes up to
	// 1 MiB, FleetPeerKeysLarge above (twice: one client, then 16).
	// Defaults 3,000 and 64 (quick: 500 and 24).
	FleetPeerKeys, FleetPeerKeysLarge int
	// FleetPeerMemMax is --mem-max of daemons A and B of the peer-served
	// GET measurement: large enough that the owner's L1, whose shards
	// each hold 1/64 of it, keeps every large value; daemon C, the
	// steady-state reader, gets an eighth of it. Default 2 GiB.
	FleetPeerMemMax int64
	// FleetLossRequests is the member-loss replay's length after the
	// warm-up (BudgetWarmup); a daemon is SIGKILLed after
	// FleetLossKillShare of it and restarted FleetLossDown later. The
	// hit ratio is sampled every FleetLossWindow. Defaults 150,000, 0.3,
	// 2s, 2s (quick: 40,000, 0.3, 1s, 500ms).
	FleetLossRequests  int
	FleetLossKillShare float64
	FleetLossDown      time.Duration
	FleetLossWindow    time.Duration
	// FleetStampedePrompts new prompts are asked for, one after the
	// other, by FleetStampedeClients clients on every fleet daemon at
	// once (the fleet stampede). Defaults 200 and 4 (quick: 100 and 4).
	FleetStampedePrompts, FleetStampedeClients int
}

// PropRun is one propagation run.
type PropRun struct {
	Keys     int // keys of the model on every daemon before each rollout
	Rollouts int
}

// FullConfig is the full run: 22–24 minutes on 2 cores (half of it the
// budget replay and the 1,000,000-key propagation run).
func FullConfig() Config {
	return Config{
		Mode:             "full",
		Peers:            []string{kindRedis, kindMemcached},
		Workloads:        AllWorkloads,
		Seed:             1,
		HotSizes:         []int{1024, 120832, 4 << 20},
		HotConns:         []int{1, 16, 64},
		HotDuration:      3 * time.Second,
		HotBytes:         256 * MiB,
		HotMemMax:        2 * GiB,
		HotPolicies:      []string{"back", "through"},
		HotRounds:        3,
		Pipeline:         4,
		BudgetKeys:       1_000_000,
		BudgetValue:      120832,
		BudgetZipfS:      1.0,
		BudgetMem:        []int64{64 * MiB, 128 * MiB, 256 * MiB},
		BudgetPeerMem:    []int64{512 * MiB, 1 * GiB},
		BudgetDiskFactor: 10,
		BudgetWarmup:     60_000,
		BudgetRequests:   60_000,
		BudgetConns:      8,
		BudgetPolicy:     "back",
		EncoderDelay:     50 * time.Millisecond,
		ColdMemMax:       256 * MiB,
		ColdFactor:       8,
		ColdDuration:     10 * time.Second,
		ColdConns:        16,
		RestartBytes:     4 * GiB,
		RestartValue:     120832,
		RestartConns:     16,
		RestartWindow:    100 * time.Millisecond,
		RestartTimeout:   2 * time.Minute,
		PropDaemons:      5,
		PropRuns:         []PropRun{{Keys: 10_000, Rollouts: 200}, {Keys: 1_000_000, Rollouts: 10}},
		PropTimeout:      10 * time.Second,

		FleetDaemons:         []int{3, 5},
		FleetMemMax:          64 * MiB,
		FleetPeerSizes:       []int{120832, 4 << 20},
		FleetPeerKeys:        3000,
		FleetPeerKeysLarge:   64,
		FleetPeerMemMax:      2 * GiB,
		FleetLossRequests:    150_000,
		FleetLossKillShare:   0.3,
		FleetLossDown:        2 * time.Second,
		FleetLossWindow:      2 * time.Second,
		FleetStampedePrompts: 200,
		FleetStampedeClients: 4,
	}
}

// QuickConfig finishes in under 2 minutes on 2 cores.
func QuickConfig() Config {
	c := FullConfig()
	c.Mode = "quick"
	c.HotDuration = 300 * time.Millisecond
	c.HotBytes = 64 * MiB
	c.HotMemMax = 1 * GiB
	c.HotPolicies = []string{"back"}
	c.HotRounds = 1
	c.BudgetKeys = 50_000
	c.BudgetMem = []int64{16 * MiB, 32 * MiB, 64 * MiB}
	c.BudgetPeerMem = []int64{128 * MiB, 256 * MiB}
	c.BudgetWarmup = 8_000
	c.BudgetRequests = 6_000
	c.ColdMemMax = 32 * MiB
	c.ColdDuration = 2 * time.Second
	c.RestartBytes = 256 * MiB
	c.RestartTimeout = 30 * time.Second
	c.PropRuns = []PropRun{{Keys: 10_000, Rollouts: 30}}
	c.FleetMemMax = 16 * MiB
	c.FleetPeerKeys, c.FleetPeerKeysLarge = 500, 24
	c.FleetLossRequests = 40_000
	c.FleetLossDown = time.Second
	c.FleetLossWindow = 500 * time.Millisecond
	c.FleetStampedePrompts = 100
	return c
}

// EnsureDefaults fills zero fields with FullConfig's values and returns c.
func (c *Config) EnsureDefaults() *Config {
	d := FullConfig()
	set := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	set64 := func(p *int64, v int64) {
		if *p == 0 {
			*p = v
		}
	}
	setD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Peers == nil {
		c.Peers = d.Peers
	}
	if c.Workloads == nil {
		c.Workloads = d.Workloads
	}
	if c.Seed == 0 {
		c.Seed = d.Seed
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.HotSizes == nil {
		c.HotSizes = d.HotSizes
	}
	if c.HotConns == nil {
		c.HotConns = d.HotConns
	}
	if c.HotPolicies == nil {
		c.HotPolicies = d.HotPolicies
	}
	if c.HotRounds == 0 {
		c.HotRounds = d.HotRounds
	}
	if c.BudgetMem == nil {
		c.BudgetMem = d.BudgetMem
	}
	if c.BudgetPeerMem == nil {
		c.BudgetPeerMem = d.BudgetPeerMem
	}
	if c.PropRuns == nil {
		c.PropRuns = d.PropRuns
	}
	if c.BudgetZipfS == 0 {
		c.BudgetZipfS = d.BudgetZipfS
	}
	if c.BudgetDiskFactor == 0 {
		c.BudgetDiskFactor = d.BudgetDiskFactor
	}
	if c.BudgetPolicy == "" {
		c.BudgetPolicy = d.BudgetPolicy
	}
	setD(&c.HotDuration, d.HotDuration)
	set64(&c.HotBytes, d.HotBytes)
	set64(&c.HotMemMax, d.HotMemMax)
	set(&c.Pipeline, d.Pipeline)
	set(&c.BudgetKeys, d.BudgetKeys)
	set(&c.BudgetValue, d.BudgetValue)
	set(&c.BudgetWarmup, d.BudgetWarmup)
	set(&c.BudgetRequests, d.BudgetRequests)
	set(&c.BudgetConns, d.BudgetConns)
	setD(&c.EncoderDelay, d.EncoderDelay)
	set64(&c.ColdMemMax, d.ColdMemMax)
	set(&c.ColdFactor, d.ColdFactor)
	setD(&c.ColdDuration, d.ColdDuration)
	set(&c.ColdConns, d.ColdConns)
	set64(&c.RestartBytes, d.RestartBytes)
	set(&c.RestartValue, d.RestartValue)
	set(&c.RestartConns, d.RestartConns)
	setD(&c.RestartWindow, d.RestartWindow)
	setD(&c.RestartTimeout, d.RestartTimeout)
	if c.FleetDaemons == nil {
		c.FleetDaemons = d.FleetDaemons
	}
	if c.FleetPeerSizes == nil {
		c.FleetPeerSizes = d.FleetPeerSizes
	}
	if c.FleetLossKillShare == 0 {
		c.FleetLossKillShare = d.FleetLossKillShare
	}
	set64(&c.FleetMemMax, d.FleetMemMax)
	set(&c.FleetPeerKeys, d.FleetPeerKeys)
	set(&c.FleetPeerKeysLarge, d.FleetPeerKeysLarge)
	set64(&c.FleetPeerMemMax, d.FleetPeerMemMax)
	set(&c.FleetLossRequests, d.FleetLossRequests)
	setD(&c.FleetLossDown, d.FleetLossDown)
	setD(&c.FleetLossWindow, d.FleetLossWindow)
	set(&c.FleetStampedePrompts, d.FleetStampedePrompts)
	set(&c.FleetStampedeClients, d.FleetStampedeClients)
	set(&c.PropDaemons, d.PropDaemons)
	setD(&c.PropTimeout, d.PropTimeout)
	return c
}

// ErrInvalidConfig wraps every problem Validate reports.
var ErrInvalidConfig = errors.New("bench: invalid config")

// Validate reports every problem of c at once. Call EnsureDefaults first.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	known := map[string]bool{}
	for _, w := range KnownWorkloads {
		known[w] = true
	}
	for _, w := range c.Workloads {
		if !known[w] {
			add("unknown workload %q (have %v)", w, KnownWorkloads)
		}
	}
	for _, n := range c.FleetDaemons {
		if n < 2 {
			add("fleet of %d daemons: want at least 2", n)
		}
	}
	if c.FleetMemMax < 1*MiB || c.BudgetDiskFactor*float64(c.FleetMemMax) < 16*MiB {
		add("FleetMemMax must be ≥ 1 MiB and BudgetDiskFactor × it ≥ 16 MiB")
	}
	for _, s := range c.FleetPeerSizes {
		if s < 1 || int64(s) > c.FleetPeerMemMax/4 {
			add("peer-served GET size %d outside [1, FleetPeerMemMax/4]", s)
		}
	}
	if c.FleetPeerKeys < 1 || c.FleetPeerKeysLarge < 1 || c.FleetLossRequests < 1 || c.FleetLossKillShare <= 0 || c.FleetLossKillShare >= 1 {
		add("fleet key counts and FleetLossRequests must be ≥ 1, FleetLossKillShare in (0, 1)")
	}
	for _, p := range c.Peers {
		if p != kindRedis && p != kindMemcached {
			add("unknown peer %q (have redis, memcached)", p)
		}
	}
	for _, p := range append(append([]string(nil), c.HotPolicies...), c.BudgetPolicy) {
		if p != "back" && p != "through" {
			add("write policy %q is neither back nor through", p)
		}
	}
	for _, s := range c.HotSizes {
		if s < 1 || s > 64*MiB {
			add("hot-set size %d outside [1, 64 MiB]", s)
		}
	}
	for _, n := range c.HotConns {
		if n < 1 {
			add("hot-set connections %d < 1", n)
		}
	}
	if c.HotRounds < 1 {
		add("hot-set rounds %d < 1", c.HotRounds)
	}
	if c.BudgetZipfS <= 0 {
		add("Zipf exponent %v must be > 0", c.BudgetZipfS)
	}
	for _, m := range append(append([]int64(nil), c.BudgetMem...), c.BudgetPeerMem...) {
		if m < 1*MiB {
			add("memory budget %d below 1 MiB", m)
		}
	}
	if c.BudgetDiskFactor*float64(minSlice(c.BudgetMem)) < 16*MiB {
		add("BudgetDiskFactor × smallest budget must be ≥ 16 MiB (the smallest --disk-max tiercached takes)")
	}
	if c.ColdMemMax < 1*MiB || c.ColdFactor < 1 {
		add("cold tier needs ColdMemMax ≥ 1 MiB and ColdFactor ≥ 1")
	}
	if c.PropDaemons < 1 {
		add("PropDaemons %d < 1", c.PropDaemons)
	}
	for _, r := range c.PropRuns {
		if r.Keys < 0 || r.Rollouts < 1 {
			add("propagation run %+v needs Keys ≥ 0 and Rollouts ≥ 1", r)
		}
	}
	if c.Pipeline < 1 || c.BudgetConns < 1 || c.ColdConns < 1 || c.RestartConns < 1 {
		add("pipeline and connection counts must be ≥ 1")
	}
	return errors.Join(errs...)
}

func minSlice(s []int64) int64 {
	if len(s) == 0 {
		return 0
	}
	m := s[0]
	for _, v := range s[1:] {
		m = min(m, v)
	}
	return m
}

func (c *Config) has(workload string) bool {
	for _, w := range c.Workloads {
		if w == workload {
			return true
		}
	}
	return false
}
