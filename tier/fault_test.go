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
	"github.com/tiercache/tiercache/tier/tiertest"
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

// TestApplyModelsAsyncDoesNotWaitForDisk rolls a model out with
// ApplyModelsAsync while every disk write hangs: the call returns, the new
// version is served and fenced at once; once the disk answers again the
// cache drops the stale entries from L2 and persists the registry.
func TestApplyModelsAsyncDoesNotWaitForDisk(t *testing.T) {
	release := make(chan struct{})
	var hang atomic.Bool
	var hung atomic.Int64
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if hang.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			hung.Add(1)
			<-release
		}
		return nil
	}))
	dir := t.TempDir()
	h := openHybridWith(t, dir, fs, nil)
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "clip", "v1")}, 1); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		mustSetValue(t, h, fmt.Sprintf("{clip}k%d", i), []byte("v1"))
	}
	mustSetValue(t, h, "plain", []byte("p"))
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	keys := h.Stats().L2.Keys

	hang.Store(true)
	mustSetValue(t, h, "during", []byte("d")) // the flusher's write hangs
	waitFor(t, 10*time.Second, "a disk write to hang", func() bool { return hung.Load() > 0 })
	h.ApplyModelsAsync([]tier.ModelChange{tiertest.Rollout(t, "clip", "v2")}, 2)
	if v, _ := h.Model("clip"); v != "v2" || h.ModelsRevision() != 2 {
		t.Fatalf("after ApplyModelsAsync: clip=%q revision=%d", v, h.ModelsRevision())
	}
	if _, err := getValue(h, "{clip}k1"); !errors.Is(err, tier.ErrNotFound) {
		t.Errorf("stale entry served after ApplyModelsAsync: %v", err)
	}
	var stale *tier.StaleError
	if err := h.SetValue([]byte("{clip@v1}late"), []byte("x"), 0); !errors.As(err, &stale) {
		t.Errorf("late write: %v, want a StaleError", err)
	}
	// The new version is accepted. The write itself would wait: with the
	// disk hung, the queue's back-pressure (by age) holds writers.
	if err := h.CheckWrite([]byte("{clip@v2}k1")); err != nil {
		t.Errorf("a write of the new version: %v", err)
	}

	hang.Store(false)
	close(release)
	mustSetValue(t, h, "{clip@v2}k1", []byte("v2"))
	waitFor(t, 30*time.Second, "the stale entries to leave L2", func() bool {
		return h.Stats().L2.Keys < keys-50
	})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h = openHybridWith(t, dir, vfs.Default, nil)
	defer h.Close()
	if v, _ := h.Model("clip"); v != "v2" || h.ModelsRevision() != 2 {
		t.Fatalf("after restart: clip=%q revision=%d", v, h.ModelsRevision())
	}
	for k, want := range map[string]string{"{clip@v2}k1": "v2", "plain": "p", "during": "d"} {
		if got, err := getValue(h, k); err != nil || string(got) != want {
			t.Errorf("%s after restart: %q, %v", k, got, err)
		}
	}
}
