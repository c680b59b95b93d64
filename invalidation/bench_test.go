package invalidation

import (
	"fmt"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/natstest"
	"go.uber.org/zap"
)

// BenchmarkRolloutPropagation measures a rollout on one daemon until
// another daemon on the same NATS server has applied it: Rollout's round
// trip (publish, then this daemon's follower applying it) plus the other
// follower's lag.
func BenchmarkRolloutPropagation(b *testing.B) {
	srv := natstest.RunServer(b, nil)
	opts := testOptions(b, srv.ClientURL(), "bench")
	opts.Logger = zap.NewNop()
	a := newDaemon(b, "a", opts)
	o := newDaemon(b, "o", opts)
	a.waitSynced()
	o.waitSynced()
	var lag time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		v := fmt.Sprintf("v%d", i)
		a.rollout("clip", v)
		start := time.Now()
		for {
			if cur, _ := o.cache.Model("clip"); cur == v {
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
		lag += time.Since(start)
	}
	b.ReportMetric(float64(lag.Microseconds())/float64(b.N), "µs-lag/op")
}
