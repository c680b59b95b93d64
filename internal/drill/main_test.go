package drill

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/race"
	"github.com/tiercache/tiercache/internal/testutil"
)

// longEnv selects the full-size drills.
const longEnv = "TIERCACHE_DRILL_LONG"

// long reports whether the full-size drills run (TIERCACHE_DRILL_LONG=1).
var long = os.Getenv(longEnv) != "" && os.Getenv(longEnv) != "0"

// bins are the programs under test, built once by TestMain: tiercached and
// tierctl built like the test (with -race when it is), and
// tiercached-norace, for the drill that measures the daemon's memory (the
// race detector multiplies it).
var bins map[string]string

// quiet discards go-redis' own log lines (failed dials to a daemon the
// drills just killed).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	os.Exit(testutil.Main(m, &bins,
		testutil.Command{Name: "tiercached", Pkg: "github.com/tiercache/tiercache/cmd/tiercached", Race: race.Enabled},
		testutil.Command{Name: "tierctl", Pkg: "github.com/tiercache/tiercache/cmd/tierctl", Race: race.Enabled},
		testutil.Command{Name: "tiercached-norace", Pkg: "github.com/tiercache/tiercache/cmd/tiercached"}))
}

var waitFor = testutil.WaitFor

// size picks the fast or the long (TIERCACHE_DRILL_LONG=1) figure.
func size[T any](fast, full T) T {
	if long {
		return full
	}
	return fast
}

// mib formats a byte count in MiB.
func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }
