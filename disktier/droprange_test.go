package disktier

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

func TestDropRange(t *testing.T) { testDropRange(t, 100_000) }

// TestDropRangeMillion is the 1M-key variant; it takes a while under -race,
// so it runs only when DISKTIER_LONG is set and -short is not.
func TestDropRangeMillion(t *testing.T) {
	if testing.Short() || os.Getenv("DISKTIER_LONG") == "" {
		t.Skip("set DISKTIER_LONG=1 to run the 1M-key DropRange")
	}
	testDropRange(t, 1_000_000)
}

// testDropRange stores nSmall small entries and some large ones of model
// "old", and some of model "kept", drops model "old" and checks that the
// call is quick, that none of its keys is served afterwards while the
// others are, that the key count is fixed in the background and that the
// space comes back.
func testDropRange(t *testing.T, nSmall int) {
	s := openTest(t, Options{MaxBytes: 1 * GiB})
	const (
		nBig    = 60
		nKept   = 2000
		bigSize = 64 * KiB
	)
	oldKey := func(i int) []byte { return tier.ModelKey("old", 7, []byte(fmt.Sprintf("k%08d", i))) }
	keptKey := func(i int) []byte { return tier.ModelKey("kept", 1, []byte(fmt.Sprintf("k%08d", i))) }
	small := rec(make([]byte, 100), 0)
	big := rec(randBytes(bigSize), 0)

	start := time.Now()
	ops := make([]tier.Op, 0, 1000)
	flush := func() {
		if err := s.Write(ops); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := 0; i < nSmall; i++ {
		r := small
		if i%(nSmall/nBig) == 0 {
			r = big
		}
		ops = append(ops, tier.Op{Key: oldKey(i), Record: r})
		if len(ops) == cap(ops) {
			flush()
		}
	}
	for i := 0; i < nKept; i++ {
		r := small
		if i%100 == 0 {
			r = big
		}
		ops = append(ops, tier.Op{Key: keptKey(i), Record: r})
		if len(ops) == cap(ops) {
			flush()
		}
	}
	flush()
	total := int64(nSmall + nKept)
	if got := s.Stats().Keys; got != total {
		t.Fatalf("Keys = %d, want %d", got, total)
	}
	s.dbmu.RLock()
	if err := s.h.db.Flush(); err != nil {
		t.Fatal(err)
	}
	s.dbmu.RUnlock()
	s.measure()
	before := s.Stats().Bytes
	t.Logf("wrote %d entries in %v; %.1f MiB on disk", total, time.Since(start), float64(before)/MiB)

	from, to := tier.ModelRange("old", 0, 0)
	start = time.Now()
	if err := s.DropRange(from, to); err != nil {
		t.Fatal(err)
	}
	t.Logf("DropRange of %d keys took %v", nSmall, time.Since(start))

	for i := 0; i < nSmall; i += max(1, nSmall/5000) {
		if _, err := s.Get(oldKey(i)); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("dropped key %d: %v", i, err)
		}
	}
	for i := 0; i < nKept; i++ {
		mustGet(t, s, keptKey(i))
	}
	waitFor(t, time.Minute, "the key count to be fixed", func() bool { return s.Stats().Keys == nKept })
	start = time.Now()
	waitFor(t, time.Minute, "the dropped space to be reclaimed", func() bool {
		s.measure()
		return s.Stats().Bytes < before/3
	})
	t.Logf("space reclaimed in %v: %.1f MiB on disk", time.Since(start), float64(s.Stats().Bytes)/MiB)

	// Writes into the dropped range work again, and are counted.
	mustSet(t, s, oldKey(1), small)
	mustGet(t, s, oldKey(1))
	if got := s.Stats().Keys; got != nKept+1 {
		t.Errorf("Keys = %d, want %d", got, nKept+1)
	}
}

// TestDropRangeCountSurvivesRestart closes the store right after a
// DropRange, usually before the background count has run (Close cancels
// it): the next Open then counts every key again. Either way the count ends
// exact.
func TestDropRangeCountSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Logger: testLogger(t)}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		mustSet(t, s, key(i), rec([]byte("v"), 0))
	}
	if err := s.DropRange(key(0), key(60)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	waitFor(t, 10*time.Second, "the key count to be fixed", func() bool { return s.Stats().Keys == 40 })
	waitFor(t, 10*time.Second, "the recount marker to be cleared", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.mu.tasks) == 0
	})
	mustGet(t, s, key(60))
}
