package disktier

import (
	"encoding/binary"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/tier"
)

// TestDiskBound writes three times MaxBytes of incompressible ~118 KB
// records and checks, throughout, that the directory stays within 1.1 ×
// MaxBytes; then that the newest entries are there, that an old entry read
// all along survived (second chance) while cold old ones were evicted.
func TestDiskBound(t *testing.T) {
	t.Run("118KB", func(t *testing.T) { testDiskBound(t, 118*1000, 8) })
	t.Run("4MB", func(t *testing.T) { testDiskBound(t, 4*1000*1000, 3) })
}

// testDiskBound writes records of recSize bytes; the hot key is read after
// every hotEvery writes.
func testDiskBound(t *testing.T, recSize, hotEvery int) {
	const maxBytes = 64 * MiB
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir, MaxBytes: maxBytes})
	hot := []byte("\x00hot")
	hotValue := randBytes(recSize)
	mustSet(t, s, hot, rec(hotValue, 0))

	n := 3 * maxBytes / recSize
	var peak int64
	start := time.Now()
	for i := 0; i < n; i++ {
		mustSet(t, s, key(i), rec(randBytes(recSize), 0))
		if i%hotEvery == 0 {
			if r := mustGet(t, s, hot); len(r.Value()) != recSize {
				t.Fatalf("hot value of %d bytes", len(r.Value()))
			}
		}
		if size := dirSize(t, dir); size > peak {
			peak = size
		}
	}
	elapsed := time.Since(start)
	st := s.Stats()
	t.Logf("wrote %d records (%d MiB) in %v (%.0f MB/s); peak directory %.1f MiB (bound %.1f MiB); stats %+v",
		n, n*recSize/MiB, elapsed, float64(n*recSize)/1e6/elapsed.Seconds(),
		float64(peak)/MiB, 1.1*maxBytes/MiB, st)
	logPebbleMetrics(t, s)
	if limit := int64(maxBytes * 11 / 10); peak > limit {
		t.Errorf("directory reached %d bytes, bound %d", peak, limit)
	}
	// The newest half MaxBytes of entries is there, the oldest (as much,
	// never read) are gone.
	recent := n / 6
	for i := n - recent; i < n; i++ {
		mustGet(t, s, key(i))
	}
	mustGet(t, s, hot)
	evicted := 0
	for i := 0; i < recent; i++ {
		if _, err := s.Get(key(i)); errors.Is(err, tier.ErrNotFound) {
			evicted++
		}
	}
	if evicted != recent {
		t.Errorf("%d of the %d oldest cold entries evicted, want all", evicted, recent)
	}
	if st.Evictions == 0 {
		t.Error("no evictions counted")
	}
	if st.Keys <= 0 || st.Keys > int64(n) {
		t.Errorf("Keys = %d", st.Keys)
	}
	// The key count stays exact through evictions.
	s.mu.Lock()
	keys := s.mu.keys
	s.mu.Unlock()
	if counted := countPointers(t, s); counted != keys {
		t.Errorf("Keys = %d, %d pointers stored", keys, counted)
	}
}

// countPointers counts the p keys of s by scanning them.
func countPointers(t testing.TB, s *Store) int64 {
	t.Helper()
	s.dbmu.RLock()
	defer s.dbmu.RUnlock()
	it, err := s.h.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var n int64
	for valid := it.SeekGE([]byte{nsPtr}); valid && it.Key()[0] == nsPtr; valid = it.Next() {
		n++
	}
	return n
}

// logPebbleMetrics logs the Pebble figures that explain the disk usage.
func logPebbleMetrics(t testing.TB, s *Store) {
	s.dbmu.RLock()
	m := s.h.db.Metrics()
	s.dbmu.RUnlock()
	t.Logf("pebble: disk %.1f MiB, tables %d (%.1f MiB), blob files %d (%.1f MiB), WAL %d files (%.1f MiB, obsolete %d), compactions %d (delete-only %d, flushes %d)",
		float64(m.DiskSpaceUsage())/MiB, m.Table.Local.LiveCount, float64(m.Table.Local.LiveSize)/MiB,
		m.BlobFiles.Local.LiveCount, float64(m.BlobFiles.Local.LiveSize)/MiB,
		m.WAL.Files, float64(m.WAL.PhysicalSize)/MiB, m.WAL.ObsoleteFiles,
		m.Compact.Count, m.Compact.DeleteOnlyCount, m.Flush.Count)
}

// TestLiveShare fills a store with a cache-aside load (a lookup, then a
// write of the missed key) of uniform 118 KiB values, four times MaxBytes,
// and checks that the live entries take at least 90% of MaxBytes at the
// end while the directory stayed within 1.1 × MaxBytes. With the sizing of
// before (a reserve of two memtables and MaxBytes/16, generations of 1/16
// of the budget) the share was about 0.79.
func TestLiveShare(t *testing.T) {
	const maxBytes, recSize = 64 * MiB, 120832 // the harness's budget values
	fs := vfs.NewMem()
	s := openTest(t, Options{FS: fs, Dir: "/mem", MaxBytes: maxBytes})
	r := mathrand.New(mathrand.NewPCG(22, 1))
	value := randBytes(recSize)
	var peak int64
	for written := 0; written < 4*maxBytes; {
		k := []byte(fmt.Sprintf("prompt-%016x", r.Uint64()))
		if _, err := s.Get(k); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("Get(%q) = %v, want a miss", k, err)
		}
		binary.LittleEndian.PutUint64(value, r.Uint64()) // distinct values
		mustSet(t, s, k, rec(value, 0))
		written += recSize
		peak = max(peak, memDirSize(t, fs, "/mem"))
	}
	// The writes outrun the maintainer on an in-memory FS: let it catch up.
	testutil.WaitFor(t, 10*time.Second, "eviction down to the budget", func() bool {
		return s.liveGauge.Load() <= s.budget
	})
	share := float64(s.Stats().Keys*recSize) / maxBytes
	t.Logf("live share %.3f (%d entries of %d bytes), peak directory %.3f × MaxBytes", share, s.Stats().Keys, recSize, float64(peak)/maxBytes)
	logPebbleMetrics(t, s)
	if share < 0.9 {
		t.Errorf("live entries are %.3f of MaxBytes, want at least 0.9", share)
	}
	if limit := int64(maxBytes * 11 / 10); peak > limit {
		t.Errorf("directory reached %d bytes, bound %d", peak, limit)
	}
}

// memDirSize sums the sizes of the files in dir on fs.
func memDirSize(t testing.TB, fs vfs.FS, dir string) int64 {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range names {
		if fi, err := fs.Stat(fs.PathJoin(dir, n)); err == nil {
			total += fi.Size()
		}
	}
	return total
}
