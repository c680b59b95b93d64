package disktier

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/tier"
)

// FuzzPointer feeds arbitrary bytes to the pointer decoder, and stores them
// as the pointer record of a key: reading the key must never panic, and
// must return either a record that verifies or ErrNotFound.
func FuzzPointer(f *testing.F) {
	good := rec([]byte("value"), 0)
	f.Add(appendPointer(nil, 1, good, true))
	f.Add(appendPointer(nil, 1, good, false))
	f.Add([]byte{})
	f.Add([]byte{ptrInline})
	f.Add(append(appendPointer(nil, 7, good, true), 0))
	f.Add(appendPointer(nil, 1<<63, rec(nil, 1), false))
	s := openTest(f, Options{Logger: func(string, ...any) {}}) // F.Logf may not be called from the fuzz function
	// A record kept apart in generation 1, for pointers that name it.
	mustSet(f, s, []byte("apart"), rec(make([]byte, 2*KiB), 0))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if p, err := decodePointer(raw); err == nil {
			_ = p.expired(0)
		} else if !errors.Is(err, tier.ErrCorrupt) {
			t.Fatalf("decodePointer error %v does not wrap ErrCorrupt", err)
		}
		s.dbmu.RLock()
		err := s.h.db.Set(appendPtrKey(nil, []byte("apart")), raw, pebble.NoSync)
		s.dbmu.RUnlock()
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Get([]byte("apart"))
		switch {
		case err == nil:
			if r.Verify() != nil {
				t.Fatal("Get returned a record that does not verify")
			}
		case !errors.Is(err, tier.ErrNotFound):
			t.Fatalf("Get: %v", err)
		}
	})
}
