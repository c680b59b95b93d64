package disktier

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/tier"
)

// expModel is what a test expects the store to hold: every live key, and
// whether its record has an expiry.
type expModel map[string]bool

func (m expModel) expiring() int64 {
	var n int64
	for _, e := range m {
		if e {
			n++
		}
	}
	return n
}

// counts are the key and expiring counts of a store, as found by a scan of
// the pointers, in memory and persisted in the meta.
type counts struct {
	keys, expiring         int64 // scan
	memKeys, memExpiring   int64 // s.mu
	metaKeys, metaExpiring []byte
	errKeys, errExpiring   error
	stats                  tier.Stats
}

// scanCounts counts the pointer records of s, and those with an expiry,
// by scanning the p namespace. It holds the writer mutex throughout, so the
// in-memory, published (Stats) and persisted counts it returns alongside
// are those of the same state (the maintainer evicts concurrently; the
// gauges are published under the mutex).
func scanCounts(t testing.TB, s *Store) (c counts) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c.memKeys, c.memExpiring = s.mu.keys, s.mu.expiring
	c.stats = s.Stats()
	c.metaKeys, c.errKeys = getCopy(s.h.db, metaKeys)
	c.metaExpiring, c.errExpiring = getCopy(s.h.db, metaExpiring)
	it, err := s.h.db.NewIter(&pebble.IterOptions{LowerBound: []byte{nsPtr}, UpperBound: ptrEnd(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		c.keys++
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatalf("read pointer %q: %v", it.Key(), err)
		}
		p, err := decodePointer(v)
		if err != nil {
			t.Fatalf("pointer %q: %v", it.Key(), err)
		}
		if p.expireAt != 0 {
			c.expiring++
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		t.Fatal(err)
	}
	return c
}

// settle waits until no background count is pending (after a DropRange, or
// an Open that found a recount marker).
func settle(t testing.TB, s *Store) {
	t.Helper()
	waitFor(t, 30*time.Second, "the background recount to settle", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.mu.tasks) == 0
	})
}

// checkScan checks that Keys and Expiring, in memory, in Stats and in the
// persisted meta, agree with a scan of the pointers. It returns the counts.
func checkScan(t testing.TB, s *Store, what string) (keys, expiring int64) {
	t.Helper()
	settle(t, s)
	c := scanCounts(t, s)
	keys, expiring = c.keys, c.expiring
	if c.memKeys != keys || c.memExpiring != expiring {
		t.Errorf("%s: in memory Keys=%d Expiring=%d, scan finds %d pointers, %d with an expiry",
			what, c.memKeys, c.memExpiring, keys, expiring)
	}
	switch {
	case errors.Is(c.errKeys, pebble.ErrNotFound) && keys == 0:
	case c.errKeys != nil || len(c.metaKeys) != 8 || int64(binary.LittleEndian.Uint64(c.metaKeys)) != keys:
		t.Errorf("%s: persisted key count %x (%v), want %d", what, c.metaKeys, c.errKeys, keys)
	}
	if c.errExpiring != nil || len(c.metaExpiring) != 8 || int64(binary.LittleEndian.Uint64(c.metaExpiring)) != expiring {
		t.Errorf("%s: persisted expiring count %x (%v), want %d", what, c.metaExpiring, c.errExpiring, expiring)
	}
	if c.stats.Keys != keys || c.stats.Expiring != expiring {
		t.Errorf("%s: Stats Keys=%d Expiring=%d, scan finds %d pointers, %d with an expiry",
			what, c.stats.Keys, c.stats.Expiring, keys, expiring)
	}
	return keys, expiring
}

// checkModel checks Stats and a scan against model.
func checkModel(t testing.TB, s *Store, m expModel, what string) {
	t.Helper()
	keys, expiring := checkScan(t, s, what)
	if keys != int64(len(m)) || expiring != m.expiring() {
		t.Errorf("%s: %d pointers, %d with an expiry; model has %d keys, %d with an expiry",
			what, keys, expiring, len(m), m.expiring())
	}
}

