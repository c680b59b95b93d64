package peer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/tier"
)

// remote is one peer as a Client sees it: a pool of connections, the
// circuit breaker, and the queue of writes forwarded to it with the
// goroutine that sends them and probes the peer while it is down.
type remote struct {
	c   *Client
	m   Member
	tls *tls.Config // nil: plain TCP

	slots chan struct{}    // one token per open connection, in use or idle: MaxConns
	idle  chan *clientConn // connections ready for a request

	// The lease pool (clientlease.go): lease requests wait, so they have
	// connections of their own.
	leaseSlots chan struct{}    // one token per open lease connection: MaxLeaseConns
	leaseIdle  chan *clientConn // lease connections ready: at most MaxConns

	// down is the breaker: set by the first failed request, cleared by
	// the first ping that succeeds after it. While it is set no request
	// is sent and forwarded writes are dropped.
	down atomic.Bool

	mu struct {
		sync.Mutex
		conns  map[*clientConn]struct{} // every open connection, closed by close
		queue  []forward                // forwarded writes waiting
		closed bool
	}
	wake   chan struct{}   // tells loop that writes were queued or the breaker opened
	quit   chan struct{}   // closed by close
	ctx    context.Context // cancelled by close: ends dials in progress
	cancel context.CancelFunc
	done   chan struct{} // closed when loop returns
}

// forward is one forwarded write, as the frame that carries it.
type forward struct {
	frame []byte
	set   bool          // a SET, not a delete or an expiry
	done  chan struct{} // if not nil, closed once the write is settled
}

// clientConn is one connection to a peer, authenticated.
type clientConn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	reused bool // it served a request before this one
}

// errBusy is a request that found every connection to its peer busy
// until its deadline: this daemon's load, not the peer's failure.
var errBusy = errors.New("peer: every connection to the peer busy")

func newRemote(c *Client, m Member, tlsConf *tls.Config) *remote {
	r := &remote{
		c:     c,
		m:     m,
		tls:   tlsConf,
		slots: make(chan struct{}, c.opts.MaxConns),
		idle:  make(chan *clientConn, c.opts.MaxConns),

		leaseSlots: make(chan struct{}, c.opts.MaxLeaseConns),
		leaseIdle:  make(chan *clientConn, c.opts.MaxConns),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	r.mu.conns = map[*clientConn]struct{}{}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.loop()
	return r
}

// close stops loop, closes every connection (requests in progress fail,
// uncounted) and drops the writes still queued (counted).
func (r *remote) close() {
	r.mu.Lock()
	r.mu.closed = true
	conns := make([]*clientConn, 0, len(r.mu.conns))
	for cc := range r.mu.conns {
		conns = append(conns, cc)
	}
	r.mu.Unlock()
	close(r.quit)
	r.cancel()
	for _, cc := range conns {
		_ = cc.nc.Close()
	}
	<-r.done
	r.dropQueued()
}

func (r *remote) closed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.closed
}

// loop sends the forwarded writes while the breaker is closed, and pings
// the peer, at growing intervals, while it is open.
func (r *remote) loop() {
	defer close(r.done)
	o := &r.c.opts
	backoff := o.ProbeInterval
	for {
		if r.down.Load() {
			r.dropQueued()
			t := time.NewTimer(backoff)
			select {
			case <-r.quit:
				t.Stop()
				return
			case <-t.C:
			}
			if err := r.ping(); err != nil {
				backoff = min(2*backoff, o.MaxProbeInterval)
				continue
			}
			backoff = o.ProbeInterval
			r.down.Store(false)
			o.Logger.Info("peer answers again", zap.String("peer", r.m.ID), zap.String("addr", r.m.Addr))
			continue
		}
		select {
		case <-r.quit:
			return
		case <-r.wake:
		}
		r.sendQueued()
	}
}

func (r *remote) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// trip opens the breaker after err, unless it is open already.
func (r *remote) trip(err error) {
	if !r.down.CompareAndSwap(false, true) {
		return
	}
	r.c.opts.Logger.Warn("peer failed: not asked again until it answers a ping",
		zap.String("peer", r.m.ID), zap.String("addr", r.m.Addr), zap.Error(err))
	for drained := false; !drained; {
		select {
		case cc := <-r.idle:
			r.discard(cc)
		default:
			drained = true
		}
	}
	r.kick()
}

