package disktier

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/tier"
)

// TestCorruptRecord overwrites stored records with bytes that fail their
// checksum, through a raw Pebble handle on the closed store's directory.
func TestCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Logger: testLogger(t)}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	apart, inline, fine := []byte("\x00apart"), []byte("\x00inline"), []byte("\x00fine")
	mustSet(t, s, apart, rec(randBytes(4*KiB), 0))
	mustSet(t, s, inline, rec([]byte("small"), 0))
	mustSet(t, s, fine, rec([]byte("untouched"), 0))
	gen := s.Stats().Keys // sanity: 3 keys
	if gen != 3 {
		t.Fatalf("Keys = %d", gen)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	flipLast(t, db, apartKey(t, db, apart))
	flipLast(t, db, appendPtrKey(nil, inline))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, opts)
	for i, k := range [][]byte{apart, inline} {
		for range 2 {
			if _, err := s.Get(k); !errors.Is(err, tier.ErrNotFound) {
				t.Errorf("Get(%q) of a corrupt record: %v, want ErrNotFound", k, err)
			}
		}
		if got := s.Stats().Corrupt; got != uint64(i+1) {
			t.Errorf("Corrupt = %d after reading %q twice, want %d", got, k, i+1)
		}
	}
	mustGet(t, s, fine)
	if got := s.Stats().Keys; got != 1 {
		t.Errorf("Keys = %d, want 1", got)
	}
}

// TestCorruptFile flips bytes in the middle of the file holding a value, an
// sstable for a value kept inline in Pebble's blocks and a blob file for a
// separated one (blobMin): Pebble's block checksum catches it and the store
// reports a miss. The values are kept small: on a checksum mismatch Pebble
// searches the block for a single flipped bit, recomputing the checksum of
// the whole block up to 320k times (internal/bitflip), seconds for a
// 256 KiB block.
func TestCorruptFile(t *testing.T) {
	for _, c := range []struct {
		name, suffix string
		size         int
	}{
		{"sstable", ".sst", blobMin / 2},
		{"blob", ".blob", blobMin + 4*KiB},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, Logger: testLogger(t)}
			s, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			k := []byte("\x00victim")
			mustSet(t, s, k, rec(randBytes(c.size), 0))
			if err := s.Close(); err != nil { // flushes: the value lands in a file
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			flipped := 0
			for _, e := range entries {
				// The value is in the file of its generation's d span, the
				// largest one (see spanPolicy).
				if info, err := e.Info(); err != nil || !strings.HasSuffix(e.Name(), c.suffix) || info.Size() < int64(c.size) {
					continue
				}
				path := filepath.Join(dir, e.Name())
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0xff
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				flipped++
			}
			if flipped == 0 {
				t.Fatalf("no %s file holding the value", c.suffix)
			}
			s = openTest(t, opts)
			for range 2 {
				if _, err := s.Get(k); !errors.Is(err, tier.ErrNotFound) {
					t.Fatalf("Get of a value in a corrupt file: %v, want ErrNotFound", err)
				}
			}
			if got := s.Stats().Corrupt; got != 1 {
				t.Errorf("Corrupt = %d, want 1", got)
			}
			if got := s.Stats().Keys; got != 0 {
				t.Errorf("Keys = %d, want 0", got)
			}
		})
	}
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(string, ...any)          {}
func (quietLogger) Fatalf(format string, a ...any) { panic("pebble fatal") }