// TestExpiringSetOverwriteDelete covers the write path: sets with and
// without expiry, inline and apart, overwrites that add, keep or remove an
// expiry, deletes, and batches that touch a key several times.
func TestExpiringSetOverwriteDelete(t *testing.T) {
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	s := openTest(t, Options{Clock: clock})
	far := clock.Now().UnixMilli() + int64(time.Hour/time.Millisecond)
	small, big := []byte("small"), randBytes(8*KiB)
	m := expModel{}
	set := func(k string, v []byte, exp int64) {
		t.Helper()
		mustSet(t, s, []byte(k), rec(v, exp))
		m[k] = exp != 0
	}
	del := func(k string) {
		t.Helper()
		if err := s.Delete([]byte(k)); err != nil {
			t.Fatal(err)
		}
		delete(m, k)
	}
	checkModel(t, s, m, "empty")

	set("\x00a", small, far)
	set("\x00b", big, far)
	set("\x00c", small, 0)
	set("\x00d", big, 0)
	checkModel(t, s, m, "sets")
	if got := s.Stats().Expiring; got != 2 {
		t.Fatalf("Expiring = %d, want 2", got)
	}

	set("\x00a", big, 0)       // expiry removed, inline -> apart
	set("\x00c", big, far)     // expiry added, inline -> apart
	set("\x00b", small, far+1) // expiry kept, apart -> inline
	set("\x00d", small, 0)     // still none
	checkModel(t, s, m, "overwrites")

	del("\x00b") // with expiry
	del("\x00d") // without
	del("\x00absent")
	checkModel(t, s, m, "deletes")

	// One batch touching keys several times: the count follows the last op
	// of each key, whatever came before in the batch.
	ops := []tier.Op{
		{Key: []byte("\x00e"), Record: rec(small, far)},
		{Key: []byte("\x00e"), Record: rec(small, 0)},
		{Key: []byte("\x00e"), Record: rec(big, far)},
		{Key: []byte("\x00f"), Record: rec(small, far)},
		{Key: []byte("\x00f")},
		{Key: []byte("\x00c")},                          // had an expiry
		{Key: []byte("\x00c"), Record: rec(small, 0)},   // back, without
		{Key: []byte("\x00a"), Record: rec(big, far)},   // had none
		{Key: []byte("\x00a")},                          // gone
		{Key: []byte("\x00a"), Record: rec(small, 0)},   // back, without
		{Key: []byte("\x00g"), Record: rec(big, 0)},     // new, without
		{Key: []byte("\x00g"), Record: rec(big, far)},   // with
		{Key: []byte("\x00h")},                          // absent
		{Key: []byte("\x00h"), Record: rec(small, far)}, // new, with
	}
	if err := s.Write(ops); err != nil {
		t.Fatal(err)
	}
	m = expModel{"\x00e": true, "\x00c": false, "\x00a": false, "\x00g": true, "\x00h": true}
	checkModel(t, s, m, "batch")
}

