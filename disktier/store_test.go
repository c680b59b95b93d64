package disktier

import (
	"bytes"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tiercache/tiercache/tier"
)

func TestOptionsValidateReportsEveryProblem(t *testing.T) {
	o := Options{MaxBytes: 1, InlineMax: MaxInlineMax + 1, Generations: 1, MemTableSize: 1}
	o.EnsureDefaults()
	err := o.Validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Validate: %v, want ErrInvalidOptions", err)
	}
	for _, want := range []string{"Dir", "MaxBytes", "MemTableSize", "InlineMax", "Generations"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := Open(Options{}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Open(Options{}): %v, want ErrInvalidOptions", err)
	}
}

func TestGetSetDeleteOverwrite(t *testing.T) {
	s := openTest(t, Options{})
	cases := []struct {
		name  string
		key   []byte
		value []byte
	}{
		{"empty value", []byte("\x00empty"), nil},
		{"small inline", []byte("\x00small"), []byte("hello")},
		{"binary key", []byte{0x01, 0x00, 0xff, 0x00, 'k'}, []byte("binary")},
		{"empty key", []byte{}, []byte("empty key")},
		{"not inline", []byte("\x00big"), randBytes(4 * KiB)},
		{"8 MiB", []byte("\x00huge"), randBytes(8 * MiB)},
	}
	for _, c := range cases {
		mustSet(t, s, c.key, rec(c.value, 0))
	}
	for _, c := range cases {
		r := mustGet(t, s, c.key)
		if !bytes.Equal(r.Value(), c.value) {
			t.Errorf("%s: value of %d bytes, want %d", c.name, len(r.Value()), len(c.value))
		}
	}
	if got, want := s.Stats().Keys, int64(len(cases)); got != want {
		t.Errorf("Keys = %d, want %d", got, want)
	}

	// Overwrite: the new record wins, the count does not change.
	mustSet(t, s, cases[1].key, rec([]byte("again"), 0))
	if r := mustGet(t, s, cases[1].key); string(r.Value()) != "again" {
		t.Errorf("after overwrite: %q", r.Value())
	}
	// Overwrite inline with apart and back.
	mustSet(t, s, cases[1].key, rec(randBytes(3*KiB), 0))
	mustSet(t, s, cases[4].key, rec([]byte("now inline"), 0))
	if r := mustGet(t, s, cases[4].key); string(r.Value()) != "now inline" {
		t.Errorf("after overwrite: %q", r.Value())
	}
	if got, want := s.Stats().Keys, int64(len(cases)); got != want {
		t.Errorf("Keys after overwrites = %d, want %d", got, want)
	}

	for _, c := range cases {
		if err := s.Delete(c.key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Get(c.key); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("%s: Get after Delete: %v", c.name, err)
		}
	}
	if err := s.Delete([]byte("\x00never")); err != nil {
		t.Errorf("Delete of an absent key: %v", err)
	}
	st := s.Stats()
	if st.Keys != 0 {
		t.Errorf("Keys after deleting all = %d", st.Keys)
	}
	if st.Hits == 0 || st.Misses < uint64(len(cases)) {
		t.Errorf("Hits %d Misses %d", st.Hits, st.Misses)
	}
}

func TestInlineThreshold(t *testing.T) {
	s := openTest(t, Options{InlineMax: 100})
	small := rec(make([]byte, 100-tier.HeaderSize-2), 0) // exactly 100 bytes
	large := rec(make([]byte, 101-tier.HeaderSize-2), 0)
	mustSet(t, s, []byte("s"), small)
	mustSet(t, s, []byte("l"), large)
	for k, wantKind := range map[string]byte{"s": ptrInline, "l": ptrInGen} {
		v, err := getCopy(s.h.db, appendPtrKey(nil, []byte(k)))
		if err != nil {
			t.Fatal(err)
		}
		if v[0] != wantKind {
			t.Errorf("%s: pointer kind %#x, want %#x", k, v[0], wantKind)
		}
		mustGet(t, s, []byte(k))
	}
}

