package tier_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/tier"
)

var errInjected = errors.New("injected: no space left on device")

// TestDiskFaults injects write errors under L2: no panic, L1 keeps serving
// every key, the error is surfaced, and writes reach L2 again once the fault
// clears.
func TestDiskFaults(t *testing.T) {
	fault := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errInjected
		}
		return nil
	})}
	dir := t.TempDir()
	var reported atomic.Int64
	open := func(fs vfs.FS) *tier.Hybrid {
		return openHybridWith(t, dir, fs, func(string, error) { reported.Add(1) })
	}
	h := open(errorfs.Wrap(vfs.Default, fault))
	for i := range 50 {
		mustSetValue(t, h, fmt.Sprintf("before%d", i), []byte(fmt.Sprint("value", i)))
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}

	fault.On()
	for i := range 50 {
		mustSetValue(t, h, fmt.Sprintf("during%d", i), []byte(fmt.Sprint("value", i)))
	}
	waitFor(t, 10*time.Second, "the L2 write error to be reported", func() bool {
		return h.Stats().L2WriteErrors > 0 && reported.Load() > 0
	})
	for _, p := range []string{"before", "during"} {
		for i := range 50 {
			if got, err := getValue(h, fmt.Sprintf("%s%d", p, i)); err != nil || string(got) != fmt.Sprint("value", i) {
				t.Fatalf("%s%d while L2 fails: %q, %v", p, i, got, err)
			}
		}
	}

	fault.Off()
	waitFor(t, 30*time.Second, "the queued writes to reach L2", func() bool {
		return h.Stats().PendingBytes == 0
	})
	mustSetValue(t, h, "after", []byte("ok"))
	if err := h.Close(); err != nil {
		t.Fatalf("Close after recovery: %v", err)
	}
	h = open(vfs.Default)
	defer h.Close()
	for _, p := range []string{"before", "during"} {
		for i := range 50 {
			if got, err := getValue(h, fmt.Sprintf("%s%d", p, i)); err != nil || string(got) != fmt.Sprint("value", i) {
				t.Fatalf("%s%d after recovery and restart: %q, %v", p, i, got, err)
			}
		}
	}
}

func openHybridWith(t testing.TB, dir string, fs vfs.FS, onError func(string, error)) *tier.Hybrid {
	t.Helper()
	return openHybrid(t, hcfg{dir: dir, memMax: 8 << 20, flush: 50 * time.Millisecond, onError: onError,
		diskOpts: func(o *disktier.Options) { o.FS = fs }})
}

var waitFor = testutil.WaitFor
