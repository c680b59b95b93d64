package disktier

import (
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openTest opens a store in a fresh temporary directory (unless opts.Dir is
// set) and closes it at the end of the test.
func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testLogger logs through t until the test ends (Pebble may log from its
// goroutines during Close, after which t.Logf panics).
func testLogger(t testing.TB) func(string, ...any) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return func(format string, args ...any) {
		select {
		case <-done:
		default:
			if testing.Verbose() {
				t.Logf(format, args...)
			}
		}
	}
}

// rec returns a record holding value, expiring at expireAt (Unix ms, 0 never).
func rec(value []byte, expireAt int64) tier.Record {
	return tier.NewRecord(tier.Header{ExpireAt: expireAt, Tag: "v1"}, value)
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// dirSize sums the sizes of the files under dir, as they are on disk.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // deleted while walking
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return total
}

func mustGet(t testing.TB, s *Store, key []byte) tier.Record {
	t.Helper()
	r, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return r
}

func mustSet(t testing.TB, s *Store, key []byte, r tier.Record) {
	t.Helper()
	if err := s.Set(key, r); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func key(i int) []byte { return []byte(fmt.Sprintf("\x00key-%08d", i)) }

var waitFor = testutil.WaitFor

// flipLast flips bits of the last byte of the value stored under k, through
// db, a raw Pebble handle on a closed store's directory, so that the record
// there fails its checksum.
func flipLast(t testing.TB, db *pebble.DB, k []byte) {
	t.Helper()
	v, err := getCopy(db, k)
	if err != nil {
		t.Fatalf("raw get %q: %v", k, err)
	}
	v[len(v)-1] ^= 0x55
	if err := db.Set(k, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// apartKey returns the d key holding the record of key, which must be
// stored apart from its pointer (not inline), looked up through db, a raw
// Pebble handle as flipLast's.
func apartKey(t testing.TB, db *pebble.DB, key []byte) []byte {
	t.Helper()
	ptr, err := getCopy(db, appendPtrKey(nil, key))
	if err != nil {
		t.Fatal(err)
	}
	p, err := decodePointer(ptr)
	if err != nil {
		t.Fatal(err)
	}
	return appendGenKey(nil, nsData, p.gen, key)
}
