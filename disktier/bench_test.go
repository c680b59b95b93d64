package disktier

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/tier"
)

var benchSizes = []struct {
	name  string
	size  int
	batch int // records per Write
	keys  int // entries read by the Get benchmarks
}{
	{"1KB", 1000, 64, 4096},
	{"118KB", 118 * 1000, 8, 256},
	{"4MB", 4 * 1000 * 1000, 1, 16},
}

const benchMaxBytes = 1 * GiB

// rawPebble opens Pebble with the options the store would use, for the
// baselines.
func rawPebble(b *testing.B) *pebble.DB {
	o := Options{Dir: b.TempDir(), MaxBytes: benchMaxBytes}
	o.EnsureDefaults()
	st := &Store{opts: o, cache: pebble.NewCache(o.CacheSize)}
	defer st.cache.Unref()
	h := &handle{}
	db, err := pebble.Open(o.Dir, st.pebbleOptions(h))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

func BenchmarkGet(b *testing.B) {
	for _, c := range benchSizes {
		b.Run(c.name, func(b *testing.B) {
			s := openTest(b, Options{MaxBytes: benchMaxBytes})
			r := rec(randBytes(c.size), 0)
			for i := 0; i < c.keys; i++ {
				mustSet(b, s, key(i), r)
			}
			b.SetBytes(int64(len(r)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Get(key(i % c.keys)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPebbleGet(b *testing.B) {
	for _, c := range benchSizes {
		b.Run(c.name, func(b *testing.B) {
			db := rawPebble(b)
			r := rec(randBytes(c.size), 0)
			for i := 0; i < c.keys; i++ {
				if err := db.Set(key(i), r, pebble.Sync); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(r)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v, closer, err := db.Get(key(i % c.keys))
				if err != nil {
					b.Fatal(err)
				}
				out := bytes.Clone(v)
				if err := closer.Close(); err != nil || len(out) != len(r) {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchOps(c struct {
	name  string
	size  int
	batch int
	keys  int
}, i int, r tier.Record) []tier.Op {
	ops := make([]tier.Op, c.batch)
	for j := range ops {
		ops[j] = tier.Op{Key: []byte(fmt.Sprintf("\x00bench-%010d", i*c.batch+j)), Record: r}
	}
	return ops
}

func BenchmarkWrite(b *testing.B) {
	for _, c := range benchSizes {
		b.Run(c.name, func(b *testing.B) {
			s := openTest(b, Options{MaxBytes: benchMaxBytes})
			r := rec(randBytes(c.size), 0)
			b.SetBytes(int64(c.batch * len(r)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := s.Write(benchOps(c, i, r)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPebbleBatch(b *testing.B) {
	for _, c := range benchSizes {
		b.Run(c.name, func(b *testing.B) {
			db := rawPebble(b)
			r := rec(randBytes(c.size), 0)
			b.SetBytes(int64(c.batch * len(r)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				batch := db.NewBatch()
				for _, op := range benchOps(c, i, r) {
					_ = batch.Set(op.Key, op.Record, nil)
				}
				if err := batch.Commit(pebble.Sync); err != nil {
					b.Fatal(err)
				}
				_ = batch.Close()
			}
		})
	}
}

// BenchmarkWALPrealloc compares Write with the WAL preallocation capped
// (walPreallocMax, what the store does) and with Pebble's own size
// (1.1 × MemTableSize per WAL), in one run: the ratio of the two is the
// cost of the cap.
func BenchmarkWALPrealloc(b *testing.B) {
	for _, c := range benchSizes[:2] {
		for _, p := range []struct {
			name string
			max  int64
		}{{"capped", walPreallocMax}, {"pebble", 1 << 40}} {
			b.Run(c.name+"/"+p.name, func(b *testing.B) {
				defer func(old int64) { walPreallocMax = old }(walPreallocMax)
				walPreallocMax = p.max
				s := openTest(b, Options{MaxBytes: benchMaxBytes})
				r := rec(randBytes(c.size), 0)
				b.SetBytes(int64(c.batch * len(r)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := s.Write(benchOps(c, i, r)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
