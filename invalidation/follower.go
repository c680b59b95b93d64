package invalidation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/zap"
)

// follow is the follower goroutine: while connected it runs sessions that
// watch the registry bucket and apply its changes to the cache.
func (c *Cluster) follow() {
	defer c.wg.Done()
	c.runSessions("following the model registry", c.kick, c.session)
}

// runSessions runs session for each connection generation while connected,
// until the loops stop: a session returns nil when the connection changed
// under it (a reconnect starts a new one) and an error when it failed,
// which is retried with a growing pause. kick is woken when the
// connection's state changes; what names the work in the log.
func (c *Cluster) runSessions(what string, kick <-chan struct{}, session func(gen uint64) error) {
	failures := 0
	for {
		gen, connected := c.connState()
		if !connected {
			select {
			case <-kick:
				continue
			case <-c.quit:
				return
			}
		}
		err := session(gen)
		select {
		case <-c.quit:
			return
		default:
		}
		if g, ok := c.connState(); g != gen || !ok {
			err = nil // the connection changed under the session: no news
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		if failures == 1 {
			c.log.Warn(what+" failed; retrying", zap.Error(err))
		} else {
			c.log.Debug(what+" failed; retrying", zap.Error(err), zap.Int("failures", failures))
		}
		t := time.NewTimer(min(50*time.Millisecond<<min(failures, 6), 2*time.Second))
		select {
		case <-t.C:
		case <-kick:
			t.Stop()
		case <-c.quit:
			t.Stop()
			return
		}
	}
}

// errStalled ends a session whose watcher stopped delivering although the
// bucket moved on (e.g. its consumer was lost with a NATS node).
var errStalled = errors.New("invalidation: registry watch stalled")

// session follows the bucket for connection generation gen. It returns nil
// when the connection changed (or the loops stop), an error when following
// failed and should be retried.
//
// A session first reads the stream's bounds and a snapshot of the current
// values. If every change after the applied revision is still in the
// stream, it replays them in order (ResumeFromRevision); otherwise it
// applies the snapshot (resync) and resumes after it. Either way it then
// applies changes as they come, and once the initial backlog is applied the
// sync that the (re)connection began ends.
func (c *Cluster) session(gen uint64) error {
	// The session's watcher lives as long as ctx (nats.go unsubscribes it
	// when ctx ends), so ctx has no deadline: requests get their own.
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	kv, err := c.bindModels(ctx)
	if err != nil {
		return err
	}
	sctx, scancel := context.WithTimeout(ctx, requestTimeout)
	stream, err := c.js.Stream(sctx, "KV_"+c.opts.Bucket)
	scancel()
	if err != nil {
		return fmt.Errorf("invalidation: binding the stream of bucket %q: %w", c.opts.Bucket, err)
	}
	info, err := streamState(ctx, stream)
	if err != nil {
		return err
	}
	snap, err := c.snapshot(ctx, kv)
	if err != nil {
		return err
	}
	applied := c.appliedRev()
	first, last := info.FirstSeq, info.LastSeq
	replay := applied <= last && first <= applied+1
	if !replay {
		c.resync(snap, applied, first, last)
	}

	// Creating the watcher is bounded by requestTimeout, its life is not.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	timer := time.AfterFunc(requestTimeout, wcancel)
	w, err := kv.WatchAll(wctx, jetstream.IncludeHistory(), jetstream.ResumeFromRevision(c.appliedRev()+1))
	if !timer.Stop() && err == nil {
		stopWatcher(w)
		err = context.DeadlineExceeded
	}
	if err != nil {
		return fmt.Errorf("invalidation: watching bucket %q: %w", c.opts.Bucket, err)
	}
	defer stopWatcher(w)

	// touched records the revision of each model's last change replayed in
	// this session, for the check against the snapshot.
	touched := map[string]uint64{}
	var pending []jetstream.KeyValueEntry // delivered, not yet applied
	caughtUp := false
	catchUp := func() {
		caughtUp = true
		if replay {
			c.verify(snap, touched)
		}
		if rev := c.appliedRev(); rev < last {
			c.apply(nil, last) // the changes up to last are all applied
		}
		touched, snap = nil, snapshot{}
		if c.endSync(gen) {
			c.log.Debug("model registry caught up", zap.Uint64("revision", c.appliedRev()))
		}
	}
	if c.appliedRev() >= last && !replay {
		catchUp()
	}

	stallWindow := 2 * c.opts.HeartbeatInterval
	stall := time.NewTicker(stallWindow)
	defer stall.Stop()
	var stallAt uint64 // the bucket's last revision when first seen behind it
	var stallSince time.Time
	delivered := time.Now() // the last delivery from the watcher
	for {
		select {
		case <-c.quit:
			return nil
		case <-c.kick:
			if g, ok := c.connState(); g != gen || !ok {
				return nil
			}
		case e, ok := <-w.Updates():
			delivered = time.Now()
			// Changes are applied in batches: while catching up, the whole
			// backlog (up to maxBatch) at once; then whatever has been
			// delivered. A batch persists the registry once, and drops each
			// model's stale entries once (see compress).
			marker := e == nil
			if e != nil {
				pending = append(pending, e)
			}
		more:
			for ok && !marker && len(pending) < maxBatch {
				select {
				case e, ok = <-w.Updates():
					if e == nil {
						marker = ok
					} else {
						pending = append(pending, e)
					}
				default:
					break more
				}
			}
			if !caughtUp && !marker && len(pending) > 0 {
				// The watcher's marker says the backlog present when it
				// started has been delivered; Delta, what is left of it.
				e := pending[len(pending)-1]
				marker = e.Delta() == 0 && e.Revision() >= last
			}
			if caughtUp || marker || !ok || len(pending) >= maxBatch {
				c.applyEntries(pending, touched)
				clear(pending)
				pending = pending[:0]
			}
			if !ok {
				return errors.New("invalidation: registry watch ended")
			}
			if marker && !caughtUp {
				catchUp()
			}
		case <-stall.C:
			if !caughtUp {
				// The backlog is applied in one batch, so only deliveries
				// show progress.
				if time.Since(delivered) > requestTimeout {
					return fmt.Errorf("%w while catching up: nothing delivered for %v", errStalled, requestTimeout)
				}
				continue
			}
			st, err := streamState(ctx, stream)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return err // the bucket was deleted: bind (or create) it again
			}
			if err != nil {
				continue // JetStream is busy or electing: the next check retries
			}
			applied := c.appliedRev()
			switch {
			case st.LastSeq < applied:
				c.log.Warn("the registry bucket's revisions went back (was it recreated?): resynchronising",
					zap.Uint64("applied", applied), zap.Uint64("bucket_last", st.LastSeq))
				return errStalled
			case st.LastSeq <= applied:
				stallAt = 0
			case stallAt == 0 || applied >= stallAt:
				stallAt, stallSince = st.LastSeq, time.Now()
			case time.Since(stallSince) >= stallWindow:
				// Still short of what the bucket held a while ago.
				return fmt.Errorf("%w at revision %d while the bucket is at %d", errStalled, applied, st.LastSeq)
			}
		}
	}
}

