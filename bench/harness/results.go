package harness

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Results is everything a run measured; it is written as results.json and
// rendered as results.md. Latencies are in microseconds, throughputs in
// requests per second, sizes in bytes.
type Results struct {
	Mode        string        `json:"mode"`
	CommandLine string        `json:"command_line"`
	Started     time.Time     `json:"started"`
	Seconds     float64       `json:"seconds"`
	Machine     Machine       `json:"machine"`
	Systems     []SystemInfo  `json:"systems"`
	Config      ConfigSummary `json:"config"`
	Notes       []string      `json:"notes,omitempty"`

	HotSet       []HotResult     `json:"hot_set,omitempty"`
	Budget       []BudgetResult  `json:"budget,omitempty"`
	BudgetModel  []BudgetModel   `json:"budget_model,omitempty"`
	Cold         []ColdResult    `json:"cold,omitempty"`
	Restart      []RestartResult `json:"restart,omitempty"`
	Propagation  []PropResult    `json:"propagation,omitempty"`
	Fleet        []FleetResult   `json:"fleet,omitempty"`
	FleetPeerGet []FleetPeerGet  `json:"fleet_peer_get,omitempty"`
	FleetLoss    *FleetLoss      `json:"fleet_loss,omitempty"`
	Memory       []MemResult     `json:"memory,omitempty"`
	Targets      []Target        `json:"targets,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  int64  `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
}

// SystemInfo is one system under test.
type SystemInfo struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Available bool   `json:"available"`
	Note      string `json:"note,omitempty"`
}

// ConfigSummary is the part of Config that shapes the figures.
type ConfigSummary struct {
	Pipeline          int       `json:"pipeline"`
	HotDurationSec    float64   `json:"hot_duration_seconds"`
	HotRounds         int       `json:"hot_rounds,omitempty"`
	HotBytes          int64     `json:"hot_bytes_per_size"`
	HotMemMax         int64     `json:"hot_mem_max"`
	BudgetKeys        int       `json:"budget_keys"`
	BudgetValue       int       `json:"budget_value"`
	BudgetZipfS       float64   `json:"budget_zipf_s"`
	BudgetPeerMem     []int64   `json:"budget_peer_mem,omitempty"`
	BudgetDiskFactor  float64   `json:"budget_disk_factor"`
	BudgetWarmup      int       `json:"budget_warmup"`
	BudgetRequests    int       `json:"budget_requests"`
	BudgetConns       int       `json:"budget_conns"`
	BudgetPolicy      string    `json:"budget_policy"`
	EncoderDelayMs    float64   `json:"encoder_delay_ms"`
	ColdMemMax        int64     `json:"cold_mem_max"`
	ColdFactor        int       `json:"cold_factor"`
	RestartBytes      int64     `json:"restart_bytes"`
	PropDaemons       int       `json:"prop_daemons"`
	PropRuns          []PropRun `json:"prop_runs"`
	PropNATS          string    `json:"prop_nats,omitempty"` // "standalone" or "" (embedded in daemon A)
	Seed              uint64    `json:"seed"`
	FleetDaemons      []int     `json:"fleet_daemons,omitempty"`
	FleetMemMax       int64     `json:"fleet_mem_max,omitempty"`
	FleetLossRequests int       `json:"fleet_loss_requests,omitempty"`
	// The fleet stampede's new prompts and clients per daemon.
	FleetStampedePrompts int `json:"fleet_stampede_prompts,omitempty"`
	FleetStampedeClients int `json:"fleet_stampede_clients,omitempty"`
}

// Latency is a histogram's summary, in microseconds.
type Latency struct {
	P50  float64 `json:"p50_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	us := func(v int64) float64 { return float64(v) / 1e3 }
	return Latency{
		P50:  us(h.ValueAtQuantile(50)),
		P99:  us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)),
		Max:  us(h.Max()),
	}
}

// HotResult is one hot-set cell.
type HotResult struct {
	System    string  `json:"system"`
	Op        string  `json:"op"`
	Size      int     `json:"size"`
	Conns     int     `json:"conns"`
	Keys      int     `json:"keys"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	MBPerSec  float64 `json:"mb_per_sec"`
	HitRatio  float64 `json:"hit_ratio,omitempty"`
	// Rounds is how many rounds the cell ran; the row is its median round
	// by throughput (MinOpsPerSec and MaxOpsPerSec bound the others).
	Rounds       int     `json:"rounds,omitempty"`
	MinOpsPerSec float64 `json:"min_ops_per_sec,omitempty"`
	MaxOpsPerSec float64 `json:"max_ops_per_sec,omitempty"`
	Latency
}

