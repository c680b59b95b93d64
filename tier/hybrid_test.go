package tier_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/internal/race"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/policy"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	goleak.VerifyTestMain(m)
}

// hcfg describes a Hybrid for a test.
type hcfg struct {
	dir      string
	memMax   int64
	diskMax  int64
	policy   tier.WritePolicy
	clock    tier.Clock
	flush    time.Duration
	diskOpts func(*disktier.Options)
	onError  func(string, error)
	wrapL2   func(tier.Disk) tier.Disk // wraps the disk tier, for tests that watch its calls
	eviction policy.Eviction
}

func openHybrid(t testing.TB, c hcfg) *tier.Hybrid {
	t.Helper()
	if c.dir == "" {
		c.dir = t.TempDir()
	}
	if c.memMax == 0 {
		c.memMax = 128 << 20
	}
	if c.diskMax == 0 {
		c.diskMax = 4 << 30
	}
	if c.clock == nil {
		c.clock = tier.SystemClock{}
	}
	l1, err := memtier.New(memtier.Options{MaxBytes: c.memMax, Clock: c.clock, Eviction: c.eviction, GhostBytes: c.memMax + c.diskMax})
	if err != nil {
		t.Fatal(err)
	}
	do := disktier.Options{Dir: c.dir, MaxBytes: c.diskMax, Clock: c.clock}
	if c.diskOpts != nil {
		c.diskOpts(&do)
	}
	l2, err := disktier.Open(do)
	if err != nil {
		l1.Close()
		t.Fatal(err)
	}
	var disk tier.Disk = l2
	if c.wrapL2 != nil {
		disk = c.wrapL2(l2)
	}
	h, err := tier.NewHybrid(tier.Options{L1: l1, L2: disk, WritePolicy: c.policy, Clock: c.clock, FlushInterval: c.flush, OnError: c.onError})
	if err != nil {
		l1.Close()
		l2.Close()
		t.Fatal(err)
	}
	return h
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  hcfg
	}{
		{"WriteThrough", hcfg{}},
		{"WriteBack", hcfg{policy: tier.WriteBack}},
		// A 1 MiB L1 holds almost nothing: reads come from the write queue and L2.
		{"TinyL1", hcfg{memMax: 1 << 20}},
		{"TinyL1WriteBack", hcfg{memMax: 1 << 20, policy: tier.WriteBack}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tiertest.Run(t, func(t *testing.T, clock tier.Clock) tier.Tier {
				c := tc.cfg
				c.clock = clock
				return openHybrid(t, c)
			})
		})
	}
}

func mustSetValue(t testing.TB, h *tier.Hybrid, key string, v []byte) {
	t.Helper()
	if err := h.SetValue([]byte(key), v, 0); err != nil {
		t.Fatalf("SetValue(%q): %v", key, err)
	}
}

func getValue(h *tier.Hybrid, key string) ([]byte, error) {
	r, err := h.Get([]byte(key))
	if err != nil {
		return nil, err
	}
	return r.Value(), nil
}

// TestL1BoundedUnderLoad writes 256 MiB of 118 KB values through a 32 MiB
// L1 (write-back) and reads every one back.
func TestL1BoundedUnderLoad(t *testing.T) {
	if !inFreshProcess(t) {
		return // the process memory is measured in a child that ran only this test
	}
	const memMax = 32 << 20
	total, size := int64(256<<20), 118<<10
	if testing.Short() || race.Enabled {
		total = 96 << 20 // CI runs the full size once more without -race
	}
	n := int(total / int64(size))
	for _, policy := range []tier.WritePolicy{tier.WriteBack, tier.WriteThrough} {
		t.Run(policy.String(), func(t *testing.T) {
			const cache, memtable = 16 << 20, 16 << 20
			h := openHybrid(t, hcfg{memMax: memMax, policy: policy, diskOpts: func(o *disktier.Options) {
				o.CacheSize, o.MemTableSize = cache, memtable
			}})
			defer h.Close()
			// Pebble's configured caches: the block cache and up to two
			// memtables (one being flushed, one being filled).
			rssBound := int64(memMax*115/100 + 64<<20 + cache + 2*memtable)
			debug.FreeOSMemory()                                                         // start from what earlier tests left behind
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(tier.GoMemoryLimit(memMax))) // as the daemon does
			var peakL1, peakRSS, peakGo int64
			sample := func() {
				if b := h.Stats().L1.Bytes; b > peakL1 {
					peakL1 = b
				}
				if r := rss(t); r > peakRSS {
					peakRSS = r
					peakGo = goMemory()
				}
			}
			for i := range n {
				k := "emb:" + strconv.Itoa(i)
				mustSetValue(t, h, k, tiertest.Value([]byte(k), size, uint64(i)))
				if i%32 == 0 {
					sample()
				}
			}
			for i := range n {
				k := "emb:" + strconv.Itoa(i)
				got, err := getValue(h, k)
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				if !bytes.Equal(got, tiertest.Value([]byte(k), size, uint64(i))) {
					t.Fatalf("%s: value differs", k)
				}
				if i%32 == 0 {
					sample()
				}
			}
			st := h.Stats()
			t.Logf("%s: %d values, L1 peak %d bytes of %d, peak RSS %d MiB (Go runtime %d MiB; bound %d MiB), promotions %d, demotions %d, L1 evictions %d, L2 hits %d",
				policy, n, peakL1, memMax, peakRSS>>20, peakGo>>20, rssBound>>20, st.Promotions, st.Demotions, st.L1.Evictions, st.L2Hits)
			if peakL1 > memMax {
				t.Errorf("L1 bytes peaked at %d > mem-max %d", peakL1, memMax)
			}
			if peakRSS > rssBound && !race.Enabled {
				t.Errorf("RSS peaked at %d MiB > %d MiB", peakRSS>>20, rssBound>>20)
			}
			if st.Promotions == 0 || st.L2Hits == 0 {
				t.Errorf("no promotions / L2 hits counted: %+v", st)
			}
			if policy == tier.WriteBack && st.Demotions == 0 {
				t.Errorf("write-back counted no demotions")
			}
			if policy == tier.WriteThrough && st.Demotions != 0 {
				t.Errorf("write-through demoted %d records it had already written", st.Demotions)
			}
		})
	}
}

func TestWarmRestart(t *testing.T) {
	for _, policy := range []tier.WritePolicy{tier.WriteThrough, tier.WriteBack} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			h := openHybrid(t, hcfg{dir: dir, policy: policy, memMax: 8 << 20})
			const n = 300
			for i := range n {
				k := fmt.Sprintf("k%d", i)
				mustSetValue(t, h, k, tiertest.Value([]byte(k), 1000+i*500, 1))
			}
			mustSetValue(t, h, "{clip}warm", []byte("tagged"))
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			h = openHybrid(t, hcfg{dir: dir, policy: policy, memMax: 8 << 20})
			defer h.Close()
			t.Logf("reopened in %v", time.Since(start))
			for i := range n {
				k := fmt.Sprintf("k%d", i)
				got, err := getValue(h, k)
				if err != nil || !bytes.Equal(got, tiertest.Value([]byte(k), 1000+i*500, 1)) {
					t.Fatalf("%s after restart: %v", k, err)
				}
			}
			if got, err := getValue(h, "{clip}warm"); err != nil || string(got) != "tagged" {
				t.Fatalf("{clip}warm after restart: %q %v", got, err)
			}
		})
	}
}

func TestModelFencing(t *testing.T) {
	h := openHybrid(t, hcfg{memMax: 4 << 20})
	defer h.Close()
	mustSetValue(t, h, "{clip@v1}a", []byte("v1-a"))
	mustSetValue(t, h, "{clip}b", []byte("plain-b"))
	mustSetValue(t, h, "other", []byte("o"))
	mustSetValue(t, h, "{t5}x", []byte("t5"))

	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v2")}, 1); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"{clip@v1}a", "{clip}b"} {
		if _, err := getValue(h, k); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("%s after rollout: %v, want not found", k, err)
		}
	}
	var stale *tier.StaleError
	if err := h.SetValue([]byte("{clip@v1}a"), []byte("late"), 0); !errors.As(err, &stale) || err.Error() != "STALE clip is at v2" {
		t.Fatalf("late write: %v", err)
	}
	mustSetValue(t, h, "{clip@v2}a", []byte("v2-a"))
	mustSetValue(t, h, "{clip}b", []byte("new-b"))
	for k, want := range map[string]string{"{clip@v2}a": "v2-a", "{clip}b": "new-b", "other": "o", "{t5}x": "t5"} {
		if got, err := getValue(h, k); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", k, got, err, want)
		}
	}
	if r, err := h.Get([]byte("{clip}b")); err != nil {
		t.Fatal(err)
	} else if hdr, _ := r.Header(); hdr.Tag != "v2" {
		t.Errorf("{clip}b tagged %q, want v2", hdr.Tag)
	}
	// Rolling back to v1 does not resurrect what v1 wrote before.
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v1")}, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := getValue(h, "{clip@v1}a"); !errors.Is(err, tier.ErrNotFound) {
		t.Errorf("{clip@v1}a after rollback: %v", err)
	}
	// A purge drops everything and forgets the version.
	mustSetValue(t, h, "{clip@v1}c", []byte("c"))
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Purge(t, "clip")}, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := getValue(h, "{clip@v1}c"); !errors.Is(err, tier.ErrNotFound) {
		t.Errorf("{clip@v1}c after purge: %v", err)
	}
	if v, ok := h.Model("clip"); ok {
		t.Errorf("clip still at %q after purge", v)
	}
	mustSetValue(t, h, "{clip@v9}d", []byte("any version goes once purged"))
	if h.ModelsRevision() != 3 || h.Stats().StaleWrites != 1 {
		t.Errorf("revision %d, stale writes %d", h.ModelsRevision(), h.Stats().StaleWrites)
	}
	// Replays are no-ops.
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "t5", "a")}, 4); err != nil {
		t.Fatal(err)
	}
	mustSetValue(t, h, "{t5}y", []byte("y"))
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "t5", "a")}, 4); err != nil {
		t.Fatal(err)
	}
	if got, err := getValue(h, "{t5}y"); err != nil || string(got) != "y" {
		t.Errorf("{t5}y after replay: %q %v", got, err)
	}
	if got := h.Models(); len(got) != 1 || got[0] != [2]string{"t5", "a"} {
		t.Errorf("Models() = %v", got)
	}
}

func TestModelRegistrySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := openHybrid(t, hcfg{dir: dir})
	mustSetValue(t, h, "{clip@v1}a", []byte("a"))
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v2"), tiertest.Rollout(t, "openai/clip-vit-large-patch14", "r1")}, 42); err != nil {
		t.Fatal(err)
	}
	mustSetValue(t, h, "{clip}b", []byte("b"))
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h = openHybrid(t, hcfg{dir: dir})
	defer h.Close()
	if v, _ := h.Model("clip"); v != "v2" || h.ModelsRevision() != 42 {
		t.Fatalf("after restart clip=%q revision=%d", v, h.ModelsRevision())
	}
	if _, err := getValue(h, "{clip@v1}a"); !errors.Is(err, tier.ErrNotFound) {
		t.Errorf("stale entry served after restart: %v", err)
	}
	if got, err := getValue(h, "{clip}b"); err != nil || string(got) != "b" {
		t.Errorf("{clip}b after restart: %q %v", got, err)
	}
	if err := h.SetValue([]byte("{clip@v1}z"), nil, 0); err == nil {
		t.Errorf("stale write accepted after restart")
	}
}

func TestBadScope(t *testing.T) {
	h := openHybrid(t, hcfg{})
	defer h.Close()
	for _, k := range []string{"{clip@}x", "{@v1}x"} {
		if err := h.SetValue([]byte(k), nil, 0); !errors.Is(err, tier.ErrBadScope) {
			t.Errorf("SetValue(%q) = %v", k, err)
		}
		if _, err := h.Get([]byte(k)); !errors.Is(err, tier.ErrBadScope) {
			t.Errorf("Get(%q) = %v", k, err)
		}
	}
}

// dirSize sums the sizes of the files under dir.
func dirSize(t testing.TB, dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

const freshEnv = "TIERCACHE_TEST_FRESH_PROCESS"

// inFreshProcess reports whether the calling test runs in a process of its
// own. If not, it runs the test again in a child process that runs nothing
// else, relays its output, and returns false: the caller then returns. Tests
// that measure the process (RSS) use it, since earlier tests leave memory
// behind.
func inFreshProcess(t *testing.T) bool {
	if os.Getenv(freshEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), freshEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("child process:\n%s", out)
	if err != nil {
		t.Fatalf("%s in a fresh process: %v", t.Name(), err)
	}
	return false
}

// goMemory returns the memory the Go runtime holds from the OS, less what it
// has released.
func goMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// rss returns the resident set size of this process.
func rss(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status: cannot measure RSS")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}

// TestSharedBufferPool checks that a Hybrid refuses an L1 that recycles
// record buffers through another pool than its own: the write queue would
// not hold shares of them, and a queued record could be reused under it.
func TestSharedBufferPool(t *testing.T) {
	pool := bufpool.New(bufpool.Options{})
	l1, err := memtier.New(memtier.Options{MaxBytes: 16 << 20, Buffers: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := disktier.Open(disktier.Options{Dir: t.TempDir(), MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2}); err == nil {
		h.Close()
		t.Fatal("NewHybrid accepted an L1 with a buffer pool of its own")
	}
	h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2, Buffers: pool})
	if err != nil {
		t.Fatal(err)
	}
	if h.Buffers() != pool {
		t.Fatal("Buffers does not return the shared pool")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}
