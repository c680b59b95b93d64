package tier_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// BenchmarkRolloutServing measures whether rolling out a model that holds
// 1,000,000 L2 entries pauses the serving of other keys: a reader GETs
// other keys (half served from L1, half from L2) without pause, and the
// p99 of its GETs in the 3 s after the rollout is compared with the p99 in
// the 2 s before (metric p99-ratio; the target is ≤ 2).
//
//	go test ./tier -run '^$' -bench RolloutServing -benchtime 1x
func BenchmarkRolloutServing(b *testing.B) {
	const n, others = 1_000_000, 20_000
	for range b.N {
		b.StopTimer()
		h := openHybrid(b, hcfg{memMax: 64 << 20})
		if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(b, "clip", "v1")}, 1); err != nil {
			b.Fatal(err)
		}
		v := tiertest.Value(nil, 1000, 1)
		other := func(i int) []byte { return []byte("other-" + strconv.Itoa(i)) }
		for i := range others / 2 { // written first: evicted to L2 by what follows
			mustSetValue(b, h, string(other(i)), v)
		}
		small := tiertest.Value(nil, 200, 2)
		for i := range n {
			if err := h.SetValue([]byte("{clip}prompt-"+strconv.Itoa(i)), small, 0); err != nil {
				b.Fatal(err)
			}
		}
		for i := others / 2; i < others; i++ { // written last: in L1
			mustSetValue(b, h, string(other(i)), v)
		}
		if err := h.Flush(); err != nil {
			b.Fatal(err)
		}

		var (
			mu           sync.Mutex
			lat          []time.Duration
			stop         atomic.Bool
			wg           sync.WaitGroup
			window       = func() []time.Duration { mu.Lock(); defer mu.Unlock(); w := lat; lat = nil; return w }
			misses, gets atomic.Int64
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(1, 2))
			for !stop.Load() {
				k := other(r.IntN(others))
				t0 := time.Now()
				_, err := h.Get(k)
				d := time.Since(t0)
				gets.Add(1)
				if err != nil {
					misses.Add(1)
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
		time.Sleep(2 * time.Second) // the measurement window before the rollout
		before := window()
		b.StartTimer()
		start := time.Now()
		if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(b, "clip", "v2")}, 2); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.StopTimer()
		time.Sleep(3 * time.Second) // the window after it, while Pebble reclaims the space
		after := window()
		stop.Store(true)
		wg.Wait()
		if misses.Load() != 0 {
			b.Fatalf("%d of %d GETs of other keys missed", misses.Load(), gets.Load())
		}
		p99 := func(d []time.Duration) time.Duration {
			slices.Sort(d)
			return d[len(d)*99/100]
		}
		pb, pa := p99(before), p99(after)
		b.ReportMetric(float64(pa)/float64(pb), "p99-ratio")
		b.ReportMetric(float64(took.Microseconds()), "rollout-µs")
		b.Logf("rollout of %d entries took %v; other keys' GET p99 %v before (%d GETs), %v after (%d GETs): ratio %.2f",
			n, took, pb, len(before), pa, len(after), float64(pa)/float64(pb))
		if err := h.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
