package tier_test

import (
	"bytes"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// warmCfg describes a Hybrid reopened on a filled directory.
type warmCfg struct {
	dir       string
	memMax    int64
	policy    tier.WritePolicy
	clock     tier.Clock
	warmBytes int64
	// hook, if set, runs in the warm-up after each L2 read (its 1-based
	// number), before the warm-up copies what it read to L1.
	hook func(call int)
	// before, if set, runs on L1 before the Hybrid is built on it.
	before func(l1 *memtier.Cache)
}

// warmDisk is the disk tier with a hook in ReadRecent: the real store, read
// for real, with the test acting between the read and its use.
type warmDisk struct {
	*disktier.Store
	calls atomic.Int32
	hook  func(call int)
}

func (d *warmDisk) ReadRecent(cursor []byte, maxBytes int64, maxRecord int, skip func([]byte) bool, fn func([]byte, tier.Record)) ([]byte, error) {
	next, err := d.Store.ReadRecent(cursor, maxBytes, maxRecord, skip, fn)
	d.hook(int(d.calls.Add(1)))
	return next, err
}

// warmDiskOpts gives the disk tier many small generations, so that "the
// newest entries" is a set smaller than L1.
func warmDiskOpts(dir string, clock tier.Clock) disktier.Options {
	return disktier.Options{Dir: dir, MaxBytes: 256 << 20, Generations: 64, Clock: clock}
}

// openWarm opens a Hybrid on c.dir and returns it with its L1; both are
// closed at the end of the test.
func openWarm(t *testing.T, c warmCfg) (*tier.Hybrid, *memtier.Cache) {
	t.Helper()
	if c.clock == nil {
		c.clock = tier.SystemClock{}
	}
	l1, err := memtier.New(memtier.Options{MaxBytes: c.memMax, Clock: c.clock})
	if err != nil {
		t.Fatal(err)
	}
	if c.before != nil {
		c.before(l1)
	}
	l2, err := disktier.Open(warmDiskOpts(c.dir, c.clock))
	if err != nil {
		l1.Close()
		t.Fatal(err)
	}
	var disk tier.Disk = l2
	if c.hook != nil {
		disk = &warmDisk{Store: l2, hook: c.hook}
	}
	h, err := tier.NewHybrid(tier.Options{L1: l1, L2: disk, WritePolicy: c.policy, Clock: c.clock, WarmBytes: c.warmBytes})
	if err != nil {
		l1.Close()
		l2.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h, l1
}

// openNoWarm opens the store in dir (16 MiB of L1) with the warm-up off.
func openNoWarm(t testing.TB, dir string, clock tier.Clock) *tier.Hybrid {
	t.Helper()
	l1, err := memtier.New(memtier.Options{MaxBytes: 16 << 20, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := disktier.Open(warmDiskOpts(dir, clock))
	if err != nil {
		t.Fatal(err)
	}
	h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2, Clock: clock, WarmBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fillDir writes n values of size bytes under warmKey(0..n-1), in order,
// through a Hybrid with warm-up off, and closes it.
func fillDir(t testing.TB, dir string, clock tier.Clock, n, size int, expireAt func(i int) int64) {
	t.Helper()
	if clock == nil {
		clock = tier.SystemClock{}
	}
	h := openNoWarm(t, dir, clock)
	for i := range n {
		var exp int64
		if expireAt != nil {
			exp = expireAt(i)
		}
		k := warmKey(i)
		if err := h.SetValue([]byte(k), tiertest.Value([]byte(k), size, 0), exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

func warmKey(i int) string { return "warm:" + strconv.Itoa(i) }

func waitWarm(t *testing.T, h *tier.Hybrid) tier.HybridStats {
	t.Helper()
	testutil.WaitFor(t, 60*time.Second, "the warm-up to end", func() bool { return h.Stats().WarmupDone })
	return h.Stats()
}

// inL1 reports whether L1 itself holds key (memtier.Cache.Get: no
// promotion).
func inL1(l1 *memtier.Cache, key string) bool {
	_, err := l1.Get([]byte(key))
	return err == nil
}

// TestWarmUpLoadsNewest writes 40 MiB of 64 KiB values over a dozen L2
// generations, reopens with a 16 MiB L1 and a budget of 12 MiB, and checks
// that the warm-up loads the entries written last, up to its budget and
// not beyond, evicting nothing, and that GETs of them are L1 hits.
func TestWarmUpLoadsNewest(t *testing.T) {
	dir := t.TempDir()
	const n, size = 640, 64 << 10
	fillDir(t, dir, nil, n, size, nil)

	const memMax = 16 << 20
	budget := int64(memMax) / 4 * 3
	h, l1 := openWarm(t, warmCfg{dir: dir, memMax: memMax, warmBytes: budget})
	st := waitWarm(t, h)
	t.Logf("warmed %d keys, %d bytes; L1 %d bytes, %d keys", st.WarmupKeys, st.WarmupBytes, st.L1.Bytes, st.L1.Keys)
	if st.WarmupBytes < budget || st.WarmupBytes > budget+(1<<20)+2*size {
		t.Errorf("warmed %d bytes, want the budget, %d, plus at most one step", st.WarmupBytes, budget)
	}
	if st.L1.Evictions != 0 {
		t.Errorf("%d L1 evictions during the warm-up", st.L1.Evictions)
	}
	if st.L2Hits != 0 || st.Promotions != 0 {
		t.Errorf("the warm-up counted as lookups: %d L2 hits, %d promotions", st.L2Hits, st.Promotions)
	}
	// The last 100 values (6.4 MiB) lie in generations newer than any
	// other the 12 MiB budget reaches; the first 100 in the oldest.
	for i := n - 100; i < n; i++ {
		if !inL1(l1, warmKey(i)) {
			t.Fatalf("%s, among the last written, is not in L1", warmKey(i))
		}
	}
	for i := range 100 {
		if inL1(l1, warmKey(i)) {
			t.Fatalf("%s, among the first written, is in L1", warmKey(i))
		}
	}
	before := h.Stats()
	for i := n - 100; i < n; i++ {
		k := warmKey(i)
		if v, err := getValue(h, k); err != nil || !bytes.Equal(v, tiertest.Value([]byte(k), size, 0)) {
			t.Fatalf("GET %s after the warm-up: %d bytes, %v", k, len(v), err)
		}
	}
	if after := h.Stats(); after.L1Hits-before.L1Hits != 100 {
		t.Errorf("%d L1 hits for 100 warmed keys", after.L1Hits-before.L1Hits)
	}
}

// TestWarmUpFillsL1: by default the warm-up fills L1 until the next entry
// would evict another (memtier.Cache.Fits): L1 then holds about all its
// large store can (its capacity less each record's allocation overhead),
// the newest entries, and nothing was evicted or demoted.
func TestWarmUpFillsL1(t *testing.T) {
	dir := t.TempDir()
	const n, size = 640, 64 << 10 // 40 MiB
	fillDir(t, dir, nil, n, size, nil)

	const memMax = 16 << 20
	h, l1 := openWarm(t, warmCfg{dir: dir, memMax: memMax})
	st := waitWarm(t, h)
	t.Logf("warmed %d keys, %d bytes; L1 %d bytes, %d keys, %d evictions", st.WarmupKeys, st.WarmupBytes, st.L1.Bytes, st.L1.Keys, st.L1.Evictions)
	if st.L1.Evictions != 0 {
		t.Errorf("%d L1 evictions; want the warm-up to stop before the first", st.L1.Evictions)
	}
	if st.L1.Bytes < memMax*85/100 {
		t.Errorf("L1 holds %d bytes of %d after the warm-up", st.L1.Bytes, memMax)
	}
	if st.Demotions != 0 {
		t.Errorf("%d demotions of warmed entries", st.Demotions)
	}
	for i := n - 100; i < n; i++ {
		if !inL1(l1, warmKey(i)) {
			t.Fatalf("%s, among the last written, is not in L1", warmKey(i))
		}
	}
}

// TestWarmUpSmallRecordsStop: records small enough for L1's rings (1/8 of
// L1) cannot reach the budget; the warm-up stops once the rings have taken
// their share (or at their first eviction) rather than cycle through L2
// evicting what it loaded.
func TestWarmUpSmallRecordsStop(t *testing.T) {
	dir := t.TempDir()
	const n, size = 40000, 200 // 8 MiB
	fillDir(t, dir, nil, n, size, nil)
	h, _ := openWarm(t, warmCfg{dir: dir, memMax: 16 << 20})
	st := waitWarm(t, h)
	t.Logf("warmed %d keys, %d bytes; L1 %d bytes, %d evictions", st.WarmupKeys, st.WarmupBytes, st.L1.Bytes, st.L1.Evictions)
	if st.WarmupKeys == 0 {
		t.Fatal("nothing warmed")
	}
	if rings := int64(16<<20) / 8; st.WarmupBytes > rings+(1<<20) {
		t.Errorf("warmed %d bytes into rings of %d", st.WarmupBytes, rings)
	}
}

// TestWarmUpOff: WarmBytes < 0 loads nothing and reports done at once.
func TestWarmUpOff(t *testing.T) {
	dir := t.TempDir()
	fillDir(t, dir, nil, 10, 1000, nil)
	h, l1 := openWarm(t, warmCfg{dir: dir, memMax: 16 << 20, warmBytes: -1})
	if st := h.Stats(); !st.WarmupDone || st.WarmupBytes != 0 || st.L1.Keys != 0 || inL1(l1, warmKey(0)) {
		t.Fatalf("warm-up off: %+v", st)
	}
}

// TestWarmUpNeverOverwrites acts between the warm-up's read of L2 and its
// copy to L1: keys written, deleted or expired meanwhile must keep what the
// client did, under both write policies. In write-back, a key whose newer
// value was only in L1 and was evicted (demoted) meanwhile must not get
// its older L2 value back either.
func TestWarmUpNeverOverwrites(t *testing.T) {
	for _, policy := range []tier.WritePolicy{tier.WriteThrough, tier.WriteBack} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			const n, size = 64, 4 << 10
			fillDir(t, dir, nil, n, size, nil)
			newer := []byte("newer value")
			var h *tier.Hybrid
			var l1 *memtier.Cache
			ready := make(chan struct{})
			demoted := warmKey(0)
			hook := func(call int) {
				if call != 1 {
					return
				}
				<-ready
				for i := 1; i < n; i++ {
					k := []byte(warmKey(i))
					switch i % 3 {
					case 0:
						mustSetValue(t, h, string(k), newer)
					case 1:
						if err := h.Delete(k); err != nil {
							t.Error(err)
						}
					}
				}
				if policy == tier.WriteBack {
					// Push warm:0 (newer, dirty, in L1 only) out of L1's
					// rings with small values L1 takes directly: no
					// write of the Hybrid tells its stripe.
					for i := 0; inL1(l1, demoted); i++ {
						if i > 100000 {
							t.Error("warm:0 not evicted")
							break
						}
						k := []byte("filler:" + strconv.Itoa(i))
						if err := l1.Set(k, tier.NewRecord(tier.Header{Flags: tier.FlagClean}, make([]byte, 500))); err != nil {
							t.Error(err)
						}
					}
				}
			}
			cfg := warmCfg{dir: dir, memMax: 8 << 20, policy: policy, hook: hook}
			if policy == tier.WriteBack {
				cfg.before = func(l1 *memtier.Cache) {
					// warm:0's newer value, not yet written down: the
					// state write-back leaves before an eviction.
					if err := l1.Set([]byte(demoted), tier.NewRecord(tier.Header{}, newer)); err != nil {
						t.Fatal(err)
					}
				}
			}
			h, l1 = openWarm(t, cfg)
			close(ready)
			waitWarm(t, h)
			for i := range n {
				k := warmKey(i)
				v, err := getValue(h, k)
				switch {
				case i == 0 && policy == tier.WriteBack, i%3 == 0 && i > 0:
					if err != nil || !bytes.Equal(v, newer) {
						t.Errorf("%s: %d bytes, %v; want the value written during the warm-up", k, len(v), err)
					}
				case i%3 == 1:
					if !errors.Is(err, tier.ErrNotFound) {
						t.Errorf("%s, deleted during the warm-up: %d bytes, %v", k, len(v), err)
					}
				default:
					if err != nil || !bytes.Equal(v, tiertest.Value([]byte(k), size, 0)) {
						t.Errorf("%s: %d bytes, %v; want its L2 value", k, len(v), err)
					}
				}
			}
		})
	}
}

// TestWarmUpSkipsExpiredAndStale: entries expired before the reopen, or
// between the warm-up's read and its copy, and entries of a model epoch
// that a rollout made stale meanwhile, never reach L1; live ones do, with
// their expiry.
func TestWarmUpSkipsExpiredAndStale(t *testing.T) {
	dir := t.TempDir()
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	now := clock.Now().UnixMilli()
	const n = 30
	// warm:0..9 expire before the reopen, 10..19 during the warm-up,
	// 20..29 an hour later.
	expiry := func(i int) int64 {
		if i >= 20 {
			return now + 3600_000
		}
		return now + int64(1+i/10)*1000
	}
	fillDir(t, dir, clock, n, 100, expiry)
	// Model-scoped entries, versioned and not, of models at v1.
	h0 := openNoWarm(t, dir, clock)
	if err := h0.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "m", "v1"), tiertest.Rollout(t, "keep", "v1")}, 1); err != nil {
		t.Fatal(err)
	}
	scoped := []string{"{m@v1}a", "{m}b", "{keep@v1}c", "{keep}d"}
	for _, k := range scoped {
		mustSetValue(t, h0, k, []byte("value of "+k))
	}
	if err := h0.Close(); err != nil {
		t.Fatal(err)
	}

	clock.Advance(1500 * time.Millisecond) // warm:0..9 have expired
	var h *tier.Hybrid
	var l1 *memtier.Cache
	ready := make(chan struct{})
	v2 := tiertest.Rollout(t, "m", "v2") // made here: the hook runs on the warm-up's goroutine
	h, l1 = openWarm(t, warmCfg{dir: dir, memMax: 16 << 20, clock: clock, hook: func(call int) {
		if call != 1 {
			return
		}
		<-ready
		clock.Advance(time.Second) // warm:10..19 expire
		if err := h.ApplyModels([]tier.ModelChange{v2}, 2); err != nil {
			t.Error(err)
		}
	}})
	close(ready)
	if st := waitWarm(t, h); st.WarmupKeys != 12 {
		t.Errorf("warmed %d keys, want 12", st.WarmupKeys)
	}
	for i := range n {
		k := warmKey(i)
		if got, want := inL1(l1, k), i >= 20; got != want {
			t.Errorf("%s in L1: %v, want %v", k, got, want)
		}
	}
	if r, err := l1.Get([]byte(warmKey(25))); err != nil || r.ExpireAt() != expiry(25) {
		t.Errorf("warm:25 in L1: %v, expiry %d, want %d", err, r.ExpireAt(), expiry(25))
	}
	for _, k := range scoped {
		if got, want := inL1(l1, k), k[1] == 'k'; got != want {
			t.Errorf("%s in L1: %v, want %v", k, got, want)
		}
	}
}

// TestWarmUpClose closes the Hybrid while the warm-up is between its read
// of L2 and its copy to L1: Close waits for the step, the warm-up stops
// there, and no goroutine outlives Close (TestMain checks with goleak).
// Until then the warm-up reports itself not done.
func TestWarmUpClose(t *testing.T) {
	dir := t.TempDir()
	fillDir(t, dir, nil, 320, 64<<10, nil)
	reading, release := make(chan struct{}), make(chan struct{})
	h, _ := openWarm(t, warmCfg{dir: dir, memMax: 64 << 20, hook: func(call int) {
		if call == 2 {
			close(reading)
			<-release
		}
	}})
	<-reading
	if st := h.Stats(); st.WarmupDone || st.WarmupKeys == 0 {
		t.Errorf("during the warm-up's second step: done %v, %d keys warmed", st.WarmupDone, st.WarmupKeys)
	}
	closed := make(chan error, 1)
	go func() { closed <- h.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close during the warm-up: %v", err)
	}
	if _, err := h.Get([]byte(warmKey(0))); !errors.Is(err, tier.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
}

// BenchmarkWarmUp measures how fast L1 refills after a reopen: by the
// warm-up alone ("warmup": from NewHybrid to WarmupDone, every entry
// warmed), and by one client reading every key once with the warm-up off
// ("promotion": what refilled L1 before). Bytes are the values refilled.
//
//	go test ./tier -run '^$' -bench WarmUp -benchtime 5x
func BenchmarkWarmUp(b *testing.B) {
	const total = 64 << 20
	for _, sz := range benchSizes[:2] {
		n := total / sz.size
		dir := b.TempDir()
		fillDir(b, dir, nil, n, sz.size, nil)
		open := func(b *testing.B, warm int64) *tier.Hybrid {
			l1, err := memtier.New(memtier.Options{MaxBytes: 4 * total})
			if err != nil {
				b.Fatal(err)
			}
			l2, err := disktier.Open(warmDiskOpts(dir, tier.SystemClock{}))
			if err != nil {
				b.Fatal(err)
			}
			h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2, WarmBytes: warm})
			if err != nil {
				b.Fatal(err)
			}
			return h
		}
		b.Run(sz.name, func(b *testing.B) {
			b.Run("warmup", func(b *testing.B) {
				b.SetBytes(int64(n * sz.size))
				for b.Loop() {
					h := open(b, 0)
					for !h.Stats().WarmupDone {
						time.Sleep(100 * time.Microsecond)
					}
					if st := h.Stats(); st.WarmupKeys != uint64(n) {
						b.Fatalf("warmed %d keys of %d", st.WarmupKeys, n)
					}
					b.StopTimer()
					_ = h.Close()
					b.StartTimer()
				}
			})
			b.Run("promotion", func(b *testing.B) {
				b.SetBytes(int64(n * sz.size))
				for b.Loop() {
					h := open(b, -1)
					for i := range n {
						if _, err := h.Get([]byte(warmKey(i))); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					_ = h.Close()
					b.StartTimer()
				}
			})
		})
	}
}
