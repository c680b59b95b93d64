package peer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/tier"
)

// Server is the owner side of peer fill: it serves the keys this daemon
// owns to the other members, from its own Store, and never forwards a
// request. It listens from NewServer until Close.
type Server struct {
	opts     ServerOptions
	ln       net.Listener
	budget   *semaphore.Weighted // MaxInflight: request bodies over smallFrame
	password [sha256.Size]byte   // compared in constant time
	ctx      context.Context     // cancelled by Close: ends waits for budget
	cancel   context.CancelFunc

	mu struct {
		sync.Mutex
		conns  map[net.Conn]struct{} // open connections, closed by Close
		closed bool
	}
	wg        sync.WaitGroup // the accept loop and one goroutine per connection
	closeOnce sync.Once

	stats serverCounters
}

// serverCounters are the server's counters; see ServerStats.
type serverCounters struct {
	conns, authFailures           atomic.Uint64
	gets, hits, sets, stale, dels atomic.Uint64
	expires, errors               atomic.Uint64
	leaseGets                     atomic.Uint64
	bytesIn, bytesOut             atomic.Uint64
	open                          atomic.Int64
}

// ServerStats are a Server's counters since it started.
type ServerStats struct {
	Conns        uint64 // connections accepted
	OpenConns    int64  // connections open now
	AuthFailures uint64 // connections refused: no or wrong password, bad handshake
	Gets         uint64 // GETs answered
	Hits         uint64 // GETs answered with a record
	Sets         uint64 // forwarded SETs stored
	Stale        uint64 // forwarded SETs refused: the tag is not the owner's version
	Deletes      uint64 // forwarded deletes applied
	Expires      uint64 // forwarded expiries applied
	Errors       uint64 // requests answered with an error
	LeaseGets    uint64 // lease requests (LEASE.GET, LEASE.MGET taken here)
	BytesIn      uint64 // bytes read from peers, TLS included
	BytesOut     uint64 // bytes written to peers, TLS included
}

// NewServer listens on opts.Listen and serves peers until Close.
func NewServer(opts ServerOptions) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	s := &Server{
		opts:     opts,
		ln:       ln,
		budget:   semaphore.NewWeighted(opts.MaxInflight),
		password: sha256.Sum256([]byte(opts.Password)),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.conns = map[net.Conn]struct{}{}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	c := &s.stats
	return ServerStats{
		Conns: c.conns.Load(), OpenConns: c.open.Load(), AuthFailures: c.authFailures.Load(),
		Gets: c.gets.Load(), Hits: c.hits.Load(), Sets: c.sets.Load(), Stale: c.stale.Load(),
		Deletes: c.dels.Load(), Expires: c.expires.Load(), Errors: c.errors.Load(), LeaseGets: c.leaseGets.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
	}
}

// Close stops listening, closes every connection (requests in progress
// end with them) and waits for the server's goroutines. It is idempotent
// and does not close the Store.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.mu.closed = true
		for c := range s.mu.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

// accept is the accept loop. A failed Accept other than the listener's
// closing (too many open files) is retried after a growing pause, as
// net/http does.
func (s *Server) accept() {
	defer s.wg.Done()
	var pause time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.opts.Logger.Warn("peer server: accept failed", zap.Error(err), zap.Duration("retry_in", pause))
			t := time.NewTimer(pause)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		pause = 0
		s.stats.conns.Add(1)
		if !s.track(nc) {
			_ = nc.Close()
			continue
		}
		s.wg.Add(1)
		go s.serve(nc)
	}
}

// track registers nc, unless the server is closed or has MaxConns open.
func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed || len(s.mu.conns) >= s.opts.MaxConns {
		return false
	}
	s.mu.conns[nc] = struct{}{}
	s.stats.open.Add(1)
	return true
}

func (s *Server) forget(nc net.Conn) {
	s.mu.Lock()
	delete(s.mu.conns, nc)
	s.mu.Unlock()
	s.stats.open.Add(-1)
}

// serverConn is one peer connection on the server side. Its goroutine
// reads requests and answers them in order, flushing when no more input
// is buffered (pipelined requests are answered in one write).
type serverConn struct {
	s      *Server
	nc     net.Conn // TLS over the counted TCP connection, or the latter
	direct net.Conn // the TCP connection itself without TLS, for writev; else nil
	br     *bufio.Reader
	bw     *bufio.Writer
	guard  *bufpool.Guard // pinned from a lookup until its record is written
	small  []byte         // the buffer bodies up to smallFrame are read into
	// refused is set once refuseAuth counted the connection's failure to
	// authenticate.
	refused bool
}

