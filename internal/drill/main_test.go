package drill

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// longEnv selects the full-size drills.
const longEnv = "TIERCACHE_DRILL_LONG"

// long reports whether the full-size drills run (TIERCACHE_DRILL_LONG=1).
var long = os.Getenv(longEnv) != "" && os.Getenv(longEnv) != "0"

// bins are the programs under test, built once by TestMain: tiercached and
// tierctl built like the test (with -race when it is), and
// tiercached-norace, for the drill that measures the daemon's memory (the
// race detector multiplies it).
var bins = map[string]string{}

// quiet discards go-redis' own log lines (failed dials to a daemon the
// drills just killed).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	dir, err := os.MkdirTemp("", "tiercache-drill-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range []struct {
		name, pkg string
		race      bool
	}{
		{"tiercached", "../../cmd/tiercached", raceEnabled},
		{"tierctl", "../../cmd/tierctl", raceEnabled},
		{"tiercached-norace", "../../cmd/tiercached", false},
	} {
		bins[b.name] = filepath.Join(dir, b.name)
		args := []string{"build", "-o", bins[b.name]}
		if b.race {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, b.pkg)...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.name, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// size picks the fast or the long (TIERCACHE_DRILL_LONG=1) figure.
func size[T any](fast, full T) T {
	if long {
		return full
	}
	return fast
}

// waitFor polls cond until it holds, and fails the test if timeout passes
// first.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // a polling interval, not a wait for an event
	}
}

// mib formats a byte count in MiB.
func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }

