package invalidation

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/tier/tiertest"
)

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
	testutil.CheckFor(t, 10*time.Second, func() error { return b.freshAt("v1", "v2") })

	st, hs := a.c.Status(), a.cache.Stats()
	if !st.NATSConnected || hs.ModelsRevision != r2 || hs.ModelsKnown != 1 {
		t.Fatalf("Status = %+v, registry revision %d, known %d", st, hs.ModelsRevision, hs.ModelsKnown)
	}
	fields := map[string]string{}
	for _, kv := range st.Fields() {
		fields[kv[0]] = kv[1]
	}
	if fields["nats_url"] != url || fields["models_bucket"] != "models" || fields["members_bucket"] != "models-members" ||
		fields["node_id"] != "a" || fields["models_synced"] != "1" || fields["models_bucket_revision"] != strconv.FormatUint(r2, 10) {
		t.Fatalf("Status.Fields = %v", st.Fields())
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
	cache := openCache(t, t.TempDir())
	defer cache.Close()
	o.Cache = cache
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
	if _, err := d.c.Rollout(ctx, tiertest.Rollout(t, "clip", "v1")); !errors.Is(err, ErrUnavailable) {
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
	testutil.CheckFor(t, 10*time.Second, func() error {
		if !d.c.Status().NATSConnected {
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