func streamState(ctx context.Context, s jetstream.Stream) (jetstream.StreamState, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, fmt.Errorf("invalidation: reading the registry stream's state: %w", err)
	}
	return info.State, nil
}

// bindModels binds the registry bucket, creating it if missing, and makes
// it available to Rollout and Purge.
func (c *Cluster) bindModels(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := c.bucket(ctx, jetstream.KeyValueConfig{
		Bucket:      c.opts.Bucket,
		Description: "tiercache model registry: MODEL -> VERSION",
		History:     BucketHistory,
		Replicas:    c.opts.Replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.mu.models = kv
	c.mu.Unlock()
	return kv, nil
}

// bucket binds the bucket cfg names, creating it with cfg if missing. An
// existing bucket is used as it is.
func (c *Cluster) bucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	kv, err := c.js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = c.js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = c.js.KeyValue(ctx, cfg.Bucket) // another daemon created it first
		} else if err == nil {
			c.log.Info("created KeyValue bucket", zap.String("bucket", cfg.Bucket), zap.Int("replicas", cfg.Replicas))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("invalidation: binding bucket %q: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// snapshot is the registry bucket's current state: the last entry of every
// key (deletes included), by model.
type snapshot struct {
	entries map[string]snapEntry
	maxRev  uint64
}

type snapEntry struct {
	rev    uint64
	change tier.ModelChange // a purge for a delete or purge marker
}

// snapshot reads the last entry of every key of the bucket.
func (c *Cluster) snapshot(ctx context.Context, kv jetstream.KeyValue) (snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return snapshot{}, fmt.Errorf("invalidation: reading bucket %q: %w", c.opts.Bucket, err)
	}
	defer stopWatcher(w)
	s := snapshot{entries: map[string]snapEntry{}}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return snapshot{}, fmt.Errorf("invalidation: reading bucket %q: watch ended", c.opts.Bucket)
			}
			if e == nil {
				return s, nil
			}
			s.maxRev = max(s.maxRev, e.Revision())
			if ch, ok := c.decodeEntry(e); ok {
				s.entries[ch.Model()] = snapEntry{rev: e.Revision(), change: ch}
			}
			if e.Delta() == 0 {
				return s, nil
			}
		case <-ctx.Done():
			return snapshot{}, fmt.Errorf("invalidation: reading bucket %q: %w", c.opts.Bucket, ctx.Err())
		}
	}
}

