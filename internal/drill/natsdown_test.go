package drill

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/invalidation"
)

// Drill 3: NATS goes down during rollouts, then comes back; and one daemon
// is cut off from NATS while a rollout happens.
//
// Three daemon processes follow the registry of one in-process nats-server
// (restarted on the same port with its JetStream store). While a writer
// and a checker per daemon run (see modelLoad), the server is stopped:
// rollouts fail cleanly (MODEL.ROLLOUT answers an error, tierctl exits
// non-zero, both at once) and change nothing, and every daemon keeps
// serving. The server comes back; rollouts work again, also
// "tierctl rollout --wait", whose barrier must hold. No checker ever sees a
// stale answer.

// It runs twice: with the daemons' caches private, and as a fleet cache
// (--peer-listen), whose members fill each other's misses meanwhile.
func TestDrillNATSDown(t *testing.T) {
	for _, m := range peerModes {
		t.Run(m.name, func(t *testing.T) { drillNATSDown(t, m.args...) })
	}
}

// peerModes are the ways the drills that run several daemons on one NATS
// server run them: private caches, and a fleet cache.
var peerModes = []struct {
	name string
	args []string
}{
	{"peer=off", nil},
	{"peer=on", []string{"--peer-listen", "127.0.0.1:0"}},
}

func drillNATSDown(t *testing.T, extra ...string) {
	outage := size(3*time.Second, 30*time.Second)
	ns := newNATSServer(t, nil)
	a := modelDaemon(t, "node-a", ns.url(), extra...)
	b := modelDaemon(t, "node-b", ns.url(), extra...)
	c := modelDaemon(t, "node-c", ns.url(), extra...)
	all := []*daemon{a, b, c}
	ctx := context.Background()

	load := startModelLoad(t, all...)
	rollout := func(via *daemon, n int) {
		t.Helper()
		load.lockAll(all...)
		defer load.unlock(all...)
		if err := via.admin.Do(ctx, "MODEL.ROLLOUT", "clip", fmt.Sprintf("v%d", n)).Err(); err != nil {
			t.Fatalf("MODEL.ROLLOUT clip v%d on %s: %v", n, via.name, err)
		}
		waitVersion(t, n, all...)
	}
	rollout(a, 1)
	load.waitChecked(50)
	rollout(b, 2)
	load.waitChecked(50)

	// The outage.
	ns.stop()
	for _, d := range all {
		waitFor(t, 30*time.Second, d.name+" to notice NATS is gone", func() bool { return !natsConnected(d) })
	}
	down := time.Now()
	refused, slowest := 0, time.Duration(0)
	for i := 0; time.Since(down) < outage || i < 2; i++ {
		via := all[i%len(all)]
		v := fmt.Sprintf("v%d", 100+i)
		load.lockAll(all...) // a rollout that went through would change the version under the writers
		start := time.Now()
		err := via.admin.Do(ctx, "MODEL.ROLLOUT", "clip", v).Err()
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "NATS unavailable") {
			t.Errorf("MODEL.ROLLOUT clip %s on %s with NATS down: %v, want an error saying NATS is unavailable", v, via.name, err)
		}
		if i < 2 { // tierctl, through the daemon's NATS URL
			code, stdout, stderr, tookCtl := tierctl(t, "--socket", via.socket, "--timeout", "5s", "rollout", "clip", v, "--wait", "5s")
			if code == 0 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "tierctl: ") {
				t.Errorf("tierctl rollout with NATS down: exit %d, stdout %q, stderr %q; want a one-line error", code, stdout, stderr)
			}
			took = max(took, tookCtl)
		}
		load.unlock(all...)
		refused++
		slowest = max(slowest, took)
		if took > 10*time.Second {
			t.Errorf("a rollout with NATS down took %v to fail", took)
		}
		time.Sleep(100 * time.Millisecond) // pacing the attempts over the outage
	}
	for _, d := range all {
		if v, err := modelVersion(ctx, d.admin); err != nil || v != 2 {
			t.Errorf("%s reports clip v%d, %v after the refused rollouts; want v2", d.name, v, err)
		}
	}
	load.waitChecked(50) // the daemons serve on without NATS

	ns.start()
	back := time.Now()
	for _, d := range all {
		waitFor(t, 30*time.Second, d.name+" to reconnect", func() bool { return natsConnected(d) })
	}
	reconnected := time.Since(back)
	rollout(c, 3)
	load.waitChecked(50)
	// The members bucket (memory storage) did not survive the restart;
	// each daemon's heartbeat must create it again and announce itself
	// (before 4bec404 they kept their handle of the lost bucket, and
	// tierctl rollout --wait then waited for nobody).
	waitMembers(t, ns.url(), len(all))

	// tierctl's barrier: once it exits 0, every daemon has applied.
	load.lockAll(all...)
	code, stdout, stderr, took := tierctl(t, "--socket", a.socket, "rollout", "clip", "v4", "--wait", "20s")
	if code != 0 {
		t.Errorf("tierctl rollout --wait after the outage: exit %d\n%s%s", code, stdout, stderr)
	}
	behind := []string{}
	for _, d := range all {
		if v, err := modelVersion(ctx, d.admin); err != nil || v != 4 {
			behind = append(behind, fmt.Sprintf("%s at v%d (%v)", d.name, v, err))
		}
	}
	if len(behind) > 0 {
		t.Errorf("tierctl rollout --wait exited %d after %v (%q) but %s: the barrier did not wait for them", code, took.Round(time.Millisecond), strings.TrimSpace(stdout), strings.Join(behind, ", "))
	}
	waitVersion(t, 4, all...)
	load.unlock(all...)
	load.waitChecked(50)

	load.stop()
	t.Logf("NATS-down drill: NATS down %v; %d rollouts refused while down (slowest refusal %v), versions unchanged; daemons reconnected %v after NATS returned; rollouts v3 (MODEL.ROLLOUT) and v4 (tierctl --wait) applied everywhere; %s",
		outage, refused, slowest.Round(time.Millisecond), reconnected.Round(time.Millisecond), load.summary())
	if len(extra) > 0 {
		t.Logf("fleet cache: peer_hits %d, peer_fenced %d, peer_sets_forwarded %d", sumInfo(t, "peer_hits", all...), sumInfo(t, "peer_fenced", all...), sumInfo(t, "peer_sets_forwarded", all...))
	}
}

