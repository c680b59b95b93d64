package disktier

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// ptrGen returns the generation key's pointer names.
func ptrGen(t *testing.T, s *Store, key []byte) uint64 {
	t.Helper()
	s.dbmu.RLock()
	defer s.dbmu.RUnlock()
	v, err := getCopy(s.h.db, appendPtrKey(nil, key))
	if err != nil {
		t.Fatalf("pointer of %q: %v", key, err)
	}
	p, err := decodePointer(v)
	if err != nil {
		t.Fatalf("pointer of %q: %v", key, err)
	}
	return p.gen
}

// readAllRecent reads the whole store with ReadRecent, maxBytes at a time,
// and returns the keys in the order passed with their records.
func readAllRecent(t *testing.T, s *Store, maxBytes int64, maxRecord int, skip func([]byte) bool) ([][]byte, map[string]tier.Record) {
	t.Helper()
	var order [][]byte
	recs := map[string]tier.Record{}
	var cursor []byte
	for calls := 0; ; calls++ {
		if calls > 10000 {
			t.Fatal("ReadRecent does not end")
		}
		next, err := s.ReadRecent(cursor, maxBytes, maxRecord, skip, func(k []byte, r tier.Record) {
			if _, dup := recs[string(k)]; dup {
				t.Errorf("%q passed twice", k)
			}
			order = append(order, k)
			recs[string(k)] = r
		})
		if err != nil {
			t.Fatalf("ReadRecent: %v", err)
		}
		if next == nil {
			return order, recs
		}
		cursor = next
	}
}

// TestReadRecent writes entries over several generations (some inline,
// some kept apart, one overwritten, one deleted, one expired) and reads
// them back with ReadRecent: every live entry once, with its current
// record, newest generation first; nothing counted as a lookup; the same
// after a reopen.
func TestReadRecent(t *testing.T) {
	dir := t.TempDir()
	clock := tier.NewManualClock(time.Unix(1_700_000_000, 0))
	opts := Options{Dir: dir, MaxBytes: 64 * MiB, Generations: 64, Clock: clock, Logger: testLogger(t)}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadRecent(nil, 1<<20, 1<<30, nil, func([]byte, tier.Record) { t.Error("entry in an empty store") }); err != nil {
		t.Fatalf("ReadRecent of an empty store: %v", err)
	}
	const n = 300
	want := map[string][]byte{}
	for i := range n {
		size := 16 * KiB
		if i%4 == 0 {
			size = 40 // inline
		}
		v := randBytes(size)
		mustSet(t, s, key(i), rec(v, 0))
		want[string(key(i))] = v
	}
	soon := clock.Now().UnixMilli() + 1000
	mustSet(t, s, key(n), rec([]byte("expires"), soon))
	mustSet(t, s, key(n+1), rec(randBytes(8*KiB), soon))
	if err := s.Delete(key(7)); err != nil {
		t.Fatal(err)
	}
	delete(want, string(key(7)))
	v := randBytes(16 * KiB)
	mustSet(t, s, key(1), rec(v, 0)) // rewritten: now in the newest generation
	want[string(key(1))] = v
	clock.Advance(2 * time.Second)

	if g0, g1 := ptrGen(t, s, key(0)), ptrGen(t, s, key(n-1)); g0 == g1 {
		t.Fatalf("every entry in generation %d: the test needs several", g0)
	}
	newest := ptrGen(t, s, key(1))
	before := s.Stats()

	check := func(when string) {
		t.Helper()
		order, recs := readAllRecent(t, s, 64*KiB, 1<<30, nil)
		if len(recs) != len(want) {
			t.Errorf("%s: %d entries passed, want %d", when, len(recs), len(want))
		}
		for k, v := range want {
			if r, ok := recs[k]; !ok || !bytes.Equal(r.Value(), v) || r.Verify() != nil {
				t.Errorf("%s: %q: passed %v, want its current record", when, k, ok)
			}
		}
		last := newest
		for _, k := range order {
			g := ptrGen(t, s, k)
			if g > last {
				t.Errorf("%s: %q of generation %d passed after an entry of generation %d", when, k, g, last)
			}
			last = g
		}
		if g := ptrGen(t, s, order[0]); g != newest {
			t.Errorf("%s: first entry of generation %d, want the newest, %d", when, g, newest)
		}
	}
	check("open")
	if st := s.Stats(); st.Hits != before.Hits || st.Misses != before.Misses {
		t.Errorf("ReadRecent counted lookups: %+v, before %+v", st, before)
	}

	// skip: the keys it names are not passed.
	_, recs := readAllRecent(t, s, 1<<20, 1<<30, func(k []byte) bool { return bytes.Equal(k, key(1)) || bytes.Equal(k, key(2)) })
	if _, ok := recs[string(key(2))]; ok || len(recs) != len(want)-2 {
		t.Errorf("with 2 keys skipped: %d entries passed (key 2: %v), want %d", len(recs), ok, len(want)-2)
	}

	// maxRecord: records kept apart are longer than 1 KiB and skipped.
	_, recs = readAllRecent(t, s, 1<<20, 1024, nil)
	for k, r := range recs {
		if len(r) > 1024 {
			t.Errorf("%q: record of %d bytes passed with maxRecord 1024", k, len(r))
		}
	}
	if len(recs) != n/4 {
		t.Errorf("%d records of at most 1 KiB passed, want %d", len(recs), n/4)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadRecent(nil, 1, 1, nil, func([]byte, tier.Record) {}); !errors.Is(err, tier.ErrClosed) {
		t.Errorf("ReadRecent after Close: %v, want tier.ErrClosed", err)
	}
	if s, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check("reopened")
}
