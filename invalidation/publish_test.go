package invalidation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// TestPublisher publishes to a bucket no daemon follows, as tierctl does
// from a pipeline host: each change is the bucket entry `nats kv` would
// write, at the revision it returns; a daemon started afterwards applies
// the result.
func TestPublisher(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	js := connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "models", History: BucketHistory})
	if err != nil {
		t.Fatal(err)
	}
	p := &Publisher{JS: js, Bucket: "models"}

	r1, err := p.Rollout(ctx, tiertest.Rollout(t, "openai/clip-vit-large-patch14", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := p.Rollout(ctx, tiertest.Rollout(t, "my model", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		key, version string
		rev          uint64
	}{{"openai/clip-vit-large-patch14", "v1", r1}, {"_m.bXkgbW9kZWw", "v2", r2}} {
		e, err := kv.Get(ctx, want.key)
		if err != nil || string(e.Value()) != want.version || e.Revision() != want.rev {
			t.Fatalf("bucket entry %s: %v; want %s at revision %d", want.key, err, want.version, want.rev)
		}
	}
	r3, err := p.Purge(ctx, tiertest.Purge(t, "my model"))
	if err != nil {
		t.Fatal(err)
	}
	if !(r1 < r2 && r2 < r3) {
		t.Fatalf("revisions %d %d %d do not increase", r1, r2, r3)
	}
	if _, err := kv.Get(ctx, "_m.bXkgbW9kZWw"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("purged entry: %v, want ErrKeyNotFound", err)
	}
	hist, err := kv.History(ctx, "_m.bXkgbW9kZWw")
	if err != nil || len(hist) != 2 || hist[1].Operation() != jetstream.KeyValueDelete || hist[1].Revision() != r3 {
		t.Fatalf("history of the purged key: %v, %v; want its delete at revision %d", hist, err, r3)
	}

	// An invalid change cannot be made, so it never reaches a Publisher.
	if _, err := tier.NewRollout("clip", "v@1"); !errors.Is(err, ErrInvalidVersion) {
		t.Fatalf("Rollout of v@1: %v, want ErrInvalidVersion", err)
	}
	if _, err := tier.NewPurge("a{b}"); !errors.Is(err, ErrInvalidModel) {
		t.Fatalf("Purge of a{b}: %v, want ErrInvalidModel", err)
	}
	if _, err := (&Publisher{JS: js, Bucket: "missing"}).Rollout(ctx, tiertest.Rollout(t, "clip", "v1")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Rollout to a missing bucket: %v, want ErrUnavailable", err)
	}

	d := newDaemon(t, "d", testOptions(t, srv.ClientURL(), "models"))
	d.waitSynced()
	if err := d.hasModel("openai/clip-vit-large-patch14", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := d.hasModel("my model", ""); err != nil {
		t.Fatal(err)
	}
	if got := d.cache.ModelsRevision(); got != r3 {
		t.Fatalf("daemon at revision %d, want %d", got, r3)
	}
}

// TestPublisherWrongChange: a Publisher takes a rollout only as a rollout
// and a purge only as a purge; anything else is a programmer error, which
// panics before anything is published.
func TestPublisherWrongChange(t *testing.T) {
	p := &Publisher{Bucket: "models"} // no connection: nothing may be sent
	ctx := context.Background()
	for name, call := range map[string]func(){
		"Rollout of a purge": func() { _, _ = p.Rollout(ctx, tiertest.Purge(t, "clip")) },
		"Rollout of nothing": func() { _, _ = p.Rollout(ctx, tier.ModelChange{}) },
		"Purge of a rollout": func() { _, _ = p.Purge(ctx, tiertest.Rollout(t, "clip", "v1")) },
		"Purge of nothing":   func() { _, _ = p.Purge(ctx, tier.ModelChange{}) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(fmt.Sprint(r), "invalidation: Publisher.") {
					t.Errorf("%s: recovered %v, want a panic", name, r)
				}
			}()
			call()
		}()
	}
}