// waitMembers waits until the members bucket lists want live daemons, and
// fails the test naming those it lists if that takes more than a few
// heartbeats: the daemons it misses are those tierctl rollout --wait
// cannot wait for.
func waitMembers(t testing.TB, url string, want int) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ms, err := invalidation.Members(ctx, js)
		if err != nil {
			return err
		}
		if len(ms) != want {
			var names []string
			for _, m := range ms {
				names = append(names, m.Node)
			}
			return fmt.Errorf("the members bucket lists %d live daemons (%v), want %d", len(names), names, want)
		}
		return nil
	})
}

// TestDrillNATSPartition cuts one daemon off from NATS (a TCP proxy between
// it and the server) while a rollout happens, then restores it: from the
// moment it reports itself connected again, its answers must be those of
// the new version, even to its very first request.
func TestDrillNATSPartition(t *testing.T) {
	cycles := size(2, 10)
	ns := newNATSServer(t, nil)
	proxy := natstest.Proxy(t, ns.url())
	a := modelDaemon(t, "node-a", ns.url())
	b := modelDaemon(t, "node-b", ns.url())
	c := modelDaemon(t, "node-c", proxy.URL())
	all := []*daemon{a, b, c}
	ctx := context.Background()

	load := startModelLoad(t, all...)
	load.lockAll(all...)
	if err := a.admin.Do(ctx, "MODEL.ROLLOUT", "clip", "v1").Err(); err != nil {
		t.Fatal(err)
	}
	waitVersion(t, 1, all...)
	load.unlock(all...)

	var firstAnswers []time.Duration
	probes := 0
	for cycle := range cycles {
		old, cur := cycle+1, cycle+2
		waitWritten(t, load, c, 20) // c holds entries of v{old}
		load.lockAll(all...)
		proxy.Cut()
		waitFor(t, 30*time.Second, "node-c to notice it is cut off", func() bool { return !natsConnected(c) })
		via := []*daemon{a, b}[cycle%2]
		if err := via.admin.Do(ctx, "MODEL.ROLLOUT", "clip", fmt.Sprintf("v%d", cur)).Err(); err != nil {
			t.Fatalf("MODEL.ROLLOUT on %s: %v", via.name, err)
		}
		waitVersion(t, cur, a, b)
		load.unlock(a, b) // they write at v{cur} while node-c holds v{old}
		if v, _ := modelVersion(ctx, c.admin); v != old {
			t.Fatalf("node-c, cut off, reports v%d; want v%d", v, old)
		}

		// Probe node-c as fast as one client can while it comes back.
		restored := time.Now()
		proxy.Restore()
		first := time.Duration(-1)
		waitFor(t, 60*time.Second, "node-c to come back at the new version", func() bool {
			connected := natsConnected(c) // before the reads: they must then be fresh
			n, err := probeReconnected(ctx, c, old, cur, connected)
			probes++
			if err != nil {
				t.Fatalf("node-c (reported connected: %v): %v", connected, err)
			}
			if connected && first < 0 {
				first = time.Since(restored)
			}
			return connected && n == cur
		})
		firstAnswers = append(firstAnswers, first)
		load.unlock(c)
		load.waitChecked(20)
	}
	load.stop()
	t.Logf("partition drill: %d cut-off rollouts; after each reconnection node-c's first answers were at the new version (%d probes; first fresh answer %v after the cut was restored); %s",
		cycles, probes, firstAnswers, load.summary())
}

// waitWritten waits until d's writer wrote n more values.
func waitWritten(t testing.TB, l *modelLoad, d *daemon, n int64) {
	t.Helper()
	st := l.stats[d.name]
	base := st.written.Load()
	waitFor(t, 30*time.Second, d.name+" to write", func() bool { return st.written.Load()-base >= n || l.failed() })
}

// probeReconnected reads, on d, keys that hold values written at version old and
// then MODEL.GET clip, and returns the version it answered. With fresh
// (d reported itself connected to NATS before the reads), every answer
// must be of version cur already.
func probeReconnected(ctx context.Context, d *daemon, old, cur int, fresh bool) (int, error) {
	i := rand.IntN(loadKeys)
	for _, k := range []string{fmt.Sprintf("{clip@v%d}k%d", old, i), fmt.Sprintf("{clip}k%d", i)} {
		v, err := d.admin.Get(ctx, k).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("GET %s: %w", k, err)
		}
		seq, err := CheckValue([]byte(k), v)
		if err != nil {
			return 0, fmt.Errorf("GET %s: %w", k, err)
		}
		if fresh && int(seq>>32) < cur {
			return 0, fmt.Errorf("stale answer right after reconnecting: GET %s served a value written at v%d, the registry is at v%d", k, seq>>32, cur)
		}
	}
	n, err := modelVersion(ctx, d.admin)
	if err != nil {
		return 0, err
	}
	if fresh && n != cur {
		return n, fmt.Errorf("stale answer right after reconnecting: MODEL.GET clip = v%d, the registry is at v%d", n, cur)
	}
	return n, nil
}
