package invalidation

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/zap"
)

// requestTimeout bounds one JetStream API request or snapshot made by the
// follower and the heartbeat.
const requestTimeout = 10 * time.Second

// Cluster keeps a cache's model registry in step with the registry bucket
// shared by every daemon, and publishes this daemon's changes to it. See
// the package documentation for the design.
type Cluster struct {
	opts    Options
	log     *zap.Logger
	cache   Cache
	srv     *natsserver.Server // the embedded server, or nil
	nc      *nats.Conn
	js      jetstream.JetStream
	urls    string          // the configured URLs, redacted
	nodeKey string          // this daemon's key in the members bucket
	perms   PermissionWatch // fails rollouts NATS refuses at once
	pub     Publisher       // publishes this daemon's changes

	mu struct {
		sync.Mutex // guards the fields below
		// connected is what the connection callbacks last said; gen counts
		// its changes, so the follower knows its session is outdated.
		connected bool
		gen       uint64
		// A sync runs from Start and from each (re)connection until the
		// follower caught up with the bucket (Cluster.syncing is set
		// meanwhile); syncSince is when its clock started, syncDone is
		// closed when it ends.
		syncSince  time.Time
		syncDone   chan struct{}
		syncWarned bool
		// applied is the last bucket revision applied to the cache;
		// appliedCh is closed and replaced whenever it changes.
		applied   uint64
		appliedCh chan struct{}
		models    jetstream.KeyValue // bound by the follower; nil before
		members   jetstream.KeyValue // bound by the heartbeat; nil before
	}
	syncing atomic.Bool // mirrors mu: the fast path of WaitSynced

	kick       chan struct{} // connection state changed: wakes the follower
	memberKick chan struct{} // connection state changed: wakes the members view
	beat       chan struct{} // a change was applied: wakes the heartbeat

	// view is the members view (LiveMembers), kept by the goroutine that
	// watches the members bucket.
	view struct {
		members atomic.Pointer[[]Member] // sorted by node id; replaced, never modified
		changed chan struct{}            // the membership changed: wakes the notifier
	}

	ctx      context.Context // cancelled when the loops stop
	cancel   context.CancelFunc
	quit     chan struct{} // closed to stop the loops
	quitOnce sync.Once
	wg       sync.WaitGroup
	closed   atomic.Bool
	once     sync.Once
	connDone chan struct{} // closed by the connection's closed callback

	invalid atomic.Uint64 // registry entries skipped as invalid
}

// Start starts following the model registry as opts say. With Embedded it
// first starts the in-process NATS server.
//
// An unreachable NATS server is not an error: the cache keeps serving the
// registry state it persisted, a warning is logged and the connection is
// retried forever. Errors are about the options, files named by them, or
// the embedded server failing to start.
func Start(opts Options) (*Cluster, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	nodeKey, _ := EncodeModel(opts.NodeID) // Validate checked it
	c := &Cluster{
		opts:       opts,
		log:        opts.Logger,
		cache:      opts.Cache,
		nodeKey:    nodeKey,
		kick:       make(chan struct{}, 1),
		memberKick: make(chan struct{}, 1),
		beat:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		connDone:   make(chan struct{}),
	}
	c.view.changed = make(chan struct{}, 1)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.applied = opts.Cache.ModelsRevision()
	c.mu.appliedCh = make(chan struct{})

	for _, f := range []struct{ what, path string }{
		{"creds file", opts.Creds}, {"TLS CA", opts.TLSCA}, {"TLS certificate", opts.TLSCert}, {"TLS key", opts.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			c.cancel()
			return nil, fmt.Errorf("invalidation: NATS %s: %w", f.what, err)
		}
	}

	urls := opts.URLs
	c.urls = RedactURLs(urls)
	if opts.URLs == Embedded {
		srv, err := startEmbedded(&opts, c.log)
		if err != nil {
			c.cancel()
			return nil, err
		}
		c.srv = srv
		urls = srv.ClientURL()
		c.urls = urls
	}

	// Model-scoped requests wait (at most SyncTimeout) until the registry
	// has caught up with the bucket, from now on.
	c.mu.Lock()
	c.beginSyncLocked()
	c.mu.Unlock()

	nc, err := nats.Connect(urls, c.natsOptions()...)
	if err != nil {
		c.cancel()
		c.shutdownEmbedded()
		return nil, fmt.Errorf("invalidation: connecting to NATS: %w", err)
	}
	c.nc = nc
	c.js, err = jetstream.New(nc)
	if err != nil {
		c.cancel()
		nc.Close()
		c.shutdownEmbedded()
		return nil, fmt.Errorf("invalidation: JetStream: %w", err)
	}
	c.pub = Publisher{JS: c.js, Bucket: opts.Bucket, Perms: &c.perms}
	if !nc.IsConnected() {
		c.log.Warn("NATS unreachable: serving the persisted model registry and reconnecting",
			zap.String("url", c.urls), zap.Uint64("revision", c.appliedRev()))
	}
	c.wg.Add(2)
	go c.follow()
	go c.heartbeat()
	if opts.watchesMembers() {
		c.wg.Add(1)
		go c.watchMembers()
	}
	if opts.OnMembersChange != nil {
		c.wg.Add(1)
		go c.notifyMembers()
	}
	return c, nil
}