// TestExpiringExpiry lets entries expire on a manual clock: the ones read
// are deleted through the readers' cleanup queue, the others by the sweep;
// Expiring drops with them, and not before (an expired entry still stored
// is still counted).
func TestExpiringExpiry(t *testing.T) {
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	s := openTest(t, Options{Clock: clock})
	now := clock.Now().UnixMilli()
	m := expModel{}
	for i := 0; i < 40; i++ {
		v := []byte("inline")
		if i%2 == 1 {
			v = randBytes(6 * KiB)
		}
		var exp int64
		switch i % 4 {
		case 0, 1:
			exp = now + 1000 // expires below
		case 2:
			exp = now + 3_600_000 // outlives the test
		}
		mustSet(t, s, key(i), rec(v, exp))
		m[string(key(i))] = exp != 0
	}
	checkModel(t, s, m, "before expiry")

	clock.Advance(2 * time.Second)
	// Read half the expired entries: they go through the cleanup queue; the
	// other half is left to the sweep.
	for i := 0; i < 40; i += 4 {
		if i%8 != 0 {
			continue
		}
		for _, k := range [][]byte{key(i), key(i + 1)} {
			if _, err := s.Get(k); !errors.Is(err, tier.ErrNotFound) {
				t.Fatalf("Get(%q) after expiry: %v", k, err)
			}
		}
	}
	for i := 0; i < 40; i++ {
		if i%4 < 2 {
			delete(m, string(key(i)))
		}
	}
	waitFor(t, 20*time.Second, "expired entries to be removed", func() bool {
		st := s.Stats()
		return st.Keys == int64(len(m)) && st.Expiring == m.expiring()
	})
	checkModel(t, s, m, "after expiry")
	if got := m.expiring(); got != 10 {
		t.Fatalf("model: %d entries with an expiry left, want 10", got)
	}
}

