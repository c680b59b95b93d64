package server

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tiercache/tiercache/internal/bufpool"
)

// conn is one client connection. Its goroutine reads commands, runs them in
// order and writes the replies, flushing when no more input is buffered
// (pipelined commands are answered in one write).
type conn struct {
	s        *Server
	nc       net.Conn
	rd       *reader
	w        writer
	guard    *bufpool.Guard // pinned from a command's start until its reply is flushed
	id       int64
	name     string
	authed   bool
	stopping atomic.Bool
	created  time.Time
	lastCmd  string
	now      time.Time // when the last command started
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, id: s.nextID.Add(1), created: time.Now()}
	bufs := s.opts.Cache.Buffers()
	c.rd = newReader(nc, s.budget, s.ctx, s.opts.MaxValue, s.opts.MaxInflight, s.opts.MaxArgs, bufs)
	c.guard = bufs.Guard()
	c.w = writer{conn: nc, timeout: s.opts.WriteTimeout, pool: bufs}
	c.authed = s.opts.RequirePass == ""
	return c
}

// stop asks the connection to end after the command it is running; a
// connection waiting for input is woken by the past read deadline.
func (c *conn) stop() {
	c.stopping.Store(true)
	_ = c.nc.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	defer c.nc.Close()
	defer c.guard.Close()
	defer c.w.drop() // after a failed write: what was queued is never sent
	defer c.rd.release()
	for {
		args, err := c.rd.readCommand()
		if err != nil {
			var ce commandError
			var pe protocolError
			switch {
			case errors.As(err, &ce):
				c.w.error(string(ce))
				if !c.rd.buffered() {
					if c.flush(time.Now()) != nil {
						return
					}
				}
				continue
			case errors.As(err, &pe):
				c.w.error(pe.Error())
				_ = c.flush(time.Now())
				return
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded), c.stopping.Load():
			default:
				c.s.opts.Logger.Debug("connection read failed", zap.Int64("client", c.id), zap.Error(err))
			}
			_ = c.flush(time.Now())
			return
		}
		if len(args) == 0 {
			continue
		}
		quit := c.exec(args)
		if quit || c.stopping.Load() {
			_ = c.flush(c.now)
			return
		}
		if !c.rd.buffered() || c.w.queued() > 1<<20 {
			if c.flush(c.now) != nil {
				return
			}
		}
	}
}

// flush writes the queued replies. The guard, pinned while the commands
// ran, is unpinned before the write, which a slow client can block for up
// to the write timeout: the large values queued are held by the writer
// itself (and small replies are copies), so a blocked client does not stop
// other connections' buffers from being reused. Only when the writer could
// not hold a value does the guard stay pinned until it is sent.
func (c *conn) flush(now time.Time) error {
	if !c.w.mustPin {
		c.guard.Unpin()
	}
	err := c.w.flush(now)
	c.guard.Unpin()
	return err
}

// exec runs one command and reports whether the connection should close.
func (c *conn) exec(args [][]byte) (quit bool) {
	c.guard.Pin()
	defer c.rd.finish()
	start := time.Now()
	c.now = start
	cmd := lookup(args[0])
	name, idx := "unknown", cmdUnknown
	if cmd != nil {
		name, idx = cmd.name, cmd.idx
	}
	defer func() { c.s.cmds.observe(uint64(c.id), idx, time.Since(start)) }()
	c.lastCmd = name
	switch {
	case cmd == nil:
		c.w.error(unknownCommand(args))
	case !c.authed && !cmd.noAuth:
		c.w.error("NOAUTH Authentication required.")
	case (cmd.arity > 0 && len(args) != cmd.arity) || (cmd.arity < 0 && len(args) < -cmd.arity):
		c.w.error("ERR wrong number of arguments for '" + cmd.name + "' command")
	default:
		if c.s.opts.Sync != nil && needsSync(cmd, args) {
			if err := c.s.opts.Sync(c.s.ctx); err != nil {
				c.w.error("ERR model registry not in sync: " + err.Error())
				return false
			}
		}
		return cmd.run(c, args)
	}
	return false
}

// needsSync reports whether cmd touches model state: a MODEL.* command, or
// a key argument that is model-scoped.
func needsSync(cmd *command, args [][]byte) bool {
	if strings.HasPrefix(cmd.name, "model.") {
		return true
	}
	if cmd.first == 0 {
		return false
	}
	last := cmd.last
	if last < 0 {
		last = len(args) - 1
	}
	for i := cmd.first; i <= last && i < len(args); i += cmd.step {
		if len(args[i]) > 0 && args[i][0] == '{' {
			return true
		}
	}
	return false
}