// BudgetResult is one (system, memory budget) replay.
type BudgetResult struct {
	System    string  `json:"system"`
	Budget    int64   `json:"budget"`
	DiskMax   int64   `json:"disk_max,omitempty"`
	Requests  int64   `json:"requests"`
	Hits      int64   `json:"hits"`
	HitRatio  float64 `json:"hit_ratio"`
	SetErrors int64   `json:"set_errors"`
	// EncoderSecondsSavedPer1k is hits × EncoderDelay per 1,000 requests.
	EncoderSecondsSavedPer1k float64 `json:"encoder_seconds_saved_per_1k"`
	// EncoderSecondsSpentPer1k is misses × EncoderDelay per 1,000.
	EncoderSecondsSpentPer1k float64 `json:"encoder_seconds_spent_per_1k"`
	Get                      Latency `json:"get"`
	Set                      Latency `json:"set"`
	Seconds                  float64 `json:"seconds"`
	// tiercached only: the bytes it caused to be written to storage per
	// 1,000 requests of the replay (/proc/PID/io), the same by L2's own
	// count (INFO l2_write_bytes; 0 for builds without it), and the values
	// L2 holds at the end as a share of --disk-max (l2_keys × value size).
	DiskWriteBytesPer1k float64 `json:"disk_write_bytes_per_1k,omitempty"`
	L2WriteBytesPer1k   float64 `json:"l2_write_bytes_per_1k,omitempty"`
	L2LiveShare         float64 `json:"l2_live_share,omitempty"`
}

// BudgetModel is what an exact LRU cache would hit on the same trace: a
// reference for how much a bigger cache can gain at all under this
// popularity curve (compulsory misses bound every system).
type BudgetModel struct {
	Budget       int64   `json:"budget"`
	MemItems     int     `json:"mem_items"`       // budget / value size
	MemDiskItems int     `json:"mem_disk_items"`  // (budget + disk) / value size
	LRUMem       float64 `json:"lru_mem"`         // exact LRU hit ratio with MemItems
	LRUMemDisk   float64 `json:"lru_mem_disk"`    // exact LRU hit ratio with MemDiskItems
	Compulsory   float64 `json:"compulsory_miss"` // first-time keys in the measured part
}

// ColdResult is the cold-tier (L2-served) GET load and its hot reference.
type ColdResult struct {
	System       string  `json:"system"`
	MemMax       int64   `json:"mem_max"`
	WorkingSet   int64   `json:"working_set"`
	Size         int     `json:"size"`
	Conns        int     `json:"conns"`
	OpsPerSec    float64 `json:"ops_per_sec"`
	HitRatio     float64 `json:"hit_ratio"`
	L2Share      float64 `json:"l2_share"` // of hits, served from L2 (INFO l2_hits)
	Latency      Latency `json:"latency"`
	HotOpsPerSec float64 `json:"hot_ops_per_sec"`
	HotLatency   Latency `json:"hot_latency"`
	HotL2Share   float64 `json:"hot_l2_share"` // of the hot reference's hits, from L2
	FillSeconds  float64 `json:"fill_seconds"`
}

// RestartResult is one system's restart.
type RestartResult struct {
	System          string    `json:"system"`
	Bytes           int64     `json:"bytes"`
	Keys            int       `json:"keys"`
	FillSeconds     float64   `json:"fill_seconds"`
	SaveSeconds     float64   `json:"save_seconds,omitempty"`  // Redis SAVE
	StopSeconds     float64   `json:"stop_seconds"`            // SIGTERM to exit
	HotOpsPerSec    float64   `json:"hot_ops_per_sec"`         // before the restart
	FirstHitSeconds float64   `json:"first_hit_seconds"`       // process start to first hit
	To90Seconds     float64   `json:"to_90_seconds,omitempty"` // process start to a window ≥ 90% hot
	Reached90       bool      `json:"reached_90"`
	Windows         []float64 `json:"windows_ops_per_sec"` // throughput per window after the first hit
	WindowSeconds   float64   `json:"window_seconds"`
	WarmupBytes     int64     `json:"l1_warmup_bytes,omitempty"` // tiercached: L1 warm-up progress when 90% was reached
	WarmupDone      bool      `json:"l1_warmup_done,omitempty"`
	HugePageBytes   int64     `json:"huge_page_bytes,omitempty"` // tiercached: memory in transparent huge pages then (INFO used_memory_huge_pages)
	Note            string    `json:"note,omitempty"`
}

