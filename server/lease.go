package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
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

// Leaser takes LEASE.GET and LEASE.MGET of the keys another fleet member
// owns at that owner, so that one member computes each key for the whole
// fleet; *peer.Cache implements it. LeaseRemote tells which keys it
// takes. Lease answers them, an answer lease.Unreachable meaning that
// the owner could not be asked (the lease is then taken here); a
// *lease.FullError is the owner's refusal at its bound. ReleaseLease
// releases a token another member granted, and reports remote false for
// a token no member granted.
type Leaser interface {
	LeaseRemote(key []byte) bool
	Lease(ctx context.Context, keys [][]byte, ttl, wait time.Duration) ([]lease.Answer, error)
	ReleaseLease(key []byte, token string) (released, remote bool)
}

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
	released := c.s.leases.Release(args[1], string(args[2]))
	if l := c.s.opts.Leaser; !released && l != nil {
		released, _ = l.ReleaseLease(args[1], string(args[2]))
	}
	if released {
		c.w.int(1)
	} else {
		c.w.int(0)
	}
	return false
}

// leaseRun answers keys as LEASE.GET (one key, a bare pair) or LEASE.MGET
// (an array of pairs), from the lease table (lease.Table.Get).
func (c *conn) leaseRun(keys [][]byte, ttl, wait time.Duration, multi bool) (quit bool) {
	for _, k := range keys {
		if err := c.s.opts.Cache.CheckScope(k); err != nil { // no lease for a value that could not be stored
			c.replyErr(err)
			return false
		}
	}
	if l := c.s.opts.Leaser; l != nil {
		for _, k := range keys {
			if l.LeaseRemote(k) {
				return c.fleetLeaseRun(l, keys, ttl, wait, multi)
			}
		}
	}
	ctx, cancel := context.WithCancel(c.s.ctx)
	defer cancel()
	w := c.waiter(cancel)
	ans, err := c.s.leases.Get(ctx, keys, ttl, wait, c.s.opts.Cache.Get, w.pause)
	abandoned := err != nil && (w.hungUp || ctx.Err() != nil) // the client or the server is gone
	w.end(abandoned)
	if abandoned {
		return true
	}
	if err != nil {
		return c.leaseErr(err)
	}
	c.leaseReply(ans, multi)
	return false
}