func (s *Server) serve(raw net.Conn) {
	defer s.wg.Done()
	defer s.forget(raw)
	defer raw.Close()
	var nc net.Conn = &countedConn{Conn: raw, in: &s.stats.bytesIn, out: &s.stats.bytesOut}
	direct := raw
	if s.opts.TLS != nil {
		nc, direct = tls.Server(nc, s.opts.TLS), nil
	}
	c := &serverConn{
		s:      s,
		nc:     nc,
		direct: direct,
		br:     bufio.NewReaderSize(nc, 32<<10),
		bw:     bufio.NewWriterSize(nc, 32<<10),
		guard:  s.opts.Buffers.Guard(),
	}
	defer c.guard.Close()
	if err := c.hello(); err != nil {
		if !c.refused {
			s.stats.authFailures.Add(1)
		}
		s.opts.Logger.Debug("peer server: connection refused", zap.Stringer("remote", raw.RemoteAddr()), zap.Error(err))
		return
	}
	if err := c.loop(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		s.opts.Logger.Debug("peer server: connection ended", zap.Stringer("remote", raw.RemoteAddr()), zap.Error(err))
	}
}

// hello runs the TLS handshake, if any, and authenticates the peer: its
// first frame must be an opHello of at most maxHelloFrame bytes with the
// protocol version and the password. Anything else gets one error reply.
func (c *serverConn) hello() error {
	o := &c.s.opts
	_ = c.nc.SetDeadline(time.Now().Add(o.AuthTimeout))
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
	}
	kind, n, err := readHeader(c.br)
	if err != nil {
		return err
	}
	if kind != opHello || n > maxHelloFrame {
		c.refuseAuth("authentication required")
		return fmt.Errorf("%w: first request is op %d of %d bytes, not a hello", ErrAuth, kind, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return err
	}
	if len(body) < 1 || body[0] != protocolVersion {
		c.refuseAuth(fmt.Sprintf("protocol version %v not supported (this server speaks %d)", body[:min(len(body), 1)], protocolVersion))
		return fmt.Errorf("%w: protocol version %v", ErrProtocol, body[:min(len(body), 1)])
	}
	got := sha256.Sum256(body[1:])
	if subtle.ConstantTimeCompare(got[:], c.s.password[:]) != 1 {
		c.refuseAuth("invalid password")
		return fmt.Errorf("%w: invalid password", ErrAuth)
	}
	if err := writeFrame(c.bw, stOK, []byte{protocolVersion}, []byte(o.NodeID)); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	return c.nc.SetDeadline(time.Time{})
}

// refuseAuth counts a connection that failed to authenticate and
// refuses it: counted first, so that a peer that reads the reply finds it
// counted.
func (c *serverConn) refuseAuth(msg string) {
	c.refused = true
	c.s.stats.authFailures.Add(1)
	c.refuse(msg)
}

// refuse writes an error reply to a connection about to be closed.
func (c *serverConn) refuse(msg string) {
	if writeFrame(c.bw, stError, []byte("peer: "+msg)) == nil {
		_ = c.bw.Flush()
	}
}

// loop reads and answers requests until the connection ends.
func (c *serverConn) loop() error {
	o := &c.s.opts
	limit := maxRequest(o.MaxValue)
	for {
		kind, n, err := readHeader(c.br)
		if err != nil {
			return err
		}
		if n > limit {
			c.refuse(fmt.Sprintf("request of %d bytes exceeds %d", n, limit))
			return fmt.Errorf("%w: request of %d bytes", ErrProtocol, n)
		}
		body, release, err := c.readBody(n)
		if err != nil {
			return err
		}
		err = c.handle(kind, body)
		release()
		if err != nil {
			return err
		}
		if c.br.Buffered() == 0 && c.bw.Buffered() > 0 {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
}

// readBody reads a body of n bytes: into the connection's own buffer up
// to smallFrame, else into memory taken from the server's budget, which
// release gives back.
func (c *serverConn) readBody(n int) (body []byte, release func(), err error) {
	release = func() {}
	if n <= smallFrame {
		if cap(c.small) < n {
			c.small = make([]byte, max(n, 4<<10))
		}
		body = c.small[:n]
	} else {
		if err := c.s.budget.Acquire(c.s.ctx, int64(n)); err != nil {
			return nil, nil, ErrClosed
		}
		release = func() { c.s.budget.Release(int64(n)) }
		body = make([]byte, n)
	}
	if n > c.br.Buffered() {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.opts.IOTimeout))
		defer c.nc.SetReadDeadline(time.Time{})
	}
	if _, err := io.ReadFull(c.br, body); err != nil {
		release()
		return nil, nil, err
	}
	return body, release, nil
}

