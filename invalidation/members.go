package invalidation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Member is a daemon's entry in the members bucket, stored as JSON under
// its node id (encoded as EncodeModel encodes model names).
type Member struct {
	// Node is the daemon's node id.
	Node string `json:"node"`
	// Applied is the registry revision the daemon has applied.
	Applied uint64 `json:"applied"`
	// NATSConnected is always true in a fresh entry (it was written over
	// NATS); it is there for readers of the raw bucket.
	NATSConnected bool `json:"nats_connected"`
	// Version is the daemon's software version.
	Version string `json:"version"`
	// Time is when the daemon wrote the entry, by its clock.
	Time time.Time `json:"time"`
	// Peer is the address other daemons dial for peer fill
	// (Options.PeerAddr); "" when the daemon does not serve peers, and in
	// entries written before daemons announced one.
	Peer string `json:"peer"`
}

// heartbeat is the goroutine that keeps this daemon's member entry alive:
// every HeartbeatInterval, and right after every applied change.
func (c *Cluster) heartbeat() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.HeartbeatInterval)
	defer t.Stop()
	// Failures are logged when they have lasted MemberTTL, when this
	// daemon drops out of the live members: NATS being slow for a beat is
	// no news.
	var failingSince time.Time
	warned := false
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		case <-c.beat:
		}
		err := c.putMember()
		switch {
		case err == nil:
			if warned {
				c.log.Info("announcing this daemon in the members bucket works again")
			}
			failingSince, warned = time.Time{}, false
		case failingSince.IsZero():
			failingSince = time.Now()
			c.log.Debug("announcing this daemon in the members bucket failed", zap.Error(err))
		case !warned && time.Since(failingSince) >= c.opts.MemberTTL:
			warned = true
			c.log.Warn("announcing this daemon in the members bucket keeps failing: other daemons no longer see it as live", zap.Error(err))
		}
	}
}

func (c *Cluster) putMember() error {
	c.mu.Lock()
	kv, connected := c.mu.members, c.mu.connected
	c.mu.Unlock()
	if !connected {
		return nil // nothing to do until reconnected
	}
	ctx, cancel := context.WithTimeout(c.ctx, min(requestTimeout, max(c.opts.HeartbeatInterval, time.Second)))
	defer cancel()
	if kv == nil {
		var err error
		if kv, err = c.bindMembers(ctx); err != nil {
			return err
		}
	}
	applied := c.appliedRev() // now: binding the bucket may have taken a while
	b, err := json.Marshal(Member{
		Node:          c.opts.NodeID,
		Applied:       applied,
		NATSConnected: true,
		Version:       c.opts.Version,
		Time:          time.Now().UTC(),
		Peer:          c.opts.PeerAddr,
	})
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, c.nodeKey, b); err != nil {
		// The bucket may be gone (a memory-backed bucket does not survive a
		// NATS server restart): bind or create it again next time rather
		// than keep writing through a stale handle. A put cut short by
		// Close says nothing of the bucket, and Close needs the handle to
		// delete the entry that put may still have written.
		if c.ctx.Err() == nil {
			c.mu.Lock()
			if c.mu.members == kv {
				c.mu.members = nil
			}
			c.mu.Unlock()
		}
		return fmt.Errorf("invalidation: member entry: %w", err)
	}
	return nil
}

// bindMembers binds the members bucket, creating it if missing, for the
// heartbeat and the members view. A bucket this daemon creates keeps a
// marker when an entry expires (LimitMarkerTTL), so that a watch sees the
// expiry, as it sees the delete of a daemon that closed; a NATS server
// older than 2.11 has no markers, and the bucket is created without.
func (c *Cluster) bindMembers(ctx context.Context) (jetstream.KeyValue, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:      c.opts.MembersBucket,
		Description: "tiercache daemons: node id -> peer address and applied registry revision",
		History:     1,
		TTL:         c.opts.MemberTTL,
		Replicas:    c.opts.Replicas,
		Storage:     jetstream.MemoryStorage,
		// The marker says "expired" to watches running then; it need not
		// outlive the entry it replaces by long, and the server counts it
		// in whole seconds, at least one.
		LimitMarkerTTL: max(c.opts.MemberTTL.Truncate(time.Second), time.Second),
	}
	kv, err := c.bucket(ctx, cfg)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		cfg.LimitMarkerTTL = 0
		kv, err = c.bucket(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.mu.members = kv
	c.mu.Unlock()
	return kv, nil
}

// Members returns the live daemons of the default members bucket
// (DefaultMembersBucket), sorted by node id.
func Members(ctx context.Context, js jetstream.JetStream) ([]Member, error) {
	return MembersIn(ctx, js, DefaultMembersBucket)
}

// MembersIn returns the live daemons of the members bucket, sorted by node
// id: those whose entry has not expired (MemberTTL) and that did not leave
// (Close deletes the entry). A missing bucket means no daemon: nil, nil.
func MembersIn(ctx context.Context, js jetstream.JetStream, bucket string) ([]Member, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invalidation: members bucket %q: %w", bucket, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("invalidation: members bucket %q: %w", bucket, err)
	}
	defer stopWatcher(w)
	var out []Member
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("invalidation: members bucket %q: watch ended", bucket)
			}
			if e == nil {
				slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Node, b.Node) })
				return out, nil
			}
			var m Member
			if json.Unmarshal(e.Value(), &m) == nil && m.Node != "" {
				out = append(out, m)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("invalidation: members bucket %q: %w", bucket, ctx.Err())
		}
	}
}

// WaitApplied waits until every live daemon of the default members bucket
// has applied registry revision rev; see WaitAppliedIn.
func WaitApplied(ctx context.Context, js jetstream.JetStream, rev uint64) (missing []string, err error) {
	return WaitAppliedIn(ctx, js, DefaultMembersBucket, rev)
}

// WaitAppliedIn waits until every live daemon of the members bucket has
// applied registry revision rev (tierctl rollout --wait) and returns nil,
// nil. When ctx ends first it returns the node ids of the live daemons
// that had not, and ctx's error. A daemon that stops announcing itself
// stops being live after its bucket's TTL.
func WaitAppliedIn(ctx context.Context, js jetstream.JetStream, bucket string, rev uint64) (missing []string, err error) {
	const maxPoll = 200 * time.Millisecond
	poll := 10 * time.Millisecond
	for {
		members, err := MembersIn(ctx, js, bucket)
		if err == nil {
			missing = missing[:0]
			for _, m := range members {
				if m.Applied < rev {
					missing = append(missing, m.Node)
				}
			}
			if len(missing) == 0 {
				return nil, nil
			}
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			if len(missing) == 0 && err != nil {
				return nil, err
			}
			return missing, ctx.Err()
		case <-t.C:
		}
		poll = min(2*poll, maxPoll)
	}
}

// Members returns the live daemons of this daemon's members bucket.
func (c *Cluster) Members(ctx context.Context) ([]Member, error) {
	return MembersIn(ctx, c.js, c.opts.MembersBucket)
}

// WaitApplied waits until every live daemon of this daemon's members
// bucket has applied rev; see WaitAppliedIn.
func (c *Cluster) WaitApplied(ctx context.Context, rev uint64) ([]string, error) {
	return WaitAppliedIn(ctx, c.js, c.opts.MembersBucket, rev)
}
