package invalidation

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tiercache/tiercache/tier"
)

// Publisher publishes changes of the model registry to its bucket as any
// NATS client may: a rollout puts the model's key (EncodeModel) with the
// bare version as its value, a purge deletes it. Cluster publishes
// MODEL.ROLLOUT and MODEL.PURGE through one, tierctl through another (on a
// host that may run no daemon). A Publisher does not wait for any daemon
// to apply a change: Cluster waits for its own, WaitAppliedIn for every
// live one.
type Publisher struct {
	// JS is the JetStream context of the connection to publish on.
	JS jetstream.JetStream
	// Bucket is the name of the registry bucket.
	Bucket string
	// Perms, if not nil, is the PermissionWatch that the connection's
	// error handler feeds: a change NATS refuses for lack of permission
	// then fails at once, instead of when ctx ends.
	Perms *PermissionWatch
}

// Rollout applies ch, a rollout (tier.NewRollout), to the bucket: it sets
// the model's version, as `nats kv put BUCKET MODEL VERSION` does, and
// returns the registry revision of the change. ch was checked when it was
// made; Rollout checks nothing again. A refusal is an error wrapping
// ErrForbidden; any other failure to publish is an error wrapping
// ErrUnavailable. It panics if ch is not a rollout.
func (p *Publisher) Rollout(ctx context.Context, ch tier.ModelChange) (uint64, error) {
	if !ch.IsRollout() {
		panic("invalidation: Publisher.Rollout of " + ch.String() + ", not a rollout")
	}
	return p.publish(ctx, "rollout", ch.Model(), func(ctx context.Context, subject string) (*jetstream.PubAck, error) {
		return p.JS.Publish(ctx, subject, []byte(ch.Version()))
	})
}

// Purge applies ch, a purge (tier.NewPurge), to the bucket: it deletes the
// model, as `nats kv del BUCKET MODEL` does (every daemon then drops the
// model's entries and forgets its version), and returns the registry
// revision of the delete. Errors are as Rollout's. It panics if ch is not
// a purge.
func (p *Publisher) Purge(ctx context.Context, ch tier.ModelChange) (uint64, error) {
	if !ch.IsPurge() {
		panic("invalidation: Publisher.Purge of " + ch.String() + ", not a purge")
	}
	return p.publish(ctx, "purge", ch.Model(), func(ctx context.Context, subject string) (*jetstream.PubAck, error) {
		// kv.Delete does not return the revision of its delete marker, so
		// publish the same marker: the KV-Operation header on the key's
		// subject.
		m := nats.NewMsg(subject)
		m.Header.Set("KV-Operation", "DEL")
		return p.JS.PublishMsg(ctx, m)
	})
}

// publish sends one change of model (what: "rollout" or "purge") to the
// subject of its key, watching for a refusal, and returns its revision.
func (p *Publisher) publish(ctx context.Context, what, model string, send func(context.Context, string) (*jetstream.PubAck, error)) (uint64, error) {
	subject := KVSubject(p.Bucket, modelKey(model))
	pctx, stop := ctx, context.CancelFunc(func() {})
	if p.Perms != nil {
		pctx, stop = p.Perms.Watch(ctx, subject)
	}
	ack, err := send(pctx, subject)
	refused := Refused(pctx)
	stop()
	switch {
	case refused != nil:
		return 0, fmt.Errorf("%s of %q: %w", what, model, refused)
	case err != nil:
		return 0, fmt.Errorf("%w: %s of %q: %v", ErrUnavailable, what, model, err)
	}
	return ack.Sequence, nil
}
