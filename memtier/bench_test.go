package memtier

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/allegro/bigcache/v3"

	"github.com/tiercache/tiercache/tier"
)

// Benchmarks compare Cache with raw bigcache configured the same way
// (bigcacheConfig), on the record sizes tiercache serves: small values,
// 118 KB images and 4 MiB T5-XXL embeddings. Run with
//
//	go test -run '^$' -bench . -benchmem ./memtier/

var benchSizes = []struct {
	name string
	size int // key excluded
}{
	{"1KB", 1 << 10},
	{"118KB", 118_000},
	{"4MB", 4<<20 + 64},
}

// benchOpts has the shards of the default 1 GiB configuration (64 MiB,
// records up to 6.4 MiB), but only 4 of them to keep the heap small.
func benchOpts() Options {
	o := Options{MaxBytes: 256 << 20, Shards: 4}
	o.EnsureDefaults()
	return o
}

// startBench starts the timed part of a benchmark of records of size bytes
// on a collected heap, so that the garbage of the previous one does not
// weigh on it.
func startBench(b *testing.B, size int) {
	runtime.GC()
	b.SetBytes(int64(size))
	b.ReportAllocs()
}

// benchKeys returns n keys and the record stored under each. Records carry
// a version tag and an expiry, as model-scoped records with a TTL do, so Get
// pays for both.
func benchKeys(n, size int) ([]string, tier.Record) {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("{t5-xxl@v3}doc:%08d", i)
	}
	return keys, record(size, 1<<62, 1)
}

// keysFor returns how many records of size bytes fill a fraction 1/div of
// the cache.
func keysFor(size, div int) int {
	return max(1, int(benchOpts().MaxBytes)/div/size)
}

func newRawBigcache(b *testing.B, cfg bigcache.Config) *bigcache.BigCache {
	b.Helper()
	bc, err := bigcache.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bc.Close() })
	return bc
}

// rawConfig is the configuration Cache gives bigcache, with a hook that
// does nothing.
func rawConfig() bigcache.Config {
	return bigcacheConfig(benchOpts(), newHasher(), func(string, []byte, bigcache.RemoveReason) {})
}

func BenchmarkGet(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			c := newCache(b, benchOpts())
			keys, r := benchKeys(keysFor(bs.size, 4), bs.size)
			bkeys := make([][]byte, len(keys))
			for i, k := range keys {
				bkeys[i] = []byte(k)
				if err := c.Set(bkeys[i], r); err != nil {
					b.Fatal(err)
				}
			}
			startBench(b, bs.size)
			i := 0
			for b.Loop() {
				if _, err := c.Get(bkeys[i%len(bkeys)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkBigcacheGet(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			bc := newRawBigcache(b, rawConfig())
			keys, r := benchKeys(keysFor(bs.size, 4), bs.size)
			for _, k := range keys {
				if err := bc.Set(k, r); err != nil {
					b.Fatal(err)
				}
			}
			startBench(b, bs.size)
			i := 0
			for b.Loop() {
				if _, err := bc.Get(keys[i%len(keys)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkSet overwrites keys that fill half the cache: the ring only
// drops dead entries, and every Set pays for the size accounting.
func BenchmarkSet(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			c := newCache(b, benchOpts())
			keys, r := benchKeys(keysFor(bs.size, 2), bs.size)
			bkeys := make([][]byte, len(keys))
			for i, k := range keys {
				bkeys[i] = []byte(k)
			}
			startBench(b, bs.size)
			i := 0
			for b.Loop() {
				if err := c.Set(bkeys[i%len(bkeys)], r); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkBigcacheSet(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			bc := newRawBigcache(b, rawConfig())
			keys, r := benchKeys(keysFor(bs.size, 2), bs.size)
			startBench(b, bs.size)
			i := 0
			for b.Loop() {
				if err := bc.Set(keys[i%len(keys)], r); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkBigcacheDeleteSet is the accounting not chosen: Delete before
// each Set so that bigcache's callback reports the old entry's size. It
// needs no side map but bigcache copies the deleted record for the callback
// (and it would still need a lock to keep Delete and Set together).
func BenchmarkBigcacheDeleteSet(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			var bytes int64
			cfg := rawConfig()
			cfg.OnRemoveWithReason = func(key string, entry []byte, _ bigcache.RemoveReason) {
				bytes -= int64(len(key) + len(entry))
			}
			cfg = cfg.OnRemoveFilterSet() // every reason, Deleted included
			bc := newRawBigcache(b, cfg)
			keys, r := benchKeys(keysFor(bs.size, 2), bs.size)
			startBench(b, bs.size)
			i := 0
			for b.Loop() {
				k := keys[i%len(keys)]
				_ = bc.Delete(k)
				if err := bc.Set(k, r); err != nil {
					b.Fatal(err)
				}
				bytes += int64(len(k) + len(r))
				i++
			}
		})
	}
}

// BenchmarkSetEvict writes new keys into a full cache: every Set evicts
// live entries through the hook.
func BenchmarkSetEvict(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			c := newCache(b, benchOpts())
			c.SetOnEvict(func(string, tier.Record, bool) {})
			keys, r := benchKeys(keysFor(bs.size, 1)*2, bs.size)
			bkeys := make([][]byte, len(keys))
			for i, k := range keys {
				bkeys[i] = []byte(k)
			}
			startBench(b, bs.size)
			i := 0
			for b.Loop() {
				if err := c.Set(bkeys[i%len(bkeys)], r); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkBigcacheSetEvict(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			bc := newRawBigcache(b, rawConfig())
			keys, r := benchKeys(keysFor(bs.size, 1)*2, bs.size)
			startBench(b, bs.size)
			i := 0
			for b.Loop() {
				if err := bc.Set(keys[i%len(keys)], r); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