func (c *Cluster) natsOptions() []nats.Option {
	o := c.opts
	opts := []nats.Option{
		nats.Name("tiercache " + o.NodeID),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(o.ReconnectWait),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// Fail publishes at once while disconnected instead of buffering
		// them: Rollout reports NATS as unavailable.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(5 * time.Second),
		nats.DrainTimeout(2 * time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) { c.onConnect(nc, false) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { c.onConnect(nc, true) }),
		nats.DisconnectErrHandler(c.onDisconnect),
		nats.ClosedHandler(func(*nats.Conn) { c.onClosed() }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Debug("NATS reconnect attempt failed", zap.Error(err))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.perms.Handle(err)
			c.log.Warn("NATS asynchronous error", zap.Error(err))
		}),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.NKey != "" {
		opts = append(opts, NKeyOption(o.NKey))
	}
	if o.User != "" || o.Password != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts
}

// connectedURL is the URL of the server the connection uses, without
// credentials, or the configured list when there is none.
func (c *Cluster) connectedURL(nc *nats.Conn) string {
	if c.srv != nil {
		return c.urls
	}
	if u := nc.ConnectedUrl(); u != "" {
		return RedactURLs(u)
	}
	return c.urls
}

func (c *Cluster) onConnect(nc *nats.Conn, reconnect bool) {
	c.mu.Lock()
	changed := !c.mu.connected
	if changed {
		c.mu.connected = true
		c.mu.gen++
		c.beginSyncLocked()
	}
	c.mu.Unlock()
	if !changed {
		return
	}
	wake(c.kick)
	wake(c.memberKick)
	wake(c.beat)
	msg := "NATS connected"
	if reconnect {
		msg = "NATS connection restored; catching up with the model registry"
	}
	c.log.Info(msg, zap.String("url", c.connectedURL(nc)), zap.String("server", nc.ConnectedServerName()))
}

func (c *Cluster) onDisconnect(_ *nats.Conn, err error) {
	c.mu.Lock()
	changed := c.mu.connected
	if changed {
		c.mu.connected = false
		c.mu.gen++
		// Cut off, the daemon keeps serving with what it has.
		c.endSyncLocked()
	}
	c.mu.Unlock()
	if !changed {
		return
	}
	wake(c.kick)
	wake(c.memberKick)
	if !c.closed.Load() {
		c.log.Warn("NATS connection lost: serving with the model registry as it is, reconnecting",
			zap.Error(err), zap.Uint64("revision", c.appliedRev()))
	}
}

