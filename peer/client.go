package peer

import (
	"context"
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/singleflight"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/tier"
)

// Client is the requester side of peer fill: it asks a key's owner for
// its value (Get) and sends it this daemon's writes of the key (Forward,
// ForwardDelete, ForwardExpire), for keys the Ring says another member
// owns. It keeps a small pool of connections to each peer it has talked
// to and a circuit breaker per peer.
//
// No method returns an error or waits longer than Timeout: a dead,
// refusing or slow owner is a miss, and writes are acknowledged before
// they are sent. What failed is counted in Stats.
type Client struct {
	opts   ClientOptions
	flight singleflight.Group // one request per key in flight
	queued atomic.Int64       // bytes of forwarded writes waiting, across peers

	// idle is closed, and reset, when queued falls to zero: Flush waits on it.
	idle struct {
		sync.Mutex
		ch chan struct{}
	}
	// setDropped, if set, is told of each forwarded SET that was dropped
	// (OnSetDropped).
	setDropped atomic.Pointer[func(key, value []byte, tag string)]

	mu struct {
		sync.Mutex
		remotes map[string]*remote // by member id; guarded by mu
		closed  bool
	}
	quit      chan struct{}  // closed by Close
	wg        sync.WaitGroup // maintain, and remotes being retired
	closeOnce sync.Once

	stats clientCounters
}

// clientCounters are the client's counters; see Stats.
type clientCounters struct {
	hits, misses, requests, errors, timeouts, skipped atomic.Uint64
	setsForwarded, setsRefused, setsDropped           atomic.Uint64
	updatesForwarded, updatesDropped                  atomic.Uint64
	bytesIn, bytesOut                                 atomic.Uint64
}

// Stats are a Client's counters since it started, and the state of its
// peers now: INFO's # Peers section.
type Stats struct {
	// Hits are Gets answered with a record, Misses Gets the owner
	// answered without one (absent, or expired by this daemon's clock).
	// Concurrent Gets of one key share a request, and each counts.
	Hits, Misses uint64
	// Requests are the GET requests sent to owners.
	Requests uint64
	// Errors and Timeouts are requests that failed: an error (connection
	// refused or reset, authentication refused, an error reply, a
	// malformed reply) or no answer within the timeout. Each Get that
	// shared a failed request is a miss to its caller.
	Errors, Timeouts uint64
	// Skipped are Gets not sent because their owner's breaker was open.
	Skipped uint64
	// Fenced are records an owner sent that the reader's fencing refused
	// (another version of the model than the reader's): Cache.PeerStats
	// counts them, in Misses too; a Client alone leaves it 0.
	Fenced uint64
	// SetsForwarded are forwarded SETs their owner stored, SetsRefused
	// those it refused (another version of the model, or an error), and
	// SetsDropped those that never reached it: the queue was full, the
	// owner's breaker was open, or the connection failed.
	SetsForwarded, SetsRefused, SetsDropped uint64
	// UpdatesForwarded are forwarded deletes and expiries the owner
	// applied; UpdatesDropped those it did not.
	UpdatesForwarded, UpdatesDropped uint64
	// QueuedBytes are the bytes of forwarded writes waiting now.
	QueuedBytes int64
	// BytesIn and BytesOut are the bytes read from and written to peers
	// by this client, TLS included.
	BytesIn, BytesOut uint64
	// Peers are the ring's members other than this one; PeersLive those
	// whose breaker is closed.
	Peers, PeersLive int
}

// NewClient returns a client for the members of opts.Ring. Close it to
// close its connections and stop its goroutines.
func NewClient(opts ClientOptions) (*Client, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c := &Client{opts: opts, quit: make(chan struct{})}
	c.mu.remotes = map[string]*remote{}
	c.wg.Add(1)
	go c.maintain()
	return c, nil
}

// Owner returns the member that owns key and whether it is another
// member than this one (remote): only then do Get and the Forward
// methods contact it. ok is false when the ring is empty.
func (c *Client) Owner(key []byte) (m Member, remote, ok bool) {
	m, ok = c.opts.Ring.Owner(key)
	return m, ok && m.ID != c.opts.Self, ok
}

// OwnerUp reports whether another member owns key and this client is not
// avoiding it after a failure (its breaker is closed).
func (c *Client) OwnerUp(key []byte) bool {
	r := c.remoteFor(key)
	return r != nil && !r.down.Load()
}

// Get asks key's owner for the key's live record and returns it as the
// owner sent it: its header tells the version it was stored under (Tag)
// and its expiry, and its Epoch is the owner's, meaningless here. The
// caller must check it against its own registry before serving it (the
// fencing rule: tier.Hybrid.Fill, or Servable). The record is the
// caller's: Gets that shared a request each get a copy.
//
// ok is false, at once, when this daemon owns key, the ring is empty or
// the owner's breaker is open; after at most Timeout when the owner does
// not have the key, fails or is slow. Concurrent Gets of one key make one
// request.
func (c *Client) Get(key []byte) (r tier.Record, ok bool) {
	return c.get(key, nil)
}

