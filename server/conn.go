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
)

// conn is one client connection. Its goroutine reads commands, runs them in
// order and writes the replies, flushing when no more input is buffered
// (pipelined commands are answered in one write).
type conn struct {
	s        *Server
	nc       net.Conn
	rd       *reader
	w        writer
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
	c.rd = newReader(nc, s.budget, s.ctx, s.opts.MaxValue, s.opts.MaxInflight, s.opts.MaxArgs)
	c.w = writer{conn: nc, timeout: s.opts.WriteTimeout}
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
					if c.w.flush(time.Now()) != nil {
						return
					}
				}
				continue
			case errors.As(err, &pe):
				c.w.error(pe.Error())
				_ = c.w.flush(time.Now())
				return
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded), c.stopping.Load():
			default:
				c.s.opts.Logger.Debug("connection read failed", zap.Int64("client", c.id), zap.Error(err))
			}
			_ = c.w.flush(time.Now())
			return
		}
		if len(args) == 0 {
			continue
		}
		quit := c.exec(args)
		if quit || c.stopping.Load() {
			_ = c.w.flush(c.now)
			return
		}
		if !c.rd.buffered() || c.w.queued() > 1<<20 {
			if c.w.flush(c.now) != nil {
				return
			}
		}
	}
}

// exec runs one command and reports whether the connection should close.
func (c *conn) exec(args [][]byte) (quit bool) {
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