func (c *Cluster) onClosed() {
	c.mu.Lock()
	if c.mu.connected {
		c.mu.connected = false
		c.mu.gen++
	}
	c.endSyncLocked()
	c.mu.Unlock()
	wake(c.kick)
	wake(c.memberKick)
	close(c.connDone)
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// connState returns the connection generation and whether it is connected.
func (c *Cluster) connState() (gen uint64, connected bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.gen, c.mu.connected
}

// beginSyncLocked starts a sync, or restarts the clock of the current one:
// each (re)connection gives the follower SyncTimeout to catch up.
func (c *Cluster) beginSyncLocked() {
	c.mu.syncSince = time.Now()
	c.mu.syncWarned = false
	if !c.syncing.Load() {
		c.mu.syncDone = make(chan struct{})
		c.syncing.Store(true)
	}
}

func (c *Cluster) endSyncLocked() {
	if c.syncing.Load() {
		c.syncing.Store(false)
		close(c.mu.syncDone)
	}
}

// endSync ends the sync begun by connection generation gen, unless the
// connection changed since.
func (c *Cluster) endSync(gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.gen != gen {
		return false
	}
	c.endSyncLocked()
	return true
}

// Synced reports whether the registry has caught up with the bucket since
// the last (re)connection, or the daemon is cut off from NATS and serves
// with what it has. It is false from Start, and from every reconnection,
// until the follower has applied every change the bucket held.
func (c *Cluster) Synced() bool { return !c.syncing.Load() }

// WaitSynced returns once the registry has caught up with the bucket after
// start-up or a reconnection (at once when it has), but waits at most
// SyncTimeout from the moment the sync began: past it, it logs that the
// daemon serves with the registry state it has and returns nil. It returns
// ctx's error if ctx ends first. The server calls it before answering any
// model-scoped command, so a daemon that was cut off serves nothing stale
// once it is back.
func (c *Cluster) WaitSynced(ctx context.Context) error {
	if !c.syncing.Load() {
		return nil
	}
	c.mu.Lock()
	if !c.syncing.Load() {
		c.mu.Unlock()
		return nil
	}
	done, deadline := c.mu.syncDone, c.mu.syncSince.Add(c.opts.SyncTimeout)
	c.mu.Unlock()
	if d := time.Until(deadline); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	c.mu.Lock()
	if c.mu.syncDone == done && !c.mu.syncWarned && c.syncing.Load() {
		c.mu.syncWarned = true
		c.log.Warn("model registry not caught up within the sync timeout: serving with the state it has",
			zap.Duration("sync_timeout", c.opts.SyncTimeout), zap.Uint64("revision", c.mu.applied), zap.Bool("nats_connected", c.mu.connected))
	}
	c.mu.Unlock()
	return nil
}

// appliedRev is the last bucket revision applied to the cache.
func (c *Cluster) appliedRev() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.applied
}

func (c *Cluster) setApplied(rev uint64) {
	c.mu.Lock()
	if c.mu.applied != rev {
		c.mu.applied = rev
		close(c.mu.appliedCh)
		c.mu.appliedCh = make(chan struct{})
	}
	c.mu.Unlock()
}

// waitApplied waits until this daemon has applied revision rev.
func (c *Cluster) waitApplied(ctx context.Context, rev uint64) error {
	for {
		c.mu.Lock()
		applied, ch := c.mu.applied, c.mu.appliedCh
		c.mu.Unlock()
		if applied >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.quit:
			return ErrClosed
		}
	}
}

// Rollout applies ch, a rollout (tier.NewRollout), to the registry bucket
// and returns the revision of the change once this daemon has applied it.
// Without NATS it changes nothing and returns an error wrapping
// ErrUnavailable; if the change was committed but not applied here within
// SyncTimeout, it returns the revision and an error wrapping ErrNotApplied.
// Other errors are Publisher.Rollout's. It panics if ch is not a rollout.
func (c *Cluster) Rollout(ctx context.Context, ch tier.ModelChange) (uint64, error) {
	if !ch.IsRollout() {
		panic("invalidation: Cluster.Rollout of " + ch.String() + ", not a rollout")
	}
	return c.change(ctx, "rollout", ch.Model(), func(ctx context.Context) (uint64, error) {
		return c.pub.Rollout(ctx, ch)
	})
}

