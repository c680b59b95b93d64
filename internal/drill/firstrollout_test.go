package drill

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestDrillFirstRollout: two daemons on one nats-server, whose registry
// does not know clip, cache {clip@v1}, {clip@v2} and {clip} entries (each
// its own keys, named after it); B is stopped, and clip's first rollout,
// to v1, is made on A. A keeps its {clip@v1} entries as soon as
// MODEL.ROLLOUT answered; B, started again, replays the rollout before it
// answers and keeps its own; the model's other entries answer nil on both.
// Both stopped and started again, the same holds. It runs with private
// caches and as a fleet cache (--peer-listen), where each daemon also
// reads the other's keys: its {clip@v1} entry or nil, never the others.
func TestDrillFirstRollout(t *testing.T) {
	for _, m := range peerModes {
		t.Run(m.name, func(t *testing.T) { drillFirstRollout(t, m.args...) })
	}
}

func drillFirstRollout(t *testing.T, extra ...string) {
	ns := newNATSServer(t, nil)
	a := modelDaemon(t, "node-a", ns.url(), extra...)
	b := modelDaemon(t, "node-b", ns.url(), extra...)
	all := []*daemon{a, b}
	ctx := context.Background()
	for _, d := range all {
		for _, k := range []string{"{clip@v1}k-", "{clip@v2}k-", "{clip}k-"} {
			if err := d.admin.Set(ctx, k+d.name, d.name, 0).Err(); err != nil {
				t.Fatalf("%s: SET %s: %v", d.name, k+d.name, err)
			}
		}
	}
	check := func(when string, d *daemon) {
		t.Helper()
		if v, err := d.admin.Do(ctx, "MODEL.GET", "clip").Text(); err != nil || v != "v1" {
			t.Fatalf("%s, %s: MODEL.GET clip = %q, %v; want v1", when, d.name, v, err)
		}
		for _, w := range all { // whose keys
			k := "{clip@v1}k-" + w.name
			v, err := d.admin.Get(ctx, k).Result()
			switch {
			case w == d && (err != nil || v != d.name):
				t.Errorf("%s, %s: GET %s = %q, %v; want %q, written for v1 before the rollout", when, d.name, k, v, err, d.name)
			case w != d && !errors.Is(err, redis.Nil) && (err != nil || v != w.name):
				t.Errorf("%s, %s: GET %s = %q, %v; want nil or %q, written on %s for v1 before the rollout", when, d.name, k, v, err, w.name, w.name)
			}
			for _, k := range []string{"{clip@v2}k-" + w.name, "{clip}k-" + w.name} {
				if v, err := d.admin.Get(ctx, k).Result(); !errors.Is(err, redis.Nil) {
					t.Errorf("%s, %s: GET %s = %q, %v; want nil", when, d.name, k, v, err)
				}
			}
		}
		if err := d.admin.Set(ctx, "{clip@v2}x", "x", 0).Err(); err == nil || err.Error() != "STALE clip is at v1" {
			t.Errorf("%s, %s: SET {clip@v2}x: %v, want STALE clip is at v1", when, d.name, err)
		}
	}

	b.stop()
	if err := a.admin.Do(ctx, "MODEL.ROLLOUT", "clip", "v1").Err(); err != nil {
		t.Fatalf("MODEL.ROLLOUT clip v1 on %s: %v", a.name, err)
	}
	check("followed live", a)
	b.start()
	check("replayed at start", b)

	for _, d := range all {
		d.stop()
		d.start()
		check("after a restart", d)
	}
}