// stopWatcher stops w and drains its channel until nats.go closes it, so
// that its delivery goroutine is never left blocked on a send.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}

// decodeEntry returns the change a registry entry makes: a put is a
// rollout, a delete or purge marker a purge. The bucket is an edge (any
// NATS client may write to it), so this is where an entry's model name and
// version are checked, once, as the change is made (tier.NewRollout,
// tier.NewPurge). An entry whose key or value is invalid is logged, counted
// and reported as not ok.
func (c *Cluster) decodeEntry(e jetstream.KeyValueEntry) (tier.ModelChange, bool) {
	var ch tier.ModelChange
	model, err := decodeKey(e.Key())
	if err == nil {
		if e.Operation() == jetstream.KeyValuePut {
			ch, err = tier.NewRollout(model, string(e.Value()))
		} else {
			ch, err = tier.NewPurge(model)
		}
	}
	if err != nil {
		c.invalid.Add(1)
		c.log.Warn("skipping an invalid model registry entry", zap.String("key", e.Key()),
			zap.Uint64("revision", e.Revision()), zap.Error(err))
		return tier.ModelChange{}, false
	}
	return ch, true
}

// maxBatch bounds the changes applied at once.
const maxBatch = 4096

// applyEntries applies changes delivered by the watcher, in order, as one
// registry update.
func (c *Cluster) applyEntries(batch []jetstream.KeyValueEntry, touched map[string]uint64) {
	applied := c.appliedRev()
	var changes []tier.ModelChange
	rev := applied
	for _, e := range batch {
		if e.Revision() <= rev {
			continue // delivered again after a consumer reset
		}
		rev = e.Revision()
		ch, ok := c.decodeEntry(e)
		if !ok {
			continue // skipped for good: the revision still moves past it
		}
		changes = append(changes, ch)
		if touched != nil {
			touched[ch.Model()] = rev
		}
		if len(batch) <= 16 {
			if ch.IsPurge() {
				c.log.Info("model purged", zap.String("model", ch.Model()), zap.Uint64("revision", rev))
			} else {
				c.log.Info("model rollout applied", zap.String("model", ch.Model()), zap.String("version", ch.Version()), zap.Uint64("revision", rev))
			}
		}
	}
	if rev == applied {
		return
	}
	if len(batch) > 16 {
		c.log.Info("model registry changes applied", zap.Int("changes", len(changes)), zap.Uint64("revision", rev))
	}
	c.apply(compress(changes, c.cache.Model), rev)
}

// compress reduces a sequence of registry changes to one with the same
// effect on the cache and at most two changes per model, in order of first
// appearance: the final version if it differs from the current one; if a
// model came back to its current version (v1, v2, v1), a change away and
// back, so that its entries are still dropped as the full sequence would
// have; nothing if every change repeated the current version. A model
// without a version at the start is the exception: its first rollout keeps
// the entries written for its version before it (tier.ModelState.Kept), a
// later change drops them, so a sequence of several changes that ends at a
// version becomes a rollout to another version and then to it (three
// changes, v1, purge, v1, when it named no other). Applying fewer changes
// matters because each one drops the model's stale entries from L2 with
// range deletes.
func compress(changes []tier.ModelChange, current func(model string) (string, bool)) []tier.ModelChange {
	if len(changes) <= 1 {
		return changes
	}
	type state struct {
		start, final string           // versions: at the start, after the changes so far
		last         tier.ModelChange // the change to final
		mid          tier.ModelChange // the last change to a version other than start
		changed      bool
		steps        int                 // changes of the version
		seen         [2]tier.ModelChange // the last two rollouts to distinct versions, latest first
	}
	states := map[string]*state{}
	var order []string
	for _, ch := range changes {
		model, v := ch.Model(), ch.Version()
		st := states[model]
		if st == nil {
			cur, _ := current(model)
			st = &state{start: cur, final: cur}
			states[model] = st
			order = append(order, model)
		}
		if v != st.final {
			if v != st.start {
				st.mid = ch
			}
			st.final, st.last = v, ch
			st.changed = true
			st.steps++
			if ch.IsRollout() && v != st.seen[0].Version() {
				st.seen[0], st.seen[1] = ch, st.seen[0]
			}
		}
	}
	out := changes[:0:0]
	for _, model := range order {
		st := states[model]
		switch {
		case !st.changed:
		case st.start == "" && st.final != "" && st.steps > 1:
			// seen[0] is last; seen[1], if any, another version.
			if st.seen[1].IsRollout() {
				out = append(out, st.seen[1], st.last)
			} else {
				out = append(out, st.last, st.last.AsPurge(), st.last)
			}
		case st.final != st.start:
			out = append(out, st.last)
		default:
			out = append(out, st.mid, st.last)
		}
	}
	return out
}

// apply applies changes to the cache as revision rev and announces it.
func (c *Cluster) apply(changes []tier.ModelChange, rev uint64) { c.applyAt(changes, rev, false) }

