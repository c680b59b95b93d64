package invalidation

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// connect returns a JetStream context on url for a test to act as an
// operator would with the nats CLI.
func connect(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// firstAnswersAt checks the first answers of a daemon that has just become
// synced: model clip is at cur, and nothing written under prev is served.
func firstAnswersAt(t testing.TB, d *daemon, prev, cur string) {
	t.Helper()
	if err := d.freshAt(prev, cur); err != nil {
		t.Fatal(err)
	}
}

// TestFirstRolloutKeepsEntries: a model's first rollout to v1 keeps the
// {MODEL@v1} entries a daemon wrote before it knew the model, whether the
// daemon follows the rollout live or replays it after a restart, and
// across a restart after it; when the model had another version first,
// the replay drops them, as following it live would have.
func TestFirstRolloutKeepsEntries(t *testing.T) {
	_, a, c := syncedPair(t)
	models := []string{"live", "replayed", "between"}
	for _, m := range models {
		c.mustSet("{"+m+"@v1}k", "kept")
		c.mustSet("{"+m+"@v2}k", "other version")
		c.mustSet("{"+m+"}k", "unversioned")
	}
	check := func(when, model string, kept bool) {
		t.Helper()
		if err := c.hasModel(model, "v1"); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if !kept {
			if err := c.wantMissing("{" + model + "@v1}k"); err != nil {
				t.Errorf("%s: %v", when, err)
			}
		} else if v, err := c.get("{" + model + "@v1}k"); err != nil || v != "kept" {
			t.Errorf("%s: GET {%s@v1}k = %q, %v; want kept", when, model, v, err)
		}
		for _, k := range []string{"{" + model + "@v2}k", "{" + model + "}k"} {
			if err := c.wantMissing(k); err != nil {
				t.Errorf("%s: %v", when, err)
			}
		}
	}

	a.rollout("live", "v1")
	c.waitModel("live", "v1")
	check("followed live", "live", true)

	c.stop()
	a.rollout("replayed", "v1")
	a.rollout("between", "v2")
	a.rollout("between", "v1")
	c.start()
	c.waitSynced()
	check("replayed", "replayed", true)
	check("replayed", "between", false)

	c.stop()
	c.start()
	c.waitSynced()
	check("after a restart", "live", true)
	check("after a restart", "replayed", true)
	check("after a restart", "between", false)
}

// TestCatchUpAfterRestart stops daemon C, rolls out twice, and starts C on
// the same data directory: once WaitSynced returns, its first answers are
// already right.
func TestCatchUpAfterRestart(t *testing.T) {
	srv, a, c := syncedPair(t)
	a.rollout("clip", "v1")
	c.waitModel("clip", "v1")
	writeUnder(t, "v1", c)
	if err := c.cache.Flush(); err != nil {
		t.Fatal(err)
	}

	c.stop()
	a.rollout("clip", "v2")
	// Many more changes than one batch, as an operator script would make.
	js := connect(t, srv.ClientURL())
	kv, err := js.KeyValue(context.Background(), "models")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		if _, err := kv.PutString(context.Background(), fmt.Sprintf("m%d", i%100), fmt.Sprintf("v%d", i/100)); err != nil {
			t.Fatal(err)
		}
	}
	r3 := a.rollout("clip", "v3")

	c.start()
	start := time.Now()
	if c.cache.ModelsRevision() >= r3 {
		t.Fatalf("restarted at revision %d, already past %d", c.cache.ModelsRevision(), r3)
	}
	// The persisted registry still says v1: a GET now would serve v1's
	// entries. The server calls WaitSynced first.
	c.waitSynced()
	t.Logf("caught up with %d changes in %v", r3-2, time.Since(start))
	if got := c.c.appliedRev(); got < r3 {
		t.Fatalf("WaitSynced returned at revision %d, before %d", got, r3)
	}
	firstAnswersAt(t, c, "v1", "v3")
	if err := c.wantStale("{clip@v2}x"); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := c.hasModel(fmt.Sprintf("m%d", i), "v14"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCatchUpAfterCut cuts C off from NATS through a proxy while rollouts
// happen; C keeps serving meanwhile, and once it is back WaitSynced holds
// until it caught up.
func TestCatchUpAfterCut(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	p := natstest.Proxy(t, srv.ClientURL())
	a := newDaemon(t, "a", testOptions(t, srv.ClientURL(), "models"))
	c := newDaemon(t, "c", testOptions(t, p.URL(), "models"))
	a.waitSynced()
	c.waitSynced()
	a.rollout("clip", "v1")
	c.waitModel("clip", "v1")
	writeUnder(t, "v1", c)

	p.Cut()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if c.c.Status().NATSConnected {
			return errors.New("still connected")
		}
		return nil
	})
	// Cut off, C serves with what it has, without waiting.
	if !c.c.Synced() {
		t.Fatal("cut-off daemon is not synced")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := c.c.WaitSynced(ctx); err != nil {
		t.Fatalf("WaitSynced while cut off: %v", err)
	}
	if _, err := c.c.Rollout(context.Background(), tiertest.Rollout(t, "clip", "v9")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Rollout while cut off: %v, want ErrUnavailable", err)
	}

	a.rollout("clip", "v2")
	r3 := a.rollout("clip", "v3")
	if err := c.hasModel("clip", "v1"); err != nil {
		t.Fatal(err)
	}

	p.Restore()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if !c.c.Status().NATSConnected {
			return errors.New("not reconnected yet")
		}
		return nil
	})
	c.waitSynced()
	if got := c.c.appliedRev(); got < r3 {
		t.Fatalf("WaitSynced returned at revision %d, before %d", got, r3)
	}
	firstAnswersAt(t, c, "v1", "v3")
}

