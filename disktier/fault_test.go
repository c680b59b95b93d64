package disktier

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// failWrites injects an error into every write-type file system operation
// while it is on.
func failWrites() *errorfs.Toggle {
	return &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	})}
}

// TestStorageFault fails every write for a while: no panic, the errors are
// returned and counted, what is stored stays readable, and writes succeed
// again once the fault clears.
func TestStorageFault(t *testing.T) {
	for _, c := range []struct {
		name string
		size int // of the first record written during the fault
	}{
		{"small write", 100},
		// Larger than half a memtable: Pebble rotates the WAL inside the
		// commit (see walGuardFS).
		{"WAL rotation", 3 * MiB},
	} {
		t.Run(c.name, func(t *testing.T) {
			toggle := failWrites()
			fs := errorfs.Wrap(vfs.NewMem(), toggle)
			s := openTest(t, Options{Dir: "/db", FS: fs, MaxBytes: 64 * MiB})
			stored := map[string][]byte{}
			for i := 0; i < 50; i++ {
				v := randBytes(100 + i*1000)
				stored[string(key(i))] = v
				mustSet(t, s, key(i), rec(v, 0))
			}

			toggle.On()
			if err := s.Set([]byte("\x00during"), rec(randBytes(c.size), 0)); err == nil {
				t.Fatal("write during the fault succeeded")
			} else if !errors.Is(err, ErrStorage) && !errors.Is(err, ErrUnavailable) {
				t.Errorf("write during the fault: %v", err)
			}
			for i := 0; i < 5; i++ {
				if err := s.Set([]byte("\x00during"), rec([]byte("x"), 0)); err == nil {
					t.Fatal("write during the fault succeeded")
				}
			}
			if s.Stats().Errors == 0 {
				t.Error("no error counted")
			}
			for k, v := range stored {
				r, err := s.Get([]byte(k))
				if err != nil {
					t.Fatalf("read during the fault: %v", err)
				}
				if string(r.Value()) != string(v) {
					t.Fatalf("%q: wrong value during the fault", k)
				}
			}

			toggle.Off()
			var lastErr error
			waitFor(t, 20*time.Second, "writes to succeed again", func() bool {
				lastErr = s.Set([]byte("\x00after"), rec([]byte("after"), 0))
				return lastErr == nil
			})
			mustGet(t, s, []byte("\x00after"))
			for k, v := range stored {
				if r := mustGet(t, s, []byte(k)); string(r.Value()) != string(v) {
					t.Fatalf("%q: wrong value after recovery", k)
				}
			}
			if got, want := s.Stats().Keys, int64(len(stored)+1); got < want {
				t.Errorf("Keys = %d, want at least %d", got, want)
			}
			// The store keeps working: a large write goes through too.
			mustSet(t, s, []byte("\x00big-after"), rec(randBytes(3*MiB), 0))
			mustGet(t, s, []byte("\x00big-after"))
		})
	}
}

// TestOpenFailsCleanly opens a store on a file system that fails every
// write: Open returns an error, and leaks no goroutine.
func TestOpenFailsCleanly(t *testing.T) {
	toggle := failWrites()
	toggle.On()
	fs := errorfs.Wrap(vfs.NewMem(), toggle)
	s, err := Open(Options{Dir: "/db", FS: fs, MaxBytes: 64 * MiB})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open succeeded on a failing file system")
	}
	t.Logf("Open on a failing file system: %v", err)
}