func (c *serverConn) flush() error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.IOTimeout))
	return c.bw.Flush()
}

// handle answers one request. It returns an error only when the
// connection must end.
//
// A lease request may wait (leaseGet): the client sends it on a
// connection of its own.
func (c *serverConn) handle(kind byte, body []byte) error {
	st := &c.s.stats
	switch kind {
	case opPing:
		return writeFrame(c.bw, stOK)
	case opGet:
		return c.get(body)
	case opSet:
		return c.set(body)
	case opDelete:
		had, err := c.s.opts.Store.Remove(body)
		if err != nil {
			return c.error(err)
		}
		st.dels.Add(1)
		return writeFrame(c.bw, stOK, []byte{boolByte(had)})
	case opExpire:
		key, expireAt, cond, err := parseExpire(body)
		if err != nil {
			return c.error(err)
		}
		changed, err := c.s.opts.Store.Expire(key, expireAt, tier.ExpireCond(cond))
		if err != nil {
			return c.error(err)
		}
		st.expires.Add(1)
		return writeFrame(c.bw, stOK, []byte{boolByte(changed)})
	case opLeaseGet:
		return c.leaseGet(body)
	case opLeaseRelease:
		return c.leaseRelease(body)
	case opHello:
		return c.error(errors.New("already authenticated"))
	}
	return c.error(fmt.Errorf("unknown request %d", kind))
}

// error answers a request with err's message.
func (c *serverConn) error(err error) error {
	c.s.stats.errors.Add(1)
	return writeFrame(c.bw, stError, []byte(err.Error()))
}

// get answers a GET with the key's record as the Store holds it. The
// guard stays pinned until the record is written or copied. A record
// larger than the write buffer is not copied: over plain TCP it goes out
// with its header in one writev, which measured 12% less CPU per 4 MB GET
// than bufio.Writer's write around its buffer (which TLS uses).
func (c *serverConn) get(key []byte) error {
	c.guard.Pin()
	defer c.guard.Unpin()
	c.s.stats.gets.Add(1)
	r, err := c.s.opts.Store.PeerGet(key)
	switch {
	case errors.Is(err, tier.ErrNotFound):
		return writeFrame(c.bw, stNotFound)
	case err != nil:
		return c.error(err)
	}
	c.s.stats.hits.Add(1)
	if len(r) <= c.bw.Available()-frameHeader {
		return writeFrame(c.bw, stOK, r)
	}
	if err := c.flush(); err != nil {
		return err
	}
	if c.direct == nil {
		return writeFrame(c.bw, stOK, r) // the record is written around the empty buffer
	}
	var h [frameHeader]byte
	putHeader(h[:], stOK, len(r))
	bufs := net.Buffers{h[:], r}
	n, err := bufs.WriteTo(c.direct)
	c.s.stats.bytesOut.Add(uint64(n))
	return err
}

// set stores a forwarded value if its tag is the version this owner's
// registry has for its model (Store.SetTagged): else it answers stStale.
// A stored value completes the key's lease (ServerOptions.Leases); a
// stale one, like a client's -STALE SET, does not.
// A key with a malformed scope is an error: a correct peer never sends one.
func (c *serverConn) set(body []byte) error {
	o := &c.s.opts
	req, err := parseSet(body)
	if err != nil {
		return c.error(err)
	}
	if len(req.value) > o.MaxValue {
		return c.error(fmt.Errorf("value of %d bytes exceeds %d", len(req.value), o.MaxValue))
	}
	err = c.s.opts.Store.SetTagged(req.key, req.value, req.expireAt, string(req.tag))
	var se *tier.StaleError
	switch {
	case errors.As(err, &se):
		c.s.stats.stale.Add(1)
		return writeFrame(c.bw, stStale, []byte(err.Error()))
	case err != nil:
		return c.error(err)
	}
	c.s.stats.sets.Add(1)
	if o.Leases != nil {
		o.Leases.Complete(req.key, req.value)
	}
	return writeFrame(c.bw, stOK)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// countedConn counts the bytes read and written through a connection.
type countedConn struct {
	net.Conn
	in, out *atomic.Uint64
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(uint64(n))
	return n, err
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(uint64(n))
	return n, err
}