// PropResult is one propagation run: the time from MODEL.ROLLOUT returning
// on daemon A to the first stale-free GET on each daemon.
type PropResult struct {
	Keys       int       `json:"keys"`
	Rollouts   int       `json:"rollouts"`
	Daemons    int       `json:"daemons"`
	FillSecs   float64   `json:"fill_seconds_per_rollout"`
	SettleSecs float64   `json:"settle_seconds_per_rollout"` // waiting for the daemons to go idle after the fill
	NotIdle    int       `json:"not_idle,omitempty"`         // rollouts sent after the settle timeout, daemons still busy
	Rollout    Latency   `json:"rollout_call"`               // MODEL.ROLLOUT's own latency on A
	EachDaemon Latency   `json:"each_daemon"`                // every (rollout, daemon) observation
	AllDaemons Latency   `json:"all_daemons"`                // per rollout, the slowest daemon
	Timeouts   int       `json:"timeouts"`
	PerDaemon  []Latency `json:"per_daemon"`
	// Samples are the per-rollout slowest-daemon times in µs (for plots).
	Samples []float64 `json:"samples_us"`
}

// MemResult is a process' peak RSS in one workload next to its budget.
type MemResult struct {
	Workload string `json:"workload"`
	System   string `json:"system"`
	Setting  string `json:"setting"`
	PeakRSS  int64  `json:"peak_rss"`
	Budget   int64  `json:"budget"` // memory the system was given; 0: unlimited
}

// Target is one acceptance target and whether this run met it.
type Target struct {
	Name   string `json:"name"`
	Met    bool   `json:"met"`
	Known  bool   `json:"known"` // false when the run could not tell (peer absent, workload skipped)
	Detail string `json:"detail"`
}

// The systems of a fleet run, in FleetRow.System.
const (
	FleetPeerFill = "fleet, peer fill"
	// FleetLeases is FleetPeerFill's daemons driven with LEASE.GET
	// instead of GET (fleet-wide leases).
	FleetLeases  = "fleet, peer fill, LEASE.GET"
	FleetPrivate = "fleet, peer fill off"
	FleetOne     = "one daemon, fleet's memory and disk"
	FleetRedis   = "one shared Redis, fleet's memory"
)

// FleetResult is one fleet size: the budget trace spread round-robin over
// the daemons, and on the systems it is compared with.
type FleetResult struct {
	Daemons int        `json:"daemons"`
	MemMax  int64      `json:"mem_max"`  // each daemon's --mem-max
	DiskMax int64      `json:"disk_max"` // each daemon's --disk-max
	Rows    []FleetRow `json:"rows"`
	// Hit ratio with peer fill ÷ the other system's (0: not measured).
	VsPrivate float64 `json:"peer_fill_vs_private"`
	VsOne     float64 `json:"peer_fill_vs_one_daemon"`
	VsRedis   float64 `json:"peer_fill_vs_shared_redis,omitempty"`
	// Stampede is the fleet stampede on these daemons: duplicate
	// computation alone, without eviction.
	Stampede []FleetStampede `json:"stampede,omitempty"`
}

func (r *FleetResult) row(system string) *FleetRow {
	for i := range r.Rows {
		if r.Rows[i].System == system {
			return &r.Rows[i]
		}
	}
	return nil
}

// stampede returns the fleet stampede row with peer fill and leases as
// given, or nil.
func (r *FleetResult) stampede(peerFill, leases bool) *FleetStampede {
	for i := range r.Stampede {
		if s := &r.Stampede[i]; s.PeerFill == peerFill && s.Leases == leases {
			return s
		}
	}
	return nil
}

// FleetRow is one system's replay of the fleet trace.
type FleetRow struct {
	System   string  `json:"system"`
	Setting  string  `json:"setting"`
	Requests int64   `json:"requests"` // measured (after the warm-up)
	Hits     int64   `json:"hits"`
	HitRatio float64 `json:"hit_ratio"`
	// Leases is true when the replay asked with LEASE.GET (a hit, or a
	// lease and then the encoder and a SET) instead of GET then SET.
	Leases bool `json:"leases,omitempty"`
	// Sets is every SET of the replay, warm-up included: one per encoder
	// run. PromptsMissed is the distinct prompts that missed at least
	// once; EncoderRunsPerPrompt is Sets ÷ PromptsMissed.
	Sets                 int64   `json:"sets"`
	PromptsMissed        int64   `json:"prompts_missed"`
	EncoderRunsPerPrompt float64 `json:"encoder_runs_per_prompt"`
	// The runs beyond each prompt's first (Sets − PromptsMissed), split:
	// Overlapping began while another run of the same prompt was in
	// flight (from its miss or lease to its SET's acknowledgement), on
	// any daemon: duplicate computation. Later are the others: the value
	// had been evicted, or was not (yet) where this request looked.
	Overlapping int64 `json:"overlapping_runs"`
	Later       int64 `json:"later_runs"`
	// With Leases: leases granted (INFO leases_granted summed over the
	// daemons), LEASE.GETs whose WAIT ran out ("miss") and LEASE.GETs
	// refused at --max-leases; both of the last two run the encoder.
	LeasesGranted            int64   `json:"leases_granted,omitempty"`
	LeaseMisses              int64   `json:"lease_misses,omitempty"`
	LeaseRefused             int64   `json:"lease_refused,omitempty"`
	EncoderSecondsSpentPer1k float64 `json:"encoder_seconds_spent_per_1k"`
	PeerHits                 int64   `json:"peer_hits,omitempty"`         // INFO peer_hits summed over the daemons
	PeerSetsDropped          int64   `json:"peer_sets_dropped,omitempty"` // forwarded SETs the queue dropped
	Errors                   int64   `json:"errors,omitempty"`            // requests retried on another daemon (member loss)
	Get                      Latency `json:"get"`
	Seconds                  float64 `json:"seconds"`

	windows, windowEnds []float64
}

