package invalidation

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tiercache/tiercache/disktier"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/memtier"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// daemon is an in-process tiercache daemon: a Hybrid cache on its own data
// directory and the Cluster that follows the registry for it.
type daemon struct {
	t     testing.TB
	name  string
	dir   string
	opts  Options
	cache *tier.Hybrid
	c     *Cluster
}

// testOptions are the options tests start from: quick reconnects and
// heartbeats.
func testOptions(t testing.TB, urls, bucket string) Options {
	return Options{
		URLs:              urls,
		Bucket:            bucket,
		MembersBucket:     bucket + "-members",
		HeartbeatInterval: 200 * time.Millisecond,
		MemberTTL:         2 * time.Second,
		SyncTimeout:       10 * time.Second,
		ReconnectWait:     50 * time.Millisecond,
		Logger:            zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)),
	}
}

// newDaemon starts a daemon named name with opts (NodeID and Cache are set
// here) on a fresh data directory; it is stopped in t.Cleanup.
func newDaemon(t testing.TB, name string, opts Options) *daemon {
	t.Helper()
	d := &daemon{t: t, name: name, dir: t.TempDir(), opts: opts}
	d.opts.NodeID = name
	d.start()
	t.Cleanup(d.stop)
	return d
}

// openCache opens the Hybrid of data directory dir.
func openCache(t testing.TB, dir string) *tier.Hybrid {
	t.Helper()
	l1, err := memtier.New(memtier.Options{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := disktier.Open(disktier.Options{Dir: dir, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tier.NewHybrid(tier.Options{L1: l1, L2: l2})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// start opens the cache on the daemon's data directory and starts its
// Cluster.
func (d *daemon) start() {
	d.t.Helper()
	d.cache = openCache(d.t, d.dir)
	o := d.opts
	o.Cache = d.cache
	c, err := Start(o)
	if err != nil {
		_ = d.cache.Close()
		d.t.Fatalf("%s: Start: %v", d.name, err)
	}
	d.c = c
}

// stop closes the Cluster and the cache; a stopped daemon can start again.
func (d *daemon) stop() {
	if d.c == nil {
		return
	}
	if err := d.c.Close(); err != nil {
		d.t.Errorf("%s: Close: %v", d.name, err)
	}
	if err := d.cache.Close(); err != nil {
		d.t.Errorf("%s: closing cache: %v", d.name, err)
	}
	d.c, d.cache = nil, nil
}

func (d *daemon) waitSynced() {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.c.WaitSynced(ctx); err != nil {
		d.t.Fatalf("%s: WaitSynced: %v", d.name, err)
	}
}

func (d *daemon) rollout(model, version string) uint64 {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rev, err := d.c.Rollout(ctx, tiertest.Rollout(d.t, model, version))
	if err != nil {
		d.t.Fatalf("%s: Rollout(%s, %s): %v", d.name, model, version, err)
	}
	return rev
}

func (d *daemon) purge(model string) uint64 {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rev, err := d.c.Purge(ctx, tiertest.Purge(d.t, model))
	if err != nil {
		d.t.Fatalf("%s: Purge(%s): %v", d.name, model, err)
	}
	return rev
}

// rolloutEventually retries a rollout through NATS faults until it is
// committed and applied here.
func (d *daemon) rolloutEventually(model, version string) uint64 {
	d.t.Helper()
	var rev uint64
	ch := tiertest.Rollout(d.t, model, version)
	testutil.CheckFor(d.t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := d.c.Rollout(ctx, ch)
		if err != nil {
			return fmt.Errorf("%s: Rollout(%s, %s): %w", d.name, model, version, err)
		}
		rev = r
		return nil
	})
	return rev
}

func (d *daemon) set(key, value string) error {
	return d.cache.SetValue([]byte(key), []byte(value), 0)
}

func (d *daemon) mustSet(key, value string) {
	d.t.Helper()
	if err := d.set(key, value); err != nil {
		d.t.Fatalf("%s: SET %s: %v", d.name, key, err)
	}
}

// get returns key's value, or an error wrapping tier.ErrNotFound.
func (d *daemon) get(key string) (string, error) {
	r, err := d.cache.Get([]byte(key))
	if err != nil {
		return "", err
	}
	return string(r.Value()), nil
}

// waitModel waits until the daemon has model at version ("" = unknown).
func (d *daemon) waitModel(model, version string) {
	d.t.Helper()
	testutil.CheckFor(d.t, 30*time.Second, func() error { return d.hasModel(model, version) })
}

func (d *daemon) hasModel(model, version string) error {
	v, _ := d.cache.Model(model)
	if v != version {
		return fmt.Errorf("%s: model %s is at %q, want %q", d.name, model, v, version)
	}
	return nil
}

// wantMissing checks that key answers nil.
func (d *daemon) wantMissing(key string) error {
	if v, err := d.get(key); !errors.Is(err, tier.ErrNotFound) {
		return fmt.Errorf("%s: GET %s = %q, %v; want not found", d.name, key, v, err)
	}
	return nil
}

// wantStale checks that writing key is refused with a StaleError.
func (d *daemon) wantStale(key string) error {
	var se *tier.StaleError
	if err := d.set(key, "x"); !errors.As(err, &se) {
		return fmt.Errorf("%s: SET %s: %v; want a StaleError", d.name, key, err)
	}
	return nil
}

// freshAt checks what every daemon must answer once it applied "clip is at
// cur", having had entries written under prev.
func (d *daemon) freshAt(prev, cur string) error {
	if err := d.hasModel("clip", cur); err != nil {
		return err
	}
	if err := d.wantMissing("{clip@" + prev + "}k"); err != nil {
		return err
	}
	if err := d.wantMissing("{clip}k"); err != nil {
		return err
	}
	if err := d.wantStale("{clip@" + prev + "}x"); err != nil {
		return err
	}
	key := "{clip@" + cur + "}k"
	if err := d.set(key, "new"); err != nil {
		return fmt.Errorf("%s: SET %s: %v", d.name, key, err)
	}
	if v, err := d.get(key); err != nil || v != "new" {
		return fmt.Errorf("%s: GET %s = %q, %v; want new", d.name, key, v, err)
	}
	return nil
}

// writeUnder writes {clip@v}k and {clip}k on every daemon, at version v.
func writeUnder(t testing.TB, v string, ds ...*daemon) {
	t.Helper()
	for _, d := range ds {
		if err := d.hasModel("clip", v); err != nil {
			t.Fatal(err)
		}
		d.mustSet("{clip@"+v+"}k", "old")
		d.mustSet("{clip}k", "old")
		if got, err := d.get("{clip}k"); err != nil || got != "old" {
			t.Fatalf("%s: GET {clip}k = %q, %v", d.name, got, err)
		}
	}
}