// get is Get reading a record of pooledReply bytes or more into a buffer
// of pool, when pool is not nil, so that a near copy L1 keeps by
// reference lands in recycled memory rather than in pages the process
// has never touched. The caller then owns r as the command that read it:
// it calls pool.Done(r) once it no longer needs r (nothing happens for a
// record pool does not manage). Every caller must hold a pinned Guard of
// pool around get: the Gets that shared a request copy its record when
// they return, which may be after the Get that made it called Done.
func (c *Client) get(key []byte, pool *bufpool.Pool) (r tier.Record, ok bool) {
	rm := c.remoteFor(key)
	if rm == nil {
		return nil, false
	}
	if rm.down.Load() {
		c.stats.skipped.Add(1)
		return nil, false
	}
	made := false // this Get made the request: its record is this Get's to give back
	v, _, shared := c.flight.Do(string(key), func() (any, error) {
		made = true
		return rm.get(key, pool), nil
	})
	res := v.(getResult)
	switch {
	case res.rec != nil && shared:
		// Each gets a copy: the caller may rewrite it (Hybrid.Fill does).
		c.stats.hits.Add(1)
		cp := slices.Clone(res.rec)
		if made {
			pool.Done(res.rec)
		}
		return cp, true
	case res.rec != nil:
		c.stats.hits.Add(1)
		return res.rec, true
	case !res.failed:
		c.stats.misses.Add(1)
	}
	return nil, false
}

// getResult is what one GET request brought back: a record, nothing, or
// a failure (counted where it happened).
type getResult struct {
	rec    tier.Record
	failed bool
}

// remoteFor returns the peer that owns key, or nil when this daemon does,
// nobody does or the client is closed.
func (c *Client) remoteFor(key []byte) *remote {
	m, other, _ := c.Owner(key)
	if !other {
		return nil
	}
	return c.remote(m)
}

// remote returns the peer of member m, connecting to it lazily. A member
// that came back on another address is another peer: the old one is
// retired.
func (c *Client) remote(m Member) *remote {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil
	}
	r := c.mu.remotes[m.ID]
	if r != nil && r.m.Addr == m.Addr {
		return r
	}
	if r != nil {
		c.retireLocked(r)
	}
	r = newRemote(c, m, c.tlsFor(m))
	c.mu.remotes[m.ID] = r
	return r
}

// retireLocked removes r and closes it in the background: closing waits
// for a batch of forwarded writes in progress, which callers of remote
// must not.
func (c *Client) retireLocked(r *remote) {
	delete(c.mu.remotes, r.m.ID)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		r.close()
	}()
}

// maintain retires the peers that left the ring, each time it changes.
func (c *Client) maintain() {
	defer c.wg.Done()
	for {
		changed := c.opts.Ring.Changed()
		c.mu.Lock()
		if !c.mu.closed {
			for id, r := range c.mu.remotes {
				if m, ok := c.opts.Ring.Member(id); !ok || m.Addr != r.m.Addr {
					c.retireLocked(r)
				}
			}
		}
		c.mu.Unlock()
		select {
		case <-c.quit:
			return
		case <-changed:
		}
	}
}

// tlsFor returns the TLS configuration for dialling m: the client's, with
// m's host as the server name when none is set.
func (c *Client) tlsFor(m Member) *tls.Config {
	if c.opts.TLS == nil {
		return nil
	}
	cfg := c.opts.TLS.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(m.Addr); err == nil {
			cfg.ServerName = host
		}
	}
	if cfg.ClientSessionCache == nil {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	return cfg
}

// Stats returns the client's counters and the state of its peers.
func (c *Client) Stats() Stats {
	s := &c.stats
	st := Stats{
		Hits: s.hits.Load(), Misses: s.misses.Load(), Requests: s.requests.Load(),
		Errors: s.errors.Load(), Timeouts: s.timeouts.Load(), Skipped: s.skipped.Load(),
		SetsForwarded: s.setsForwarded.Load(), SetsRefused: s.setsRefused.Load(), SetsDropped: s.setsDropped.Load(),
		UpdatesForwarded: s.updatesForwarded.Load(), UpdatesDropped: s.updatesDropped.Load(),
		QueuedBytes: c.queued.Load(),
		BytesIn:     s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.opts.Ring.Members() {
		if m.ID == c.opts.Self {
			continue
		}
		st.Peers++
		if r := c.mu.remotes[m.ID]; r == nil || r.m.Addr != m.Addr || !r.down.Load() {
			st.PeersLive++
		}
	}
	return st
}

// OnSetDropped has fn called with the key, value and tag of each
// forwarded SET that is dropped (counted in SetsDropped) once it was
// queued: its owner's breaker opened, the owner failed before answering,
// the owner left the ring, or the client closed. Its owner may or may not
// have stored it. fn runs on the client's goroutines (or Close's) and must
// not block; key and value are valid only during the call. A SET Forward
// did not queue (it returned false) is not reported: its caller knows.
func (c *Client) OnSetDropped(fn func(key, value []byte, tag string)) {
	c.setDropped.Store(&fn)
}

// Flush waits until every forwarded write queued before it is settled
// (answered, or dropped), or ctx ends, whose error it then returns. Writes
// queued meanwhile are waited for too: a daemon flushes once it has
// stopped taking writes.
func (c *Client) Flush(ctx context.Context) error {
	for {
		c.idle.Lock()
		if c.queued.Load() == 0 {
			c.idle.Unlock()
			return nil
		}
		if c.idle.ch == nil {
			c.idle.ch = make(chan struct{})
		}
		ch := c.idle.ch
		c.idle.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// unqueue gives back n bytes of the queue's bound, waking Flush when none
// is left.
func (c *Client) unqueue(n int64) {
	if c.queued.Add(-n) != 0 {
		return
	}
	c.idle.Lock()
	if c.idle.ch != nil {
		close(c.idle.ch)
		c.idle.ch = nil
	}
	c.idle.Unlock()
}

// Close closes every connection (Gets in progress are misses), drops the
// forwarded writes not sent yet (counted) and waits for the client's
// goroutines. It is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.mu.closed = true
		remotes := c.mu.remotes
		c.mu.remotes = nil
		c.mu.Unlock()
		close(c.quit)
		for _, r := range remotes {
			r.close()
		}
		c.wg.Wait()
	})
	return nil
}