func TestWriteBatchLastOpWins(t *testing.T) {
	s := openTest(t, Options{})
	k := []byte("\x00k")
	ops := []tier.Op{
		{Key: k, Record: rec([]byte("one"), 0)},
		{Key: k},
		{Key: k, Record: rec([]byte("three"), 0)},
		{Key: []byte("\x00other"), Record: rec([]byte("x"), 0)},
		{Key: []byte("\x00other")},
	}
	if err := s.Write(ops); err != nil {
		t.Fatal(err)
	}
	if r := mustGet(t, s, k); string(r.Value()) != "three" {
		t.Errorf("got %q", r.Value())
	}
	if _, err := s.Get([]byte("\x00other")); !errors.Is(err, tier.ErrNotFound) {
		t.Errorf("other: %v", err)
	}
	if got := s.Stats().Keys; got != 1 {
		t.Errorf("Keys = %d, want 1", got)
	}
	if err := s.Write([]tier.Op{{Key: k, Record: tier.Record("short")}}); !errors.Is(err, tier.ErrCorrupt) {
		t.Errorf("malformed record: %v, want ErrCorrupt", err)
	}
}

// TestBatchCountsMatchOneByOne checks the key and expiring counts of Writes
// large enough to read the old pointers through one iterator
// (batchLookupMin) against the same ops applied one at a time: duplicates
// within a batch, overwrites of stored keys with and without expiry,
// deletes of present and absent keys, inline and apart records.
func TestBatchCountsMatchOneByOne(t *testing.T) {
	batched, single := openTest(t, Options{}), openTest(t, Options{})
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	for round := range 40 {
		ops := make([]tier.Op, batchLookupMin+rng.IntN(64))
		for i := range ops {
			k := key(rng.IntN(100))
			switch rng.IntN(4) {
			case 0:
				ops[i] = tier.Op{Key: k}
			case 1:
				ops[i] = tier.Op{Key: k, Record: rec([]byte("ttl"), time.Now().Add(time.Hour).UnixMilli())}
			case 2:
				ops[i] = tier.Op{Key: k, Record: rec(randBytes(300), 0)}
			default:
				ops[i] = tier.Op{Key: k, Record: rec([]byte("small"), 0)}
			}
		}
		if err := batched.Write(ops); err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if err := single.Write([]tier.Op{op}); err != nil {
				t.Fatal(err)
			}
		}
		b, o := batched.Stats(), single.Stats()
		if b.Keys != o.Keys || b.Expiring != o.Expiring {
			t.Fatalf("round %d: batched Keys %d Expiring %d, one by one %d, %d", round, b.Keys, b.Expiring, o.Keys, o.Expiring)
		}
	}
	if n := single.Stats().Keys; n < 20 || n > 100 {
		t.Fatalf("Keys = %d: the ops should leave some keys, not all", n)
	}
}

func TestTTL(t *testing.T) {
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	s := openTest(t, Options{Clock: clock})
	now := clock.Now().UnixMilli()
	mustSet(t, s, []byte("\x00inline"), rec([]byte("short-lived"), now+1000))
	mustSet(t, s, []byte("\x00apart"), rec(randBytes(10*KiB), now+1000))
	mustSet(t, s, []byte("\x00forever"), rec([]byte("stays"), 0))
	mustSet(t, s, []byte("\x00later"), rec([]byte("later"), now+5000))
	for _, k := range []string{"\x00inline", "\x00apart", "\x00later"} {
		mustGet(t, s, []byte(k))
	}
	clock.Advance(2 * time.Second)
	for _, k := range []string{"\x00inline", "\x00apart"} {
		if _, err := s.Get([]byte(k)); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("%q after expiry: %v", k, err)
		}
	}
	mustGet(t, s, []byte("\x00forever"))
	mustGet(t, s, []byte("\x00later"))
	// Expired entries read are deleted in the background; "later" expires
	// without being read and is found by the sweep.
	clock.Advance(10 * time.Second)
	waitFor(t, 10*time.Second, "expired entries to be reclaimed", func() bool { return s.Stats().Keys == 1 })
}

