package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/lease"
	"go.uber.org/zap"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// Server serves the cache over RESP on any number of listeners.
type Server struct {
	opts    Options
	budget  *budget   // in-flight argument bytes, all connections
	cmds    *cmdStats // commands run and their latencies
	leases  *lease.Table
	started time.Time

	ctx    context.Context // cancelled by Shutdown: interrupts budget waits
	cancel context.CancelFunc

	mu struct {
		sync.Mutex // guards the fields below
		listeners  map[net.Listener]struct{}
		conns      map[*conn]struct{}
		closing    bool
	}
	wg sync.WaitGroup // accept loops and connection goroutines

	nextID       atomic.Int64
	connected    atomic.Int64
	totalConns   atomic.Uint64
	rejected     atomic.Uint64
	authFailures atomic.Uint64
	lastAuthLog  atomic.Int64 // unix ns of the last failed-AUTH log line
}

// Stats are the server's counters.
type Stats struct {
	ConnectedClients    int64
	TotalConnections    uint64
	TotalCommands       uint64
	RejectedConnections uint64
	AuthFailures        uint64
}

// New returns a Server; call Serve for each listener.
func New(opts Options) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		budget:  newBudget(opts.MaxInflight, smallCommand, smallReserve),
		leases:  opts.Leases,
		started: time.Now(),
	}
	if s.leases == nil {
		s.leases = lease.New(lease.Options{Max: opts.MaxLeases})
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.listeners = make(map[net.Listener]struct{})
	s.mu.conns = make(map[*conn]struct{})
	s.cmds = newCmdStats()
	if err := registerMetrics(opts.Registerer, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		ConnectedClients:    s.connected.Load(),
		TotalConnections:    s.totalConns.Load(),
		TotalCommands:       s.cmds.total(),
		RejectedConnections: s.rejected.Load(),
		AuthFailures:        s.authFailures.Load(),
	}
}

// Serve accepts connections on ln until Shutdown, and returns
// ErrServerClosed then. Temporary accept errors are retried with backoff.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.mu.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.mu.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.mu.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.opts.Logger.Warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
				select {
				case <-time.After(backoff):
				case <-s.ctx.Done():
				}
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		backoff = 0
		s.accept(nc)
	}
}

func (s *Server) accept(nc net.Conn) {
	s.mu.Lock()
	if s.mu.closing {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.mu.conns) >= s.opts.MaxClients {
		s.mu.Unlock()
		s.rejected.Add(1)
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
		nc.Close()
		return
	}
	c := newConn(s, nc)
	s.mu.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.connected.Add(1)
	s.totalConns.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.mu.conns, c)
		s.mu.Unlock()
		s.connected.Add(-1)
	}()
}

// Shutdown stops accepting, lets every connection finish the command it is
// running (replies already computed are flushed), closes the connections and
// waits for their goroutines, or for ctx. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.mu.closing
	s.mu.closing = true
	for ln := range s.mu.listeners {
		ln.Close()
	}
	for c := range s.mu.conns {
		c.stop() // ends the read loop at the next command boundary
	}
	s.mu.Unlock()
	if first {
		s.cancel()
		s.leases.Close()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.mu.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
