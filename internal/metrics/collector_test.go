package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sampleStats() tier.HybridStats {
	return tier.HybridStats{
		Hits: 10, Misses: 4, L1Hits: 7, L1Misses: 7, L2Hits: 3, L2Misses: 4,
		Promotions: 3, Demotions: 2, StaleWrites: 1, L2ReadErrors: 5, L2WriteErrors: 6,
		PendingBytes: 4096, PendingDropped: 8, ModelsRevision: 12, ModelsKnown: 2, RolloutsApplied: 9,
		WritePolicy: tier.WriteBack,
		L1:          tier.Stats{Evictions: 11, Bytes: 1000, MaxBytes: 1 << 20, Keys: 3, Admitted: 40, Rejected: 21},
		L2:          tier.Stats{Evictions: 13, Bytes: 5000, MaxBytes: 16 << 20, Keys: 30, Corrupt: 1, Errors: 2, Written: 1 << 30, Admitted: 2, Rejected: 17, SecondChances: 9},
		WarmupDone:  true, WarmupBytes: 3 << 20, WarmupKeys: 24,
	}
}

func sampleModels() tier.ModelStats {
	return tier.ModelStats{
		Models:       []tier.ModelCounts{{Model: "openai/clip-vit-large-patch14", Version: "v2", KeyCounts: tier.KeyCounts{Hits: 6, Misses: 2}}},
		Unscoped:     tier.KeyCounts{Hits: 3, Misses: 1},
		Unregistered: tier.KeyCounts{Hits: 1, Misses: 1},
	}
}

func TestCollectorValues(t *testing.T) {
	c := NewCollector(sampleStats, sampleModels)
	want := `
# HELP tiercache_tier_hits_total Lookups answered by a tier.
# TYPE tiercache_tier_hits_total counter
tiercache_tier_hits_total{tier="l1"} 7
tiercache_tier_hits_total{tier="l2"} 3
# HELP tiercache_evictions_total Entries a tier removed to make space.
# TYPE tiercache_evictions_total counter
tiercache_evictions_total{tier="l1"} 11
tiercache_evictions_total{tier="l2"} 13
# HELP tiercache_rejected_total Entries a tier's admission turned away: L1, entries its policy let go unread (one-hit wonders); L2, those of them not written because L2 was full.
# TYPE tiercache_rejected_total counter
tiercache_rejected_total{tier="l1"} 21
tiercache_rejected_total{tier="l2"} 17
# HELP tiercache_tier_max_bytes Configured capacity of a tier in bytes.
# TYPE tiercache_tier_max_bytes gauge
tiercache_tier_max_bytes{tier="l1"} 1.048576e+06
tiercache_tier_max_bytes{tier="l2"} 1.6777216e+07
# HELP tiercache_l2_write_bytes_total Bytes the disk tier wrote to the files of its directory since start: WAL, sstables, blob files and MANIFEST, flushes and compactions included (what reaches the device, before the filesystem's and the device's own amplification).
# TYPE tiercache_l2_write_bytes_total counter
tiercache_l2_write_bytes_total 1.073741824e+09
# HELP tiercache_l2_second_chances_total Entries the disk tier rewrote when their generation was dropped instead of evicting them, having been read since written (INFO's l2_second_chances).
# TYPE tiercache_l2_second_chances_total counter
tiercache_l2_second_chances_total 9
# HELP tiercache_pending_write_bytes Bytes of writes waiting to reach L2.
# TYPE tiercache_pending_write_bytes gauge
tiercache_pending_write_bytes 4096
# HELP tiercache_write_policy_info The write policy in force; the value is always 1.
# TYPE tiercache_write_policy_info gauge
tiercache_write_policy_info{policy="back"} 1
# HELP tiercache_l1_warmup_done 1 once the warm-up of L1 after start has ended (or when it is off), 0 while it runs.
# TYPE tiercache_l1_warmup_done gauge
tiercache_l1_warmup_done 1
# HELP tiercache_l1_warmup_bytes_total Bytes of keys and values the warm-up after start copied from L2 to L1.
# TYPE tiercache_l1_warmup_bytes_total counter
tiercache_l1_warmup_bytes_total 3.145728e+06
# HELP tiercache_model_misses_total Lookups of a model's keys that found nothing, by model as tiercache_model_hits_total.
# TYPE tiercache_model_misses_total counter
tiercache_model_misses_total{model="openai/clip-vit-large-patch14"} 2
tiercache_model_misses_total{model="{unregistered}"} 1
tiercache_model_misses_total{model="{unscoped}"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"tiercache_tier_hits_total", "tiercache_evictions_total", "tiercache_rejected_total", "tiercache_tier_max_bytes",
		"tiercache_pending_write_bytes", "tiercache_l2_write_bytes_total", "tiercache_l2_second_chances_total", "tiercache_write_policy_info", "tiercache_model_misses_total",
		"tiercache_l1_warmup_done", "tiercache_l1_warmup_bytes_total"); err != nil {
		t.Fatal(err)
	}
	// 20 metrics, 8 more per tier, 2 per model line (one model, unscoped,
	// unregistered).
	if n := testutil.CollectAndCount(c); n != 20+2*8+2*3 {
		t.Fatalf("collected %d metrics, want %d", n, 20+2*8+2*3)
	}
}

// TestCollectorLint checks the names and help against the Prometheus
// conventions (counters end in _total, units in base units, …).
func TestCollectorLint(t *testing.T) {
	c := NewCollector(sampleStats, sampleModels)
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestCollectorRegisters(t *testing.T) {
	reg := NewRegistry()
	reg.MustRegister(NewCollector(sampleStats, sampleModels))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sawGo, sawProcess, sawOurs bool
	for _, mf := range mfs {
		switch name := mf.GetName(); {
		case name == "go_goroutines":
			sawGo = true
		case name == "process_open_fds":
			sawProcess = true
		case name == "tiercache_hits_total":
			sawOurs = true
		}
	}
	if !sawGo || !sawOurs || !sawProcess {
		t.Fatalf("go=%v process=%v tiercache=%v", sawGo, sawProcess, sawOurs)
	}
}

func TestHandler(t *testing.T) {
	reg := NewRegistry()
	reg.MustRegister(NewCollector(sampleStats, sampleModels))
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(Handler(reg, healthy.Load))
	defer srv.Close()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "tiercache_tier_keys{tier=\"l2\"} 30") {
		t.Fatalf("/metrics = %d, body lacks tiercache_tier_keys:\n%s", code, body)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Fatalf("/nope = %d", code)
	}
	healthy.Store(false)
	if code, body := get("/healthz"); code != 503 || body != "shutting down\n" {
		t.Fatalf("/healthz while shutting down = %d %q", code, body)
	}
	srv.CloseClientConnections()
}