// TestExpiringEviction fills a small store several times over with a mix of
// entries with and without expiry (read some old ones back, so that second
// chances rewrite them), and checks the count against a scan throughout:
// generation eviction unlinks pointers of both kinds.
func TestExpiringEviction(t *testing.T) {
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	s := openTest(t, Options{MaxBytes: 32 * MiB, MemTableSize: 2 * MiB, Generations: 8, Clock: clock})
	far := clock.Now().UnixMilli() + int64(time.Hour/time.Millisecond)
	const n = 3000
	ops := make([]tier.Op, 0, 10)
	for i := 0; i < n; i++ {
		size := 100
		if i%3 != 0 {
			size = 24 * KiB
		}
		var exp int64
		if i%2 == 0 {
			exp = far + int64(i)
		}
		ops = append(ops, tier.Op{Key: key(i), Record: rec(randBytes(size), exp)})
		if len(ops) == cap(ops) {
			if err := s.Write(ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
			// Hot entries, read all along: second chances rewrite them.
			for _, h := range []int{0, 1, 3, 4} {
				_, _ = s.Get(key(h))
			}
		}
		if i%500 == 499 {
			checkScan(t, s, "while evicting")
		}
	}
	st := s.Stats()
	if st.Evictions == 0 {
		t.Fatal("no evictions: the test does not exercise eviction")
	}
	keys, expiring := checkScan(t, s, "after evicting")
	t.Logf("after %d writes: %d evictions, %d keys, %d with an expiry", n, st.Evictions, keys, expiring)
	if expiring == 0 || expiring == keys {
		t.Errorf("%d of %d keys with an expiry: want a mix", expiring, keys)
	}
}

// TestExpiringDropRange drops a range holding entries with and without
// expiry, writes on both sides of it while the background count is
// pending, and checks the count once it settles; then again across a close
// right after a DropRange (the reopened store counts every key).
func TestExpiringDropRange(t *testing.T) {
	dir := t.TempDir()
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	opts := Options{Dir: dir, Clock: clock, Logger: testLogger(t)}
	far := clock.Now().UnixMilli() + int64(time.Hour/time.Millisecond)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	m := expModel{}
	write := func(s *Store, from, to int, exp func(i int) int64) {
		t.Helper()
		var ops []tier.Op
		for i := from; i < to; i++ {
			v := []byte("v")
			if i%5 == 0 {
				v = randBytes(8 * KiB)
			}
			ops = append(ops, tier.Op{Key: key(i), Record: rec(v, exp(i))})
			m[string(key(i))] = exp(i) != 0
		}
		if err := s.Write(ops); err != nil {
			t.Fatal(err)
		}
	}
	everyThird := func(i int) int64 {
		if i%3 == 0 {
			return far
		}
		return 0
	}
	write(s, 0, 3000, everyThird)
	checkModel(t, s, m, "before DropRange")

	dropModel := func(from, to int) {
		for i := from; i < to; i++ {
			delete(m, string(key(i)))
		}
	}
	if err := s.DropRange(key(1000), key(2000)); err != nil {
		t.Fatal(err)
	}
	dropModel(1000, 2000)
	// While the count is pending: overwrite entries outside the range
	// (toggling their expiry), write into the dropped range again, delete.
	write(s, 0, 100, func(i int) int64 { return far - everyThird(i) })
	write(s, 1500, 1550, func(int) int64 { return far })
	for i := 2000; i < 2030; i++ {
		if err := s.Delete(key(i)); err != nil {
			t.Fatal(err)
		}
		delete(m, string(key(i)))
	}
	checkModel(t, s, m, "after DropRange")

	// Drop everything from 2500 on, and close at once: the count usually
	// has not run; the next Open counts every key.
	if err := s.DropRange(key(2500), nil); err != nil {
		t.Fatal(err)
	}
	dropModel(2500, 3000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	write(s, 2400, 2450, func(i int) int64 { return far * int64(i%2) })
	checkModel(t, s, m, "after reopen")
}

// TestExpiringReopen checks that the count persists across Close and Open
// without a recount.
func TestExpiringReopen(t *testing.T) {
	dir := t.TempDir()
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	opts := Options{Dir: dir, Clock: clock, Logger: testLogger(t)}
	far := clock.Now().UnixMilli() + int64(time.Hour/time.Millisecond)
	m := expModel{}
	for round := 0; round < 3; round++ {
		s, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		tasks := len(s.mu.tasks)
		s.mu.Unlock()
		if tasks != 0 {
			t.Errorf("round %d: Open queued %d recounts, want none", round, tasks)
		}
		if st := s.Stats(); st.Keys != int64(len(m)) || st.Expiring != m.expiring() {
			t.Errorf("round %d: after Open Keys=%d Expiring=%d, want %d, %d", round, st.Keys, st.Expiring, len(m), m.expiring())
		}
		for i := 0; i < 200; i++ {
			k := key((i*7 + round*13) % 150)
			if i%4 == 3 {
				if err := s.Delete(k); err != nil {
					t.Fatal(err)
				}
				delete(m, string(k))
				continue
			}
			exp := int64(0)
			if (i+round)%3 == 0 {
				exp = far
			}
			mustSet(t, s, k, rec([]byte("value"), exp))
			m[string(k)] = exp != 0
		}
		checkModel(t, s, m, "before Close")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExpiringUpgrade opens a store written before the expiring count was
// persisted (simulated by deleting its meta key): Open stores a recount
// marker and counts every key in the background; a close before the count
// is applied leaves the marker, so the next Open counts again.
func TestExpiringUpgrade(t *testing.T) {
	dir := t.TempDir()
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	opts := Options{Dir: dir, Clock: clock, Logger: testLogger(t)}
	far := clock.Now().UnixMilli() + int64(time.Hour/time.Millisecond)
	m := expModel{}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		exp := int64(0)
		if i%4 != 0 {
			exp = far
		}
		mustSet(t, s, key(i), rec([]byte("value"), exp))
		m[string(key(i))] = exp != 0
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	forget := func() {
		t.Helper()
		db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Delete(metaExpiring, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// Closed at once: the count may or may not have run.
	forget()
	s, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Expiring; got < 0 {
		t.Errorf("Expiring = %d before the recount", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Writes while the count is pending are counted on top of it.
	forget()
	s = openTest(t, opts)
	for i := 0; i < 40; i++ {
		if err := s.Delete(key(i)); err != nil {
			t.Fatal(err)
		}
		delete(m, string(key(i)))
	}
	mustSet(t, s, key(1000), rec([]byte("new"), far))
	m[string(key(1000))] = true
	checkModel(t, s, m, "after the upgrade count")
	s.mu.Lock()
	_, err = getCopy(s.h.db, metaRecountKey(0))
	s.mu.Unlock()
	if !errors.Is(err, pebble.ErrNotFound) {
		t.Errorf("recount marker after the count: %v, want it deleted", err)
	}
}

// TestExpiringCorrupt reads entries with an expiry whose records are
// corrupt (one inline, one apart): they are deleted, and no longer counted.
func TestExpiringCorrupt(t *testing.T) {
	dir := t.TempDir()
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	opts := Options{Dir: dir, Clock: clock, Logger: testLogger(t)}
	far := clock.Now().UnixMilli() + int64(time.Hour/time.Millisecond)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	inline, apart, fine := []byte("\x00inline"), []byte("\x00apart"), []byte("\x00fine")
	mustSet(t, s, inline, rec([]byte("small"), far))
	mustSet(t, s, apart, rec(randBytes(8*KiB), far))
	mustSet(t, s, fine, rec([]byte("fine"), far))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	flipLast(t, db, appendPtrKey(nil, inline))
	flipLast(t, db, apartKey(t, db, apart))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, opts)
	if got := s.Stats().Expiring; got != 3 {
		t.Errorf("Expiring = %d before reading, want 3", got)
	}
	for _, k := range [][]byte{inline, apart} {
		if _, err := s.Get(k); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("Get(%q): %v, want ErrNotFound", k, err)
		}
	}
	checkModel(t, s, expModel{string(fine): true}, "after corrupt reads")
}

// TestExpiringRandom runs random batches of sets (with and without expiry,
// inline and apart), deletes and DropRanges over a small key space, with
// restarts, and compares the counts against a model and a scan.
func TestExpiringRandom(t *testing.T) {
	dir := t.TempDir()
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	opts := Options{Dir: dir, Clock: clock, Logger: testLogger(t)}
	far := clock.Now().UnixMilli() + int64(time.Hour/time.Millisecond)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const nKeys = 300
	m := expModel{}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			_ = s.Close()
		}
	}()
	big := randBytes(6 * KiB)
	for step := 0; step < 600; step++ {
		switch r := rng.IntN(100); {
		case r < 2:
			a := rng.IntN(nKeys)
			b := a + rng.IntN(nKeys/4)
			if err := s.DropRange(key(a), key(b)); err != nil {
				t.Fatal(err)
			}
			for i := a; i < b; i++ {
				delete(m, string(key(i)))
			}
		case r < 4:
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(opts); err != nil {
				s = nil
				t.Fatal(err)
			}
		default:
			ops := make([]tier.Op, 1+rng.IntN(8))
			for i := range ops {
				k := key(rng.IntN(nKeys))
				if rng.IntN(4) == 0 {
					ops[i] = tier.Op{Key: k}
					continue
				}
				v := []byte("small")
				if rng.IntN(3) == 0 {
					v = big
				}
				var exp int64
				if rng.IntN(2) == 0 {
					exp = far + rng.Int64N(1000)
				}
				ops[i] = tier.Op{Key: k, Record: rec(v, exp)}
			}
			if err := s.Write(ops); err != nil {
				t.Fatal(err)
			}
			for _, op := range ops {
				if op.Record == nil {
					delete(m, string(op.Key))
				} else {
					m[string(op.Key)] = op.Record.ExpireAt() != 0
				}
			}
		}
		if step%50 == 49 {
			checkModel(t, s, m, "random ops")
			if t.Failed() {
				t.Fatalf("seed %d, step %d", seed, step)
			}
		}
	}
	checkModel(t, s, m, "random ops, end")
	// Every live key is served with the expiry the model says.
	for k, e := range m {
		r := mustGet(t, s, []byte(k))
		if (r.ExpireAt() != 0) != e {
			t.Errorf("%q: ExpireAt %d, model says expiring=%v", k, r.ExpireAt(), e)
		}
	}
}