// TestResync covers the paths where the changes a daemon missed are no
// longer all in the stream: it must converge on the bucket's current
// values, purging models that vanished.
func TestResync(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	js := connect(t, srv.ClientURL())
	ctx := context.Background()

	t.Run("BucketRecreated", func(t *testing.T) {
		a := newDaemon(t, "a", testOptions(t, srv.ClientURL(), "recreated"))
		c := newDaemon(t, "c", testOptions(t, srv.ClientURL(), "recreated"))
		a.waitSynced()
		c.waitSynced()
		a.rollout("clip", "v1")
		a.rollout("other", "v1")
		a.rollout("gone", "v1")
		a.rollout("clip", "v2")
		c.waitModel("clip", "v2")
		writeUnder(t, "v2", c)
		c.stop()

		// The operator deletes the bucket and starts over: fewer changes
		// than C has applied, and "clip" and "gone" are not in it.
		a.stop()
		if err := js.DeleteKeyValue(ctx, "recreated"); err != nil {
			t.Fatal(err)
		}
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "recreated", History: 8})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.PutString(ctx, "other", "v7"); err != nil {
			t.Fatal(err)
		}

		c.start()
		c.waitSynced()
		if err := c.hasModel("clip", ""); err != nil {
			t.Fatal(err)
		}
		if err := c.hasModel("gone", ""); err != nil {
			t.Fatal(err)
		}
		if err := c.hasModel("other", "v7"); err != nil {
			t.Fatal(err)
		}
		if err := c.wantMissing("{clip}k"); err != nil {
			t.Fatal(err)
		}
		if err := c.wantMissing("{clip@v2}k"); err != nil {
			t.Fatal(err)
		}
		// The cache's revision starts over with the bucket's.
		if got := c.cache.ModelsRevision(); got != 1 {
			t.Fatalf("models revision %d after resync with the new bucket, want 1", got)
		}
		// And it follows the new bucket from there.
		r := c.rollout("clip", "v3")
		if r != 2 {
			t.Fatalf("revision %d in the new bucket, want 2", r)
		}

		// A daemon restarted after the new bucket grew past its old
		// revision still converges.
		// "fresh" is put at a revision below C's old one: replaying from
		// there misses it, the check against the current values does not.
		c.stop()
		if _, err := kv.PutString(ctx, "fresh", "v1"); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := kv.PutString(ctx, "other", "w"+string(rune('0'+i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := kv.Delete(ctx, "clip"); err != nil {
			t.Fatal(err)
		}
		c.start()
		c.waitSynced()
		for _, want := range [][2]string{{"clip", ""}, {"other", "w4"}, {"fresh", "v1"}, {"gone", ""}} {
			if err := c.hasModel(want[0], want[1]); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("HistoryGone", func(t *testing.T) {
		// History 1: each change replaces the key's previous one, so the
		// revisions C missed are gone from the stream.
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "h1", History: 1})
		if err != nil {
			t.Fatal(err)
		}
		a := newDaemon(t, "a", testOptions(t, srv.ClientURL(), "h1"))
		c := newDaemon(t, "c", testOptions(t, srv.ClientURL(), "h1"))
		a.waitSynced()
		c.waitSynced()
		a.rollout("clip", "v1")
		a.rollout("other", "v1")
		c.waitModel("other", "v1")
		writeUnder(t, "v1", c)
		c.mustSet("{fresh@v2}k", "before")
		c.stop()

		a.purge("clip")
		a.rollout("other", "v2")
		// fresh was at v1, then v2: only v2 is left in the stream, and
		// C must not take it for fresh's first rollout.
		a.rollout("fresh", "v1")
		a.rollout("fresh", "v2")
		if err := kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(-1)); err != nil {
			t.Fatal(err)
		}
		c.start()
		c.waitSynced()
		if err := c.hasModel("clip", ""); err != nil {
			t.Fatal(err)
		}
		if err := c.hasModel("other", "v2"); err != nil {
			t.Fatal(err)
		}
		if err := c.wantMissing("{clip}k"); err != nil {
			t.Fatal(err)
		}
		if err := c.hasModel("fresh", "v2"); err != nil {
			t.Fatal(err)
		}
		if err := c.wantMissing("{fresh@v2}k"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("DeleteMarkerPurged", func(t *testing.T) {
		// The stream still holds every revision after C's but one: the
		// delete marker of "clip", removed by purge-deletes. Replaying
		// cannot see it; the check against the current values does.
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "marker", History: 8})
		if err != nil {
			t.Fatal(err)
		}
		a := newDaemon(t, "a", testOptions(t, srv.ClientURL(), "marker"))
		c := newDaemon(t, "c", testOptions(t, srv.ClientURL(), "marker"))
		a.waitSynced()
		c.waitSynced()
		a.rollout("clip", "v1")
		a.rollout("other", "v1")
		c.waitModel("other", "v1")
		writeUnder(t, "v1", c)
		c.stop()

		a.rollout("other", "v2")
		a.purge("clip")
		a.rollout("other", "v3")
		if err := kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(-1)); err != nil {
			t.Fatal(err)
		}
		c.start()
		c.waitSynced()
		if err := c.hasModel("clip", ""); err != nil {
			t.Fatal(err)
		}
		if err := c.hasModel("other", "v3"); err != nil {
			t.Fatal(err)
		}
		if err := c.wantMissing("{clip}k"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RoundTripWhileAway", func(t *testing.T) {
		// clip goes v1 -> v2 -> v1 while C is away and the history is
		// gone: C never saw v2, but its v1 entries predate the round trip
		// and are dropped, as a replay would have.
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "roundtrip", History: 1}); err != nil {
			t.Fatal(err)
		}
		a := newDaemon(t, "a", testOptions(t, srv.ClientURL(), "roundtrip"))
		c := newDaemon(t, "c", testOptions(t, srv.ClientURL(), "roundtrip"))
		a.waitSynced()
		c.waitSynced()
		a.rollout("clip", "v1")
		a.rollout("other", "v1")
		c.waitModel("other", "v1")
		writeUnder(t, "v1", c)
		c.stop()
		a.rollout("clip", "v2")
		a.rollout("clip", "v1")
		a.rollout("other", "v2") // moves the stream's first revision past C's
		c.start()
		c.waitSynced()
		if err := c.hasModel("clip", "v1"); err != nil {
			t.Fatal(err)
		}
		if err := c.wantMissing("{clip}k"); err != nil {
			t.Fatal(err)
		}
		if err := c.wantMissing("{clip@v1}k"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("InvalidEntries", func(t *testing.T) {
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "invalid", History: 8})
		if err != nil {
			t.Fatal(err)
		}
		a := newDaemon(t, "a", testOptions(t, srv.ClientURL(), "invalid"))
		a.waitSynced()
		a.rollout("clip", "v1")
		// Invalid versions, keys that are not EncodeModel's, a key that
		// encodes a name the registry refuses ("{}"), put and deleted.
		for _, bad := range [][2]string{{"clip", "v@2"}, {"clip", "{x}"}, {"clip", ""}, {"_m.Y2xpcA", "v3"}, {"_m.a", "v3"}, {"_m.e30", "v3"}} {
			if _, err := kv.PutString(ctx, bad[0], bad[1]); err != nil {
				t.Fatal(err)
			}
		}
		if err := kv.Delete(ctx, "_m.e30"); err != nil {
			t.Fatal(err)
		}
		r := a.rollout("other", "v1")
		if err := a.hasModel("clip", "v1"); err != nil {
			t.Fatal(err)
		}
		if a.c.appliedRev() < r {
			t.Fatal("not past the invalid entries")
		}
		if n := a.c.invalid.Load(); n != 7 {
			t.Fatalf("%d invalid entries counted, want 7", n)
		}
		// An encoded name is a rollout like any other.
		key, _ := EncodeModel("my model")
		if _, err := kv.PutString(ctx, key, "v1"); err != nil {
			t.Fatal(err)
		}
		a.waitModel("my model", "v1")
	})
}

// syncedPair starts a NATS server and daemons a and c on it, following the
// bucket "models", and returns them once both have synced.
func syncedPair(t *testing.T) (srv *server.Server, a, c *daemon) {
	t.Helper()
	srv = natstest.RunServer(t, nil)
	a = newDaemon(t, "a", testOptions(t, srv.ClientURL(), "models"))
	c = newDaemon(t, "c", testOptions(t, srv.ClientURL(), "models"))
	a.waitSynced()
	c.waitSynced()
	return srv, a, c
}