// fleetLeaseRun is leaseRun for keys of which some are owned by other
// members: those go to their owners (Leaser.Lease) while the others are
// taken here, concurrently; a key whose owner could not be asked is then
// taken here. The connection pauses first (its values are copied as they
// are found), as both sides may wait.
func (c *conn) fleetLeaseRun(l Leaser, keys [][]byte, ttl, wait time.Duration, multi bool) (quit bool) {
	ctx, cancel := context.WithCancel(c.s.ctx)
	defer cancel()
	w := c.waiter(cancel)
	if err := w.pause(); err != nil {
		w.end(true)
		return true
	}
	var local, remote []int
	var rkeys [][]byte
	for i, k := range keys {
		if l.LeaseRemote(k) {
			remote = append(remote, i)
			rkeys = append(rkeys, k)
		} else {
			local = append(local, i)
		}
	}
	type remoteResult struct {
		ans []lease.Answer
		err error
	}
	rc := make(chan remoteResult, 1)
	go func() {
		ans, err := l.Lease(ctx, rkeys, ttl, wait)
		rc <- remoteResult{ans, err}
	}()
	ans := make([]lease.Answer, len(keys))
	lerr := c.localLeases(ctx, keys, local, ans, ttl, wait)
	if lerr != nil {
		cancel() // the owners pass on what they granted
	}
	rr := <-rc
	var retry []int
	if rr.err == nil && lerr == nil {
		for j, i := range remote {
			if ans[i] = rr.ans[j]; ans[i].State == lease.Unreachable {
				retry = append(retry, i)
			}
		}
		lerr = c.localLeases(ctx, keys, retry, ans, ttl, wait)
	}
	abandoned := w.hungUp || c.s.ctx.Err() != nil || (ctx.Err() != nil && lerr == nil && rr.err == nil)
	err := cmpErr(lerr, rr.err)
	if err != nil || abandoned {
		for i, a := range ans {
			if a.State == lease.Granted {
				if !c.s.leases.Release(keys[i], a.Token) {
					l.ReleaseLease(keys[i], a.Token)
				}
			}
		}
	}
	w.end(abandoned || w.hungUp)
	if abandoned || errors.Is(err, context.Canceled) {
		return true
	}
	if err != nil {
		return c.leaseErr(err)
	}
	c.leaseReply(ans, multi)
	return false
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// localLeases takes the leases of keys[idx] from the local table, into
// ans, with lookups whose records are copied (the connection is paused).
func (c *conn) localLeases(ctx context.Context, keys [][]byte, idx []int, ans []lease.Answer, ttl, wait time.Duration) error {
	if len(idx) == 0 {
		return nil
	}
	sub := make([][]byte, len(idx))
	for j, i := range idx {
		sub[j] = keys[i]
	}
	lookup := func(k []byte) (tier.Record, error) {
		c.guard.Pin()
		defer c.guard.Unpin()
		r, err := c.s.opts.Cache.Get(k)
		return slices.Clone(r), err
	}
	got, err := c.s.leases.Get(ctx, sub, ttl, wait, lookup, nil)
	if err != nil {
		return err
	}
	for j, i := range idx {
		ans[i] = got[j]
	}
	return nil
}

// leaseErr answers a LEASE.GET or LEASE.MGET that failed with err.
func (c *conn) leaseErr(err error) (quit bool) {
	var full *lease.FullError
	if errors.As(err, &full) {
		c.w.error(fmt.Sprintf("ERR max number of leases reached (--max-leases %d)", full.Max))
		return false
	}
	c.replyErr(err)
	return false
}

// leaseReply writes the answers: a bare pair, or with multi an array of
// pairs.
func (c *conn) leaseReply(ans []lease.Answer, multi bool) {
	if multi {
		c.w.array(len(ans))
	}
	for _, a := range ans {
		c.w.array(2)
		switch a.State {
		case lease.Hit:
			c.w.bulkString("hit")
			c.w.bulk(a.Value)
		case lease.Granted:
			c.w.bulkString("lease")
			c.w.bulkString(a.Token)
		default:
			c.w.bulkString("miss")
			c.w.null()
		}
	}
}

// leaseWaiter is what a connection does around a lease wait: before it,
// send what earlier pipelined commands queued and unpin the buffers
// (the table copied the values found), then watch for the client hanging
// up, which cancels the wait; after it, pin again.
type leaseWaiter struct {
	c      *conn
	cancel context.CancelFunc
	paused bool
	hungUp bool
	done   chan struct{} // ends the goroutine that cancels on a hangup
	stop   func()        // ends watchHangup
}

func (c *conn) waiter(cancel context.CancelFunc) *leaseWaiter {
	return &leaseWaiter{c: c, cancel: cancel}
}

// pause is lease.Table.Get's pause.
func (w *leaseWaiter) pause() error {
	w.paused = true
	if err := w.c.flush(time.Now()); err != nil {
		w.hungUp = true
		return err
	}
	hup, stop := w.c.watchHangup()
	w.stop, w.done = stop, make(chan struct{})
	go func() {
		select {
		case <-hup:
			w.cancel()
		case <-w.done:
		}
	}()
	return nil
}

// end stops the watch and, unless Get was abandoned (the connection
// then closes), pins the buffers again.
func (w *leaseWaiter) end(abandoned bool) {
	if w.stop != nil {
		close(w.done)
		w.stop()
	}
	if w.paused && !abandoned {
		w.c.guard.Pin()
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