// applyAt is apply; with exact the cache records rev even if it is lower
// than its revision (the bucket was recreated).
func (c *Cluster) applyAt(changes []tier.ModelChange, rev uint64, exact bool) {
	// The cache publishes the changes at once and persists them (and drops
	// the stale entries from disk) in the background: the bucket is the
	// registry's home, and a restart replays it from the persisted revision.
	if exact {
		c.cache.ResyncModelsAsync(changes, rev)
	} else {
		c.cache.ApplyModelsAsync(changes, rev)
	}
	c.setApplied(rev)
	wake(c.beat)
}

// resync brings the cache to the snapshot's state when the changes since
// the applied revision are no longer all in the stream: models absent from
// the bucket or deleted are purged, differing versions applied. A model
// whose version is unchanged but whose entry is newer than the applied
// revision is purged and set again, as replaying its history (say v1, v2,
// v1) would have dropped its entries.
func (c *Cluster) resync(s snapshot, applied, first, last uint64) {
	// After the bucket was recreated its revisions are not comparable with
	// the applied one.
	comparable := applied <= last
	local := c.localVersions()
	var changes []tier.ModelChange
	for _, model := range sortedKeys(s.entries) {
		e := s.entries[model]
		lv, known := local[model]
		switch {
		case e.change.IsPurge():
			if known {
				changes = append(changes, e.change)
			}
		case !known:
			changes = append(changes, rolloutAfterGap(e.change)...)
		case lv != e.change.Version():
			changes = append(changes, e.change)
		case comparable && e.rev > applied:
			changes = append(changes, e.change.AsPurge(), e.change)
		}
	}
	for _, model := range sortedKeys(local) {
		if _, ok := s.entries[model]; !ok {
			changes = c.appendPurge(changes, model)
		}
	}
	rev := max(s.maxRev, last)
	c.applyAt(changes, rev, !comparable)
	c.log.Info("model registry resynchronised from the bucket's current values (its history from the applied revision is gone)",
		zap.Uint64("applied", applied), zap.Uint64("bucket_first", first), zap.Uint64("bucket_last", last),
		zap.Int("changes", len(changes)), zap.Uint64("revision", rev))
}

// localVersions returns the version the cache has of each model it has
// one of, by model.
func (c *Cluster) localVersions() map[string]string {
	local := map[string]string{}
	for _, m := range c.cache.Models() {
		local[m[0]] = m[1]
	}
	return local
}

// rolloutAfterGap is the changes that bring a model the cache has no
// version for to the version of ch, a rollout, when the changes in between
// are not known: a single first rollout would keep the entries written for
// that version before it (tier.ModelState.Kept), but another version in
// between would have dropped them, so they are dropped.
func rolloutAfterGap(ch tier.ModelChange) []tier.ModelChange {
	return []tier.ModelChange{ch, ch.AsPurge(), ch}
}

// appendPurge appends to changes the purge of model, a model of the
// cache's registry that the bucket no longer has. Its name was checked
// when the cache took it, so NewPurge refuses it only if the cache's
// persisted registry was damaged; such a model is logged and left alone.
func (c *Cluster) appendPurge(changes []tier.ModelChange, model string) []tier.ModelChange {
	ch, err := tier.NewPurge(model)
	if err != nil {
		c.log.Warn("cannot purge a model of the local registry", zap.String("model", model), zap.Error(err))
		return changes
	}
	return append(changes, ch)
}

// verify checks, after a replay caught up, that the cache agrees with the
// snapshot taken before it, and fixes what does not: a delete marker
// removed from the stream (nats kv purge-deletes) or a bucket recreated and
// grown past the applied revision leaves the replay blind to a change.
// Entries the replay has not reached yet, or changed since the snapshot,
// are left to the replay.
func (c *Cluster) verify(s snapshot, touched map[string]uint64) {
	applied := c.appliedRev()
	local := c.localVersions()
	var changes []tier.ModelChange
	for _, model := range sortedKeys(s.entries) {
		e := s.entries[model]
		if e.rev > applied || touched[model] > e.rev {
			continue
		}
		switch lv := local[model]; {
		case lv == e.change.Version():
		case lv == "":
			changes = append(changes, rolloutAfterGap(e.change)...)
		default:
			changes = append(changes, e.change)
		}
	}
	for _, model := range sortedKeys(local) {
		if _, ok := s.entries[model]; !ok && touched[model] <= s.maxRev {
			changes = c.appendPurge(changes, model)
		}
	}
	if len(changes) == 0 {
		return
	}
	c.log.Warn("model registry disagreed with the bucket after catching up (history removed from the stream); fixed",
		zap.Int("changes", len(changes)), zap.Uint64("revision", applied))
	c.apply(changes, applied)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
