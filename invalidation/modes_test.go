package invalidation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/natstest"
)

func TestOff(t *testing.T) {
	opts := testOptions(t, Off, "")
	opts.Bucket = ""
	opts.MembersBucket = ""
	d := newDaemon(t, "solo", opts)
	ctx := context.Background()

	if !d.c.Synced() {
		t.Fatal("off: not synced")
	}
	if err := d.c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	d.mustSet("{clip}k", "old")
	r1 := d.rollout("clip", "v1")
	if err := d.wantMissing("{clip}k"); err != nil {
		t.Fatal(err)
	}
	writeUnder(t, "v1", d)
	r2 := d.rollout("clip", "v2")
	if err := d.freshAt("v1", "v2"); err != nil {
		t.Fatal(err)
	}
	r3 := d.purge("clip")
	if !(r1 == 1 && r2 == 2 && r3 == 3) {
		t.Fatalf("revisions %d %d %d, want 1 2 3", r1, r2, r3)
	}
	if err := d.hasModel("clip", ""); err != nil {
		t.Fatal(err)
	}
	ci := d.c.ClusterInfo()
	if ci.NATSConnected || ci.ModelsRevision != 3 || ci.ModelsKnown != 0 || ci.RolloutsApplied != 3 {
		t.Fatalf("ClusterInfo = %+v", ci)
	}
	if _, err := d.c.Members(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Members with NATS off: %v, want ErrUnavailable", err)
	}
	if _, err := d.c.Rollout(ctx, "clip", "v@1"); !errors.Is(err, ErrInvalidVersion) {
		t.Fatalf("Rollout of v@1: %v, want ErrInvalidVersion", err)
	}
	if _, err := d.c.Rollout(ctx, "a{b}", "v1"); !errors.Is(err, ErrInvalidModel) {
		t.Fatalf("Rollout of a{b}: %v, want ErrInvalidModel", err)
	}

	// The state survives a restart.
	d.stop()
	d.start()
	if err := d.hasModel("clip", ""); err != nil {
		t.Fatal(err)
	}
	if r := d.rollout("clip", "v3"); r != 4 {
		t.Fatalf("revision after restart %d, want 4", r)
	}
}

// TestEmbedded runs the embedded server on a free port, joins a second
// daemon to it by its URL, and restarts the first on its store.
func TestEmbedded(t *testing.T) {
	opts := testOptions(t, Embedded, "models")
	opts.EmbeddedListen = "127.0.0.1:0"
	opts.StoreDir = t.TempDir()
	a := newDaemon(t, "a", opts)
	url := a.c.URL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") || strings.HasSuffix(url, ":4222") {
		t.Fatalf("embedded URL %q", url)
	}
	a.waitSynced()

	b := newDaemon(t, "b", testOptions(t, url, "models"))
	b.waitSynced()

	r1 := b.rollout("clip", "v1")
	a.waitModel("clip", "v1")
	writeUnder(t, "v1", a, b)
	r2 := a.rollout("clip", "v2")
	if r2 <= r1 {
		t.Fatalf("revisions %d then %d", r1, r2)
	}
	if err := a.freshAt("v1", "v2"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error { return b.freshAt("v1", "v2") })

	ci := a.c.ClusterInfo()
	if !ci.NATSConnected || ci.ModelsRevision != r2 || ci.ModelsKnown != 1 {
		t.Fatalf("ClusterInfo = %+v", ci)
	}
	extra := map[string]string{}
	for _, kv := range ci.Extra {
		extra[kv[0]] = kv[1]
	}
	if extra["nats_url"] != url || extra["models_bucket"] != "models" || extra["node_id"] != "a" || extra["models_synced"] != "1" {
		t.Fatalf("ClusterInfo.Extra = %v", ci.Extra)
	}

	// The registry bucket lives in the embedded server's store: after a
	// restart of both on a fixed port, it is all still there.
	port := url[strings.LastIndexByte(url, ':')+1:]
	b.stop()
	a.stop()
	a.opts.EmbeddedListen = "127.0.0.1:" + port
	a.start()
	a.waitSynced()
	if err := a.hasModel("clip", "v2"); err != nil {
		t.Fatal(err)
	}
	if r3 := a.rollout("clip", "v3"); r3 <= r2 {
		t.Fatalf("revision after restart %d, want > %d", r3, r2)
	}

	// A busy port is a clear start-up error.
	o := testOptions(t, Embedded, "models")
	o.EmbeddedListen = "127.0.0.1:" + port
	o.StoreDir = t.TempDir()
	o.NodeID = "c"
	o.Cache = openCache(t, t.TempDir())
	defer o.Cache.Close()
	if c, err := Start(o); err == nil {
		c.Close()
		t.Fatal("second embedded server on a busy port started")
	} else if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("busy port: %v", err)
	}
}

// TestUnreachable starts with NATS down: the daemon serves its persisted
// registry, WaitSynced gives up after SyncTimeout, Rollout says NATS is
// unavailable; once NATS is up the daemon catches up by itself.
func TestUnreachable(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	p := natstest.Proxy(t, srv.ClientURL())
	p.Cut()
	opts := testOptions(t, p.URL(), "models")
	opts.SyncTimeout = 300 * time.Millisecond
	d := newDaemon(t, "d", opts)
	ctx := context.Background()

	start := time.Now()
	if err := d.c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("WaitSynced took %v with SyncTimeout 300ms", el)
	}
	if _, err := d.c.Rollout(ctx, "clip", "v1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Rollout without NATS: %v, want ErrUnavailable", err)
	}
	if err := d.hasModel("clip", ""); err != nil {
		t.Fatal(err)
	}

	// Someone else rolls out meanwhile.
	other := newDaemon(t, "other", testOptions(t, srv.ClientURL(), "models"))
	other.waitSynced()
	other.rollout("clip", "v1")

	p.Restore()
	checkFor(t, 10*time.Second, func() error {
		if !d.c.ClusterInfo().NATSConnected {
			return errors.New("not connected yet")
		}
		return nil
	})
	d.waitSynced()
	if err := d.hasModel("clip", "v1"); err != nil {
		t.Fatal(err)
	}
	if r := d.rollout("clip", "v2"); r != 2 {
		t.Fatalf("revision %d, want 2", r)
	}
}
