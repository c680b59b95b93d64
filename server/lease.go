package server

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"syscall"
	"time"

	"github.com/tiercache/tiercache/lease"
	"github.com/tiercache/tiercache/tier"
)

// Leases protect a key against stampedes (package lease holds the table):
// this file is the RESP side, LEASE.GET, LEASE.MGET and LEASE.RELEASE, and
// what only a connection knows: that its client hung up while it waits
// (watchHangup), so that its place in the queue, and any lease it was
// handed, pass on at once. SET and MSET complete a key's lease
// (lease.Table.Complete) after a successful store.

// leaseMs parses a lease TTL or WAIT in milliseconds; ttl must be > 0.
func leaseMs(b []byte, positive bool) (time.Duration, bool) {
	n, ok := parseInt(b)
	if !ok || n < 0 || (positive && n == 0) || n > math.MaxInt64/int64(time.Millisecond) {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// LEASE.GET key ttl-ms [WAIT ms]
func cmdLeaseGet(c *conn, args [][]byte) bool {
	ttl, ok := leaseMs(args[2], true)
	if !ok {
		c.w.error("ERR invalid ttl-ms in 'lease.get' command: a positive integer of milliseconds")
		return false
	}
	var wait time.Duration
	switch len(args) {
	case 3:
	case 5:
		if !bytes.EqualFold(args[3], []byte("WAIT")) {
			c.w.error(errSyntax)
			return false
		}
		if wait, ok = leaseMs(args[4], false); !ok {
			c.w.error("ERR invalid WAIT in 'lease.get' command: a non-negative integer of milliseconds")
			return false
		}
	default:
		c.w.error(errSyntax)
		return false
	}
	return c.leaseRun(args[1:2], ttl, wait, false)
}

// LEASE.MGET ttl-ms WAIT ms key [key …]
func cmdLeaseMget(c *conn, args [][]byte) bool {
	ttl, ok := leaseMs(args[1], true)
	if !ok {
		c.w.error("ERR invalid ttl-ms in 'lease.mget' command: a positive integer of milliseconds")
		return false
	}
	if !bytes.EqualFold(args[2], []byte("WAIT")) {
		c.w.error(errSyntax)
		return false
	}
	wait, ok := leaseMs(args[3], false)
	if !ok {
		c.w.error("ERR invalid WAIT in 'lease.mget' command: a non-negative integer of milliseconds")
		return false
	}
	return c.leaseRun(args[4:], ttl, wait, true)
}

// LEASE.RELEASE key token
func cmdLeaseRelease(c *conn, args [][]byte) bool {
	if c.s.leases.Release(args[1], string(args[2])) {
		c.w.int(1)
	} else {
		c.w.int(0)
	}
	return false
}

// leaseResult is one key's answer.
type leaseResult struct {
	state lease.State // Hit, Granted or Miss
	value []byte
	token string
	w     *lease.Waiter // queued behind another holder, nil if not
}

// leaseRun answers keys as LEASE.GET (one key, a bare pair) or LEASE.MGET
// (an array of pairs).
func (c *conn) leaseRun(keys [][]byte, ttl, wait time.Duration, multi bool) (quit bool) {
	for _, k := range keys {
		if err := c.s.opts.Cache.CheckScope(k); err != nil { // no lease for a value that could not be stored
			c.replyErr(err)
			return false
		}
	}
	res := make([]leaseResult, len(keys))
	var notify chan struct{}
	queued := 0
	for i, k := range keys {
		r := &res[i]
		rec, err := c.s.opts.Cache.Get(k)
		if err == nil {
			r.state, r.value = lease.Hit, rec.Value()
			continue
		}
		if !errors.Is(err, tier.ErrNotFound) {
			c.releaseGranted(keys, res)
			c.replyErr(err)
			return false
		}
		var w *lease.Waiter
		if wait > 0 {
			if notify == nil {
				notify = make(chan struct{}, len(keys))
			}
			w = lease.NewWaiter(notify, ttl)
		}
		tok, q, err := c.s.leases.Acquire(k, ttl, w)
		if err != nil {
			// Grant nothing: pass on the leases already granted, and
			// take the waiters already queued out of their queues.
			c.leaveQueued(keys[:i], res[:i])
			c.releaseGranted(keys[:i], res[:i])
			c.w.error(fmt.Sprintf("ERR max number of leases reached (--max-leases %d)", c.s.leases.Max()))
			return false
		}
		switch {
		case q:
			r.w = w
			queued++
		case tok == "":
			r.state = lease.Miss
		default:
			// A SET may have landed between the miss and the grant: look
			// again, so that no one computes a value that is there.
			if rec, err := c.s.opts.Cache.Get(k); err == nil {
				r.state, r.value = lease.Hit, rec.Value()
				c.s.leases.Complete(k, r.value)
				continue
			}
			r.state, r.token = lease.Granted, tok
		}
	}
	if queued > 0 {
		if c.leaseWait(keys, res, queued, notify, wait) {
			return true
		}
	}
	if multi {
		c.w.array(len(res))
	}
	for _, r := range res {
		c.w.array(2)
		switch r.state {
		case lease.Hit:
			c.w.bulkString("hit")
			c.w.bulk(r.value)
		case lease.Granted:
			c.w.bulkString("lease")
			c.w.bulkString(r.token)
		default:
			c.w.bulkString("miss")
			c.w.null()
		}
	}
	return false
}

// leaseWait waits up to wait for the queued keys of res to resolve and
// fills in their results. It reports whether the client hung up meanwhile
// (its leases are then passed on, and the connection should close).
func (c *conn) leaseWait(keys [][]byte, res []leaseResult, queued int, notify chan struct{}, wait time.Duration) (hungUp bool) {
	// Values found before the wait may live in recycled buffers, which
	// the connection's guard protects only while pinned: keep copies, and
	// unpin for the wait by sending what earlier pipelined commands queued.
	for i := range res {
		if res[i].state == lease.Hit {
			res[i].value = bytes.Clone(res[i].value)
		}
	}
	if c.flush(time.Now()) != nil {
		hungUp = true
	}
	var hup <-chan struct{}
	if !hungUp {
		var stop func()
		hup, stop = c.watchHangup()
		defer stop()
		timer := time.NewTimer(wait)
		defer timer.Stop()
	wait:
		for queued > 0 {
			select {
			case <-notify:
				queued--
			case <-timer.C:
				break wait
			case <-hup:
				hungUp = true
				break wait
			case <-c.s.ctx.Done():
				break wait
			}
		}
	}
	for i, k := range keys {
		r := &res[i]
		if r.w == nil {
			continue
		}
		c.s.leases.Leave(k, r.w, hungUp)
		r.state, r.value, r.token = r.w.Outcome()
	}
	if hungUp {
		c.releaseGranted(keys, res)
		return true
	}
	c.guard.Pin()
	return false
}

// leaveQueued takes the keys of res queued behind another holder out of
// their queues; a lease handed over to one meanwhile is passed on.
func (c *conn) leaveQueued(keys [][]byte, res []leaseResult) {
	for i := range res {
		if w := res[i].w; w != nil {
			c.s.leases.Leave(keys[i], w, true)
			res[i].state = lease.Miss
		}
	}
}

// releaseGranted passes on the leases granted to this command, which will
// not be answered.
func (c *conn) releaseGranted(keys [][]byte, res []leaseResult) {
	for i, r := range res {
		if r.state == lease.Granted {
			c.s.leases.Release(keys[i], r.token)
		}
	}
}

// watchHangup reports, by closing hup, that the client closed or reset
// the connection while a command waits (a blocked command reads nothing, so
// the read loop cannot notice). It peeks at the socket without consuming:
// input that arrives (a pipelined command) ends the watch without a hangup.
// stop ends the watch and waits for it. On connections without a file
// descriptor hup never closes.
func (c *conn) watchHangup() (hup <-chan struct{}, stop func()) {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return nil, func() {}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, func() {}
	}
	ch := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		closed := false
		var b [1]byte
		err := rc.Read(func(fd uintptr) bool {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EAGAIN || err == syscall.EINTR:
				return false
			case err != nil || n == 0:
				closed = true
			}
			return true
		})
		if err == nil && closed {
			close(ch)
		}
	}()
	return ch, func() {
		_ = c.nc.SetReadDeadline(time.Now())
		<-done
		_ = c.nc.SetReadDeadline(time.Time{})
		if c.stopping.Load() {
			_ = c.nc.SetReadDeadline(time.Now()) // Shutdown asked the loop to end
		}
	}
}