// Purge applies ch, a purge (tier.NewPurge), to the registry bucket: it
// deletes the model (as `nats kv del` does) and returns the revision of the
// delete once this daemon has applied it; every daemon drops the model's
// entries and forgets its version. Errors are as Rollout's; it panics if ch
// is not a purge.
func (c *Cluster) Purge(ctx context.Context, ch tier.ModelChange) (uint64, error) {
	if !ch.IsPurge() {
		panic("invalidation: Cluster.Purge of " + ch.String() + ", not a purge")
	}
	return c.change(ctx, "purge", ch.Model(), func(ctx context.Context) (uint64, error) {
		return c.pub.Purge(ctx, ch)
	})
}

// change publishes a change of model (what: "rollout" or "purge") once the
// registry is in sync and the bucket bound, and waits until this daemon
// has applied it.
func (c *Cluster) change(ctx context.Context, what, model string, publish func(context.Context) (uint64, error)) (uint64, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	if err := c.WaitSynced(ctx); err != nil {
		return 0, err
	}
	c.mu.Lock()
	connected, bound := c.mu.connected, c.mu.models != nil
	c.mu.Unlock()
	if !connected || !bound {
		return 0, fmt.Errorf("%w: %s of %q refused: not connected, the registry was not changed", ErrUnavailable, what, model)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.SyncTimeout)
	defer cancel()
	rev, err := publish(ctx)
	if err != nil {
		return 0, err
	}
	if err := c.waitApplied(ctx, rev); err != nil {
		return rev, fmt.Errorf("%w: %s of %q is revision %d: %v", ErrNotApplied, what, model, rev, err)
	}
	return rev, nil
}

// Status returns the cluster's state as this daemon sees it.
func (c *Cluster) Status() Status {
	c.mu.Lock()
	connected, applied := c.mu.connected, c.mu.applied
	c.mu.Unlock()
	return Status{
		NATSConnected:  connected,
		Synced:         c.Synced(),
		URL:            c.connectedURL(c.nc),
		Bucket:         c.opts.Bucket,
		MembersBucket:  c.opts.MembersBucket,
		NodeID:         c.opts.NodeID,
		BucketRevision: applied,
		Reconnects:     c.nc.Stats().Reconnects,
		InvalidEntries: c.invalid.Load(),
	}
}

// URL returns the client URL of the NATS server: the embedded server's
// (which other daemons join), else the configured list; never credentials.
func (c *Cluster) URL() string { return c.urls }

// JetStream returns the JetStream context of the connection, e.g. for
// Members and WaitApplied.
func (c *Cluster) JetStream() jetstream.JetStream { return c.js }

// stopLoops stops the follower, the heartbeat and the members view and
// waits for them.
func (c *Cluster) stopLoops() {
	c.quitOnce.Do(func() {
		close(c.quit)
		c.cancel()
	})
	c.wg.Wait()
}

// Close stops following the registry, removes this daemon's member entry,
// drains and closes the NATS connection and shuts the embedded server down.
// It does not close the cache: close the Cluster first, then the cache. It
// is idempotent and waits for every goroutine it started.
func (c *Cluster) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		c.stopLoops()
		c.mu.Lock()
		members, connected := c.mu.members, c.mu.connected
		c.mu.Unlock()
		if connected {
			// Leave at once rather than after MemberTTL, so that nobody
			// waits for this daemon to apply a rollout. The heartbeat has
			// stopped, so this delete is the entry's last word: it goes out
			// even when the heartbeat dropped its handle, since a put that
			// failed may still have landed.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			var err error
			if members == nil {
				members, err = c.js.KeyValue(ctx, c.opts.MembersBucket)
			}
			if err == nil {
				err = members.Delete(ctx, c.nodeKey)
			}
			if err != nil {
				c.log.Debug("removing the member entry", zap.Error(err))
			}
			cancel()
		}
		if err := c.nc.Drain(); err != nil {
			c.nc.Close()
		}
		select {
		case <-c.connDone:
		case <-time.After(5 * time.Second):
			c.nc.Close()
			<-c.connDone
		}
		c.shutdownEmbedded()
	})
	return nil
}

func (c *Cluster) shutdownEmbedded() {
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
	}
}