// FleetStampede is the fleet stampede: clients on every daemon ask for
// the same new prompt at once, one prompt after the other, and the
// client or clients that must compute it (a miss, a lease) finish only
// once every client has asked. The prompts fit in the fleet's memory, so
// runs beyond one per prompt are duplicate computation alone.
type FleetStampede struct {
	PeerFill bool  `json:"peer_fill"`
	Leases   bool  `json:"leases"`
	Clients  int   `json:"clients"` // over all the daemons
	Prompts  int   `json:"prompts"`
	Runs     int64 `json:"runs"` // encoder runs (SETs)
	Hits     int64 `json:"hits"`
	// LeaseMisses are LEASE.GETs whose WAIT ran out (they compute).
	LeaseMisses   int64   `json:"lease_misses,omitempty"`
	RunsPerPrompt float64 `json:"runs_per_prompt"`
	Seconds       float64 `json:"seconds"`
}

// FleetPeerGet is GETs served through daemon A by daemon B, the keys'
// owner, against local GETs of the same keys from A's L1.
type FleetPeerGet struct {
	Size     int   `json:"size"`
	Keys     int   `json:"keys"`
	PeerHits int64 `json:"peer_hits"` // A's peer_hits over the one-client pass
	// Misses of the peer passes (a peer request past --peer-timeout) and
	// of the local passes (a near copy that was not kept), both included
	// in the latencies and throughputs.
	PeerMisses  int64   `json:"peer_misses,omitempty"`
	LocalMisses int64   `json:"local_misses,omitempty"`
	Peer        Latency `json:"peer"`  // one client, first reads through A
	Local       Latency `json:"local"` // one client, the same keys again
	// CPU time of A and B together per GET (per-thread schedstat).
	PeerCPUMicros  float64 `json:"peer_cpu_us"`
	LocalCPUMicros float64 `json:"local_cpu_us"`
	CPURatio       float64 `json:"cpu_ratio"`
	// Page faults of A and B together per GET (/proc/PID/stat): a near
	// copy A keeps in memory it has never touched costs one per 4 KiB.
	PeerFaults  float64 `json:"peer_faults"`
	LocalFaults float64 `json:"local_faults"`
	// The same at steady state: first reads through daemon C, whose L1
	// (an eighth of A's) is full, so each near copy evicts an entry;
	// local GETs of the last keys read, which C still holds.
	SteadyPeerCPUMicros  float64 `json:"steady_peer_cpu_us"`
	SteadyLocalCPUMicros float64 `json:"steady_local_cpu_us"`
	SteadyCPURatio       float64 `json:"steady_cpu_ratio"`
	SteadyPeerFaults     float64 `json:"steady_peer_faults"`
	SteadyPeer           Latency `json:"steady_peer"`
	SteadyMisses         int64   `json:"steady_misses,omitempty"`
	PeerMBPerSec         float64 `json:"peer_mb_per_sec"` // one client
	PeerOpsPerSec16      float64 `json:"peer_ops_per_sec_16"`
	LocalOpsPerSec16     float64 `json:"local_ops_per_sec_16"`
	ThroughputRatio      float64 `json:"throughput_ratio_16"` // peer ÷ local
}

// FleetLoss is a member SIGKILLed mid-replay and restarted.
type FleetLoss struct {
	Daemons       int       `json:"daemons"`
	WindowSeconds float64   `json:"window_seconds"`
	Windows       []float64 `json:"windows_hit_ratio"`
	WindowEnds    []float64 `json:"window_ends_seconds"`
	KillSeconds   float64   `json:"kill_seconds"`   // from the replay's start
	ReturnSeconds float64   `json:"return_seconds"` // ready again
	HitRatio      float64   `json:"hit_ratio"`      // the whole replay
	// Baseline is the hit ratio before the kill; RecoverySeconds the time
	// from the return to the end of the first window within 2 points of it.
	Baseline        float64 `json:"baseline"`
	RecoverySeconds float64 `json:"recovery_seconds"`
	Recovered       bool    `json:"recovered"`
	Errors          int64   `json:"errors"` // requests retried because their daemon was down
}
