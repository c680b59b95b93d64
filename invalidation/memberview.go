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

// errMembersSilent ends a members session whose watch delivered nothing
// for longer than this daemon's own heartbeats allow: its consumer was
// lost, or the bucket was recreated under it.
var errMembersSilent = errors.New("invalidation: members watch silent")

// LiveMembers returns the live members as the members view last saw them,
// sorted by node id: this daemon's copy of the members bucket, kept by a
// watch, so the call makes no NATS request. The slice is the caller's.
//
// The view is kept only by a daemon that serves peers (Options.PeerAddr)
// or asked to be told of changes (Options.OnMembersChange); otherwise, and
// until the bucket has been read once, it is empty. While NATS is
// unreachable it stays as it was; see the package documentation.
func (c *Cluster) LiveMembers() []Member {
	if p := c.view.members.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// watchesMembers reports whether the daemon keeps the members view.
func (o *Options) watchesMembers() bool { return o.PeerAddr != "" || o.OnMembersChange != nil }

// watchMembers is the goroutine that keeps the members view: while
// connected it runs sessions that watch the members bucket.
func (c *Cluster) watchMembers() {
	defer c.wg.Done()
	c.runSessions("watching the members bucket", c.memberKick, c.membersSession)
}

// seenMember is a member entry and when the view received it.
type seenMember struct {
	m  Member
	at time.Time
}

// membersSession watches the members bucket for connection generation gen
// and keeps the view: the bucket's entries when the watch starts replace
// the view, then each put, delete (a daemon that closed) and purge (the
// marker of an expired entry) updates it. It returns nil when the
// connection changed (or the loops stop) and an error when watching failed
// and should be retried.
func (c *Cluster) membersSession(gen uint64) error {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	kv, err := c.bindMembers(ctx)
	if err != nil {
		return err
	}
	sctx, scancel := context.WithTimeout(ctx, requestTimeout)
	st, err := kv.Status(sctx)
	scancel()
	if err != nil {
		return fmt.Errorf("invalidation: members bucket %q: %w", c.opts.MembersBucket, err)
	}
	// A bucket without markers (created by an older daemon, or on a NATS
	// server before 2.11) removes an expired entry without telling
	// watches: the view drops an entry it has not seen refreshed for the
	// bucket's TTL. With markers that is only a safety net, for events a
	// watch may miss (the bucket recreated under it), at twice the TTL.
	expireAfter := st.TTL()
	if st.LimitMarkerTTL() > 0 {
		expireAfter *= 2
	}

	// Creating the watcher is bounded by requestTimeout, its life is not.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	timer := time.AfterFunc(requestTimeout, wcancel)
	w, err := kv.WatchAll(wctx)
	if !timer.Stop() && err == nil {
		stopWatcher(w)
		err = context.DeadlineExceeded
	}
	if err != nil {
		return fmt.Errorf("invalidation: watching members bucket %q: %w", c.opts.MembersBucket, err)
	}
	defer stopWatcher(w)

	set := map[string]seenMember{} // by KV key
	loaded := false                // the entries present at the start are in set
	delivered := time.Now()
	tick := time.NewTicker(c.opts.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.quit:
			return nil
		case <-c.memberKick:
			if g, ok := c.connState(); g != gen || !ok {
				return nil
			}
		case e, ok := <-w.Updates():
			now := time.Now()
			delivered = now
			// Publish once for what has been delivered so far.
		batch:
			for n := 1; ok; n++ {
				if e == nil {
					loaded = true
				} else {
					c.applyMember(set, e, now)
				}
				if n == maxBatch {
					break
				}
				select {
				case e, ok = <-w.Updates():
				default:
					break batch
				}
			}
			if loaded {
				c.publishMembers(set)
			}
			if !ok {
				return errors.New("invalidation: members watch ended")
			}
		case now := <-tick.C:
			if !loaded {
				if now.Sub(delivered) > requestTimeout {
					return fmt.Errorf("%w: the bucket's entries not delivered within %v", errMembersSilent, requestTimeout)
				}
				continue
			}
			if expireAfter > 0 && expireMembers(set, now.Add(-expireAfter)) {
				c.publishMembers(set)
			}
			// This daemon's own heartbeat puts an entry every
			// HeartbeatInterval: a watch silent for MemberTTL is lost.
			if now.Sub(delivered) > c.opts.MemberTTL {
				return fmt.Errorf("%w: nothing delivered for %v", errMembersSilent, c.opts.MemberTTL)
			}
		}
	}
}

// applyMember applies a members bucket entry to set: a put adds or
// refreshes the member, a delete or purge removes it, and so does a put
// that is not a member entry.
func (c *Cluster) applyMember(set map[string]seenMember, e jetstream.KeyValueEntry, now time.Time) {
	if e.Operation() != jetstream.KeyValuePut {
		delete(set, e.Key())
		return
	}
	var m Member
	if err := json.Unmarshal(e.Value(), &m); err != nil || m.Node == "" {
		delete(set, e.Key())
		c.log.Debug("skipping a members bucket entry that is not a member", zap.String("key", e.Key()), zap.Error(err))
		return
	}
	set[e.Key()] = seenMember{m: m, at: now}
}

// expireMembers removes the members last seen before deadline and reports
// whether it removed any.
func expireMembers(set map[string]seenMember, deadline time.Time) bool {
	n := len(set)
	for k, s := range set {
		if s.at.Before(deadline) {
			delete(set, k)
		}
	}
	return len(set) != n
}

// publishMembers replaces the view with set, and wakes the notifier if a
// member joined, left or changed its peer address.
func (c *Cluster) publishMembers(set map[string]seenMember) {
	ms := make([]Member, 0, len(set))
	for _, s := range set {
		ms = append(ms, s.m)
	}
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.Node, b.Node) })
	if old := c.view.members.Swap(&ms); old == nil || !sameMembership(*old, ms) {
		wake(c.view.changed)
	}
}

// sameMembership reports whether two sorted views hold the same members
// with the same peer addresses; heartbeats change only the other fields.
func sameMembership(a, b []Member) bool {
	return slices.EqualFunc(a, b, func(x, y Member) bool { return x.Node == y.Node && x.Peer == y.Peer })
}

// notifyMembers is the goroutine that calls Options.OnMembersChange, off
// the watch's path so that a slow callback never holds deliveries up.
// Changes that come while it runs are coalesced into one call with the
// latest view.
func (c *Cluster) notifyMembers() {
	defer c.wg.Done()
	var last []Member
	for {
		select {
		case <-c.quit:
			return
		case <-c.view.changed:
		}
		cur := c.LiveMembers()
		if sameMembership(last, cur) {
			continue
		}
		last = cur
		c.opts.OnMembersChange(slices.Clone(cur))
	}
}
