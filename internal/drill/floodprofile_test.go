package drill

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/server"
	"github.com/tiercache/tiercache/tier"
)

// pprofEnv names the file TestDrillFloodProfile writes its heap profile to.
const pprofEnv = "TIERCACHE_DRILL_PPROF"

// TestDrillFloodProfile runs TestDrillFlood's large values against an
// in-process server wired as the daemon wires it (same options, same Go
// memory limit) and writes the heap profile taken when the Go heap peaked
// to $TIERCACHE_DRILL_PPROF, to see where the daemon's memory goes:
//
//	TIERCACHE_DRILL_PPROF=/tmp/heap.pprof TIERCACHE_DRILL_LONG=1 go test -run TestDrillFloodProfile -v -timeout 30m ./internal/drill
//	go tool pprof -top -sample_index=inuse_space /tmp/heap.pprof
//
// The profile includes the drill's own client buffers (bufio.NewWriterSize
// and WriteValue: about 256 KiB per client).
func TestDrillFloodProfile(t *testing.T) {
	out := os.Getenv(pprofEnv)
	if out == "" {
		t.Skipf("set %s=FILE to profile the flood in-process", pprofEnv)
	}
	dir := t.TempDir()
	l1, err := memtier.New(memtier.Options{MaxBytes: floodMemMax})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := disktier.Open(disktier.Options{Dir: filepath.Join(dir, "l2"), MaxBytes: floodDiskMax})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(tier.GoMemoryLimit(floodMemMax))) // as the daemon does
	srv, err := server.New(server.Options{Cache: h, Models: tier.NewLocalRegistry(h.Registry), MaxValue: floodMaxValue})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "tc.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Shutdown(context.Background())
		<-served
	}()

	stop, done := make(chan struct{}), make(chan struct{})
	var peak uint64
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak {
				peak = v
				if f, err := os.Create(out); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}
	}()
	n, sz := size(40, 200), int64(size(16<<20, 64<<20))
	results := floodValues(t, sock, n, sz)
	close(stop)
	<-done
	for i, r := range results {
		if r.err != nil {
			t.Errorf("value %d: %v", i, r.err)
		}
	}
	t.Logf("%d × %s values: Go heap objects peaked at %s; heap profile of the peak in %s", n, mib(sz), mib(int64(peak)), out)
}
