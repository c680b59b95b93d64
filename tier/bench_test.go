package tier_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/allegro/bigcache/v3"
	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// The benchmarks below each run tiercache's path and the raw library call
// it is measured against side by side (sub-benchmarks "hybrid" and "raw"),
// so the ratio between them comes from one run on one machine:
//
//	go test ./tier -run '^$' -bench . -benchtime 2s

var benchSizes = []struct {
	name string
	size int
}{{"1KB", 1 << 10}, {"118KB", 118 << 10}, {"4MB", 4 << 20}}

// BenchmarkL1Hit compares a Hybrid Get served by L1 with bigcache.Get.
func BenchmarkL1Hit(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			const keys = 16
			b.Run("hybrid", func(b *testing.B) {
				h := openHybrid(b, hcfg{memMax: 512 << 20})
				defer h.Close()
				for i := range keys {
					mustSetValue(b, h, "k"+strconv.Itoa(i), tiertest.Value(nil, sz.size, uint64(i)))
				}
				b.SetBytes(int64(sz.size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if _, err := h.Get([]byte("k" + strconv.Itoa(i%keys))); err != nil {
						b.Fatal(err)
					}
				}
				if st := h.Stats(); st.L2Hits != 0 {
					b.Fatalf("%d L2 hits: not an L1 benchmark", st.L2Hits)
				}
			})
			b.Run("raw", func(b *testing.B) {
				cfg := bigcache.DefaultConfig(0)
				cfg.Shards, cfg.HardMaxCacheSize, cfg.CleanWindow, cfg.Verbose = 32, 512, 0, false
				cfg.MaxEntrySize = 16 << 10
				bc, err := bigcache.New(b.Context(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer bc.Close()
				for i := range keys {
					if err := bc.Set("k"+strconv.Itoa(i), tiertest.Value(nil, sz.size, uint64(i))); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(sz.size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if _, err := bc.Get("k" + strconv.Itoa(i%keys)); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// l2WorkingSet is how many keys of a size make the working set well over
// the 1 MiB L1 used for L2-hit benchmarks, yet small enough for the page
// cache.
func l2WorkingSet(size int) int { return max(8, (96<<20)/size) }

// BenchmarkL2Hit compares a Hybrid Get served by L2 (and promoted to L1)
// with a raw pebble.Get plus the copy out of Pebble's buffer.
func BenchmarkL2Hit(b *testing.B) {
	for _, sz := range benchSizes {
		n := l2WorkingSet(sz.size)
		b.Run(sz.name, func(b *testing.B) {
			b.Run("hybrid", func(b *testing.B) {
				h := openHybrid(b, hcfg{memMax: 1 << 20})
				defer h.Close()
				for i := range n {
					mustSetValue(b, h, "k"+strconv.Itoa(i), tiertest.Value(nil, sz.size, uint64(i)))
				}
				if err := h.Flush(); err != nil {
					b.Fatal(err)
				}
				for i := range n { // warm the page cache
					_, _ = h.Get([]byte("k" + strconv.Itoa(i)))
				}
				before := h.Stats()
				b.SetBytes(int64(sz.size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if _, err := h.Get([]byte("k" + strconv.Itoa(i%n))); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				st := h.Stats()
				b.ReportMetric(float64(st.L2Hits-before.L2Hits)/float64(b.N), "l2hits/op")
			})
			b.Run("raw", func(b *testing.B) {
				db, err := pebble.Open(b.TempDir(), &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				for i := range n {
					rec := tier.NewRecord(tier.Header{}, tiertest.Value(nil, sz.size, uint64(i)))
					if err := db.Set([]byte("k"+strconv.Itoa(i)), rec, pebble.NoSync); err != nil {
						b.Fatal(err)
					}
				}
				if err := db.Flush(); err != nil {
					b.Fatal(err)
				}
				get := func(k string) {
					v, c, err := db.Get([]byte(k))
					if err != nil {
						b.Fatal(err)
					}
					_ = append([]byte(nil), v...)
					c.Close()
				}
				for i := range n {
					get("k" + strconv.Itoa(i))
				}
				b.SetBytes(int64(sz.size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					get("k" + strconv.Itoa(i%n))
				}
			})
		})
	}
}

// BenchmarkSetThrough compares write-through SetValue, flushed to L2 and
// synced, with raw Pebble batches of the same bytes committed with Sync.
func BenchmarkSetThrough(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			b.Run("hybrid", func(b *testing.B) {
				h := openHybrid(b, hcfg{memMax: 64 << 20, diskMax: 64 << 30})
				defer h.Close()
				v := tiertest.Value(nil, sz.size, 1)
				b.SetBytes(int64(sz.size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if err := h.SetValue([]byte("k"+strconv.Itoa(i)), v, 0); err != nil {
						b.Fatal(err)
					}
				}
				if err := h.Flush(); err != nil {
					b.Fatal(err)
				}
			})
			b.Run("raw", func(b *testing.B) {
				db, err := pebble.Open(b.TempDir(), &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				rec := tier.NewRecord(tier.Header{}, tiertest.Value(nil, sz.size, 1))
				batch := db.NewBatch()
				b.SetBytes(int64(sz.size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					_ = batch.Set(fmt.Appendf(nil, "k%d", i), rec, nil)
					if batch.Len() >= 16<<20 {
						if err := batch.Commit(pebble.Sync); err != nil {
							b.Fatal(err)
						}
						batch = db.NewBatch()
					}
				}
				if err := batch.Commit(pebble.Sync); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