// failed counts a request that failed with err and opens the breaker,
// unless the client is closing it or err is this daemon's own (errBusy).
func (r *remote) failed(err error) {
	if r.closed() {
		return
	}
	if isTimeout(err) || errors.Is(err, errBusy) {
		r.c.stats.timeouts.Add(1)
	} else {
		r.c.stats.errors.Add(1)
	}
	if !errors.Is(err, errBusy) {
		r.trip(err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// acquire returns a connection for a request that must be answered by
// deadline: an idle one, or a new one while fewer than MaxConns are open;
// else it waits for one of those until deadline.
func (r *remote) acquire(deadline time.Time) (*clientConn, error) {
	select {
	case cc := <-r.idle:
		cc.reused = true
		return cc, nil
	default:
	}
	select {
	case cc := <-r.idle:
		cc.reused = true
		return cc, nil
	case r.slots <- struct{}{}:
	default:
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case cc := <-r.idle:
			cc.reused = true
			return cc, nil
		case r.slots <- struct{}{}:
		case <-t.C:
			return nil, errBusy
		case <-r.quit:
			return nil, ErrClosed
		}
	}
	cc, err := r.dial(deadline)
	if err != nil {
		<-r.slots
		return nil, err
	}
	return cc, nil
}

// release returns cc to the pool after a request that it answered (ok),
// or closes it.
func (r *remote) release(cc *clientConn, ok bool) {
	if ok {
		r.idle <- cc // never blocks: it has room for every open connection
	} else {
		r.discard(cc)
	}
}

// discard closes cc, which held a slot.
func (r *remote) discard(cc *clientConn) {
	r.untrack(cc)
	<-r.slots
}

// untrack closes cc and forgets it.
func (r *remote) untrack(cc *clientConn) {
	_ = cc.nc.Close()
	r.mu.Lock()
	delete(r.mu.conns, cc)
	r.mu.Unlock()
}

// dial connects to the peer and authenticates, by deadline.
func (r *remote) dial(deadline time.Time) (*clientConn, error) {
	o := &r.c.opts
	d := net.Dialer{Deadline: deadline}
	raw, err := d.DialContext(r.ctx, "tcp", r.m.Addr)
	if err != nil {
		return nil, err
	}
	var nc net.Conn = &countedConn{Conn: raw, in: &r.c.stats.bytesIn, out: &r.c.stats.bytesOut}
	if r.tls != nil {
		nc = tls.Client(nc, r.tls)
	}
	cc := &clientConn{nc: nc, br: bufio.NewReaderSize(nc, 32<<10), bw: bufio.NewWriterSize(nc, 16<<10)}
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		_ = nc.Close()
		return nil, ErrClosed
	}
	r.mu.conns[cc] = struct{}{}
	r.mu.Unlock()
	if err := r.hello(cc, deadline, o.Password); err != nil {
		r.untrack(cc)
		return nil, err
	}
	return cc, nil
}

// hello authenticates a new connection and checks that the server is the
// member dialled.
func (r *remote) hello(cc *clientConn, deadline time.Time, password string) error {
	_ = cc.nc.SetDeadline(deadline)
	if err := writeFrame(cc.bw, opHello, []byte{protocolVersion}, []byte(password)); err != nil {
		return err
	}
	if err := cc.bw.Flush(); err != nil {
		return err
	}
	kind, body, err := cc.readReply(maxHelloFrame)
	if err != nil {
		return err
	}
	switch {
	case kind == stError:
		return fmt.Errorf("%w by %s: %s", ErrAuth, r.m.Addr, body)
	case kind != stOK || len(body) < 1:
		return fmt.Errorf("%w: hello answered with status %d", ErrProtocol, kind)
	case body[0] != protocolVersion:
		return fmt.Errorf("%w: %s speaks protocol %d, not %d", ErrProtocol, r.m.Addr, body[0], protocolVersion)
	}
	if id := string(body[1:]); id != "" && id != r.m.ID {
		return fmt.Errorf("%w: %s is %q, not %q", ErrWrongPeer, r.m.Addr, id, r.m.ID)
	}
	return nil
}

// readReply reads one reply of at most limit bytes.
func (cc *clientConn) readReply(limit int) (kind byte, body []byte, err error) {
	return cc.readReplyInto(limit, nil)
}

// pooledReply is the smallest reply body a Get reads into its caller's
// buffer pool (the RESP server reads a SET's value of that size into it).
const pooledReply = 16 << 10

// readReplyInto is readReply reading a body of at least pooledReply bytes
// into a buffer of pool, when pool is not nil: the caller then owns it as
// the command that read it (bufpool.Pool.Done; on an error it is done
// already).
func (cc *clientConn) readReplyInto(limit int, pool *bufpool.Pool) (kind byte, body []byte, err error) {
	kind, n, err := readHeader(cc.br)
	if err != nil {
		return 0, nil, err
	}
	if n > limit {
		return 0, nil, fmt.Errorf("%w: reply of %d bytes exceeds %d", ErrProtocol, n, limit)
	}
	if pool != nil && n >= pooledReply {
		body = pool.Get(n)
	} else {
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(cc.br, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		pool.Done(body)
		return 0, nil, err
	}
	return kind, body, nil
}

// retryable reports whether a request that failed with err on cc, before
// any reply arrived, may be sent again on a new connection: cc was idle
// in the pool and the peer closed it meanwhile (it restarted, or dropped
// idle connections), which is no failure of the peer.
func retryable(cc *clientConn, replied bool, err error) bool {
	return cc.reused && !replied && !isTimeout(err) && !errors.Is(err, net.ErrClosed)
}

// get sends one GET of key. A connection taken from the pool that turns
// out closed is replaced once. A large record is read into a buffer of
// pool when it is not nil (see Client.get).
func (r *remote) get(key []byte, pool *bufpool.Pool) getResult {
	o := &r.c.opts
	deadline := time.Now().Add(o.Timeout)
	r.c.stats.requests.Add(1)
	for {
		cc, err := r.acquire(deadline)
		if err != nil {
			r.failed(err)
			return getResult{failed: true}
		}
		_ = cc.nc.SetDeadline(deadline)
		err = writeFrame(cc.bw, opGet, key)
		if err == nil {
			err = cc.bw.Flush()
		}
		var kind byte
		var body []byte
		replied := false
		if err == nil {
			kind, body, err = cc.readReplyInto(maxRequest(o.MaxValue), pool)
			replied = err == nil || errors.Is(err, ErrProtocol) || errors.Is(err, io.ErrUnexpectedEOF)
		}
		if err != nil {
			r.release(cc, false)
			if retryable(cc, replied, err) {
				continue
			}
			r.failed(err)
			return getResult{failed: true}
		}
		if kind != stOK {
			pool.Done(body)
		}
		switch kind {
		case stOK:
			rec := tier.Record(body)
			if err := rec.Check(); err != nil {
				pool.Done(body)
				r.release(cc, false)
				r.failed(fmt.Errorf("%w: %w", ErrProtocol, err))
				return getResult{failed: true}
			}
			r.release(cc, true)
			if rec.Expired(o.Now().UnixMilli()) {
				pool.Done(body)
				return getResult{}
			}
			return getResult{rec: rec}
		case stNotFound:
			r.release(cc, true)
			return getResult{}
		case stError:
			// The peer is there but could not look the key up (its store
			// is closing, a disk error): no reason to stop asking it.
			r.release(cc, true)
			if !r.closed() {
				r.c.stats.errors.Add(1)
			}
			return getResult{failed: true}
		}
		r.release(cc, false)
		r.failed(fmt.Errorf("%w: GET answered with status %d", ErrProtocol, kind))
		return getResult{failed: true}
	}
}

// ping checks that the peer answers, on a connection of the pool.
func (r *remote) ping() error {
	deadline := time.Now().Add(r.c.opts.Timeout)
	cc, err := r.acquire(deadline)
	if err != nil {
		return err
	}
	_ = cc.nc.SetDeadline(deadline)
	err = writeFrame(cc.bw, opPing)
	if err == nil {
		err = cc.bw.Flush()
	}
	var kind byte
	if err == nil {
		kind, _, err = cc.readReply(maxHelloFrame)
	}
	if err == nil && kind != stOK {
		err = fmt.Errorf("%w: PING answered with status %d", ErrProtocol, kind)
	}
	r.release(cc, err == nil)
	return err
}