func TestReopenServesEveryEntry(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Logger: testLogger(t)}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string][]byte{}
	for i := 0; i < 2000; i++ {
		size := 100
		switch i % 10 {
		case 0:
			size = 64 * KiB
		case 1:
			size = 2 * KiB
		}
		values[string(key(i))] = randBytes(size)
	}
	var ops []tier.Op
	for k, v := range values {
		ops = append(ops, tier.Op{Key: []byte(k), Record: rec(v, 0)})
		if len(ops) == 100 {
			if err := s.Write(ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	if err := s.PutMeta("registry", []byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Get(key(1)); !errors.Is(err, tier.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if err := s.Set(key(1), rec(nil, 0)); !errors.Is(err, tier.ErrClosed) {
		t.Errorf("Set after Close: %v", err)
	}
	if err := s.DropRange(nil, nil); !errors.Is(err, tier.ErrClosed) {
		t.Errorf("DropRange after Close: %v", err)
	}

	start := time.Now()
	s = openTest(t, opts)
	t.Logf("warm open of %d entries took %v", len(values), time.Since(start))
	for k, v := range values {
		r := mustGet(t, s, []byte(k))
		if !bytes.Equal(r.Value(), v) {
			t.Fatalf("%q: wrong value after reopen", k)
		}
	}
	if got := s.Stats().Keys; got != int64(len(values)) {
		t.Errorf("Keys after reopen = %d, want %d", got, len(values))
	}
	if v, err := s.Meta("registry"); err != nil || string(v) != "state" {
		t.Errorf("Meta = %q, %v", v, err)
	}
	if _, err := s.Meta("absent"); !errors.Is(err, tier.ErrNotFound) {
		t.Errorf("Meta(absent): %v", err)
	}
}

func TestMemFS(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{Dir: "/store", FS: fs, MaxBytes: 64 * MiB}
	s := openTest(t, opts)
	mustSet(t, s, []byte("k"), rec(randBytes(50*KiB), 0))
	mustGet(t, s, []byte("k"))
}

func TestRecordLimits(t *testing.T) {
	s := openTest(t, Options{MaxBytes: 64 * MiB})
	if err := s.Set([]byte("k"), rec(make([]byte, 32*MiB), 0)); !errors.Is(err, tier.ErrTooLarge) {
		t.Errorf("32 MiB record in a 64 MiB store: %v, want ErrTooLarge", err)
	}
	if err := s.Set(make([]byte, MaxKeyLen+1), rec(nil, 0)); !errors.Is(err, tier.ErrTooLarge) {
		t.Errorf("long key: %v, want ErrTooLarge", err)
	}
}

// TestWriteSeals checks that Write stores a sealed copy of records handed in
// unsealed (as the write path builds them, see tier.Record.Seal), inline or
// not, and leaves the caller's records as they were.
func TestWriteSeals(t *testing.T) {
	s := openTest(t, Options{})
	for _, size := range []int{10, 64 * KiB} {
		r := rec(randBytes(size), 0)
		clear(r[4:8]) // the checksum, as an unsealed record has it
		if r.Verify() == nil {
			t.Fatal("an unsealed record verifies")
		}
		before := append(tier.Record(nil), r...)
		key := []byte(fmt.Sprintf("\x00unsealed-%d", size))
		if err := s.Write([]tier.Op{{Key: key, Record: r}}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r, before) {
			t.Errorf("%d bytes: Write modified the caller's record", size)
		}
		got := mustGet(t, s, key) // Get verifies: an unsealed copy would be a miss
		if !bytes.Equal(got.Value(), r.Value()) {
			t.Errorf("%d bytes: value differs", size)
		}
	}
	if c := s.Stats().Corrupt; c != 0 {
		t.Errorf("%d corrupt entries", c)
	}
}

// TestWrittenCountsWhatReachesTheDirectory checks Stats().Written: a record
// is written once to the WAL when committed, and once more to a blob file
// when its memtable is flushed.
func TestWrittenCountsWhatReachesTheDirectory(t *testing.T) {
	s := openTest(t, Options{FS: vfs.NewMem(), Dir: "/mem", MaxBytes: 64 * MiB})
	before := s.Stats().Written
	const n, size = 8, 100 * KiB
	for i := 0; i < n; i++ {
		mustSet(t, s, key(i), rec(randBytes(size), 0))
	}
	committed := s.Stats().Written - before
	if committed < n*size {
		t.Fatalf("Written grew by %d bytes after committing %d bytes of records", committed, n*size)
	}
	s.dbmu.RLock()
	err := s.h.db.Flush()
	s.dbmu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	if flushed := s.Stats().Written - before; flushed < 2*n*size {
		t.Errorf("Written grew by %d bytes after committing and flushing %d bytes of records, want twice that", flushed, n*size)
	}
}
