package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// Leases protect a key against stampedes: when many clients miss it at
// once, the first gets a lease (a token) and computes the value; the others
// wait until a SET of the key completes the lease and wakes them with the
// value, the lease expires or is released (then the first waiter takes it
// over), or their wait runs out. Leases live in this daemon's memory only.
//
// Bounds: the table holds at most Options.MaxLeases leases and waiters
// together; a LEASE.GET or LEASE.MGET that would add one past it is
// refused with an error and grants nothing (errLeasesFull). A connection
// waits in at most one command at a time, and a waiter whose client hangs
// up is removed at once (watchHangup), with any lease it was handed passed
// on.

// leaseTable holds the leases of every key.
type leaseTable struct {
	mu struct {
		sync.Mutex // guards m and every lease and waiter in it
		m          map[string]*lease
		closed     bool
	}
	active atomic.Int64 // len(mu.m): a SET skips the table while it is 0
	max    int64        // most leases and waiters together

	granted atomic.Uint64 // leases given out, including hand-overs to waiters
	waits   atomic.Uint64 // keys a LEASE.GET/MGET waited for
	wakeups atomic.Uint64 // waiters answered with the value of a SET
	expired atomic.Uint64 // leases that reached their TTL
	waiting atomic.Int64  // waiters now
	refused atomic.Uint64 // leases and waits refused at max
}

// lease is one key's lease: its holder's token and the clients waiting.
type lease struct {
	token   string
	timer   *time.Timer // expires the lease
	waiters []*leaseWaiter
}

// Waiter states, and the answer for a key.
const (
	leaseWaiting = iota
	leaseHit     // the value is there (or was SET while waiting)
	leaseGranted // the caller holds the lease
	leaseMiss    // no value, and another client holds the lease
)

// leaseWaiter is one key of one waiting command. Its fields other than
// notify and ttl are guarded by leaseTable.mu.
type leaseWaiter struct {
	notify chan struct{} // shared by the command's waiters; one send per waiter resolved
	ttl    time.Duration // the lease's TTL if it is handed over
	state  int
	value  []byte // leaseHit: the value SET
	token  string // leaseGranted: the lease handed over
}

// LeaseBytes is the most memory one lease or one waiter holds, for keys
// of up to 128 bytes (a longer key adds its length): the lease's map entry,
// key, token and expiry timer, or a waiter and its notify channel.
// Measured by TestLeaseBytes (live Go heap after collection, 96-byte keys,
// 1,000 to 300,000 leases): 373-407 bytes per lease, 192 per waiter; 512
// leaves room for the map's growth. The 166 MiB of RSS that 300,000
// leases added before the bound (580 bytes each) is that heap and the
// garbage collector's headroom, which the daemon's Go memory limit caps.
const LeaseBytes = 512

// errLeasesFull is acquire's refusal at the table's bound.
var errLeasesFull = errors.New("server: max number of leases reached")

func newLeaseTable(max int) *leaseTable {
	t := &leaseTable{max: int64(max)}
	t.mu.m = make(map[string]*lease)
	return t
}

// newToken returns a random lease token.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// acquire grants key's lease for ttl if no one holds it and returns its
// token. Otherwise, with w non-nil, w is queued behind the holder (queued);
// with w nil the caller is told nothing is available (token ""). A grant
// or a wait that would take the table past its bound is refused with
// errLeasesFull; a miss without a wait holds nothing and is not.
func (t *leaseTable) acquire(key []byte, ttl time.Duration, w *leaseWaiter) (token string, queued bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return "", false, nil
	}
	l := t.mu.m[string(key)]
	if l != nil && w == nil {
		return "", false, nil
	}
	if t.active.Load()+t.waiting.Load() >= t.max {
		t.refused.Add(1)
		return "", false, errLeasesFull
	}
	if l != nil {
		l.waiters = append(l.waiters, w)
		t.waits.Add(1)
		t.waiting.Add(1)
		return "", true, nil
	}
	l = &lease{token: newToken()}
	k := string(key)
	t.mu.m[k] = l
	t.active.Add(1)
	t.granted.Add(1)
	t.armLocked(k, l, ttl)
	return l.token, false, nil
}

// armLocked starts l's expiry timer for its current token.
func (t *leaseTable) armLocked(key string, l *lease, ttl time.Duration) {
	tok := l.token
	l.timer = time.AfterFunc(ttl, func() { t.expire(key, tok) })
}

// expire ends key's lease if tok still holds it.
func (t *leaseTable) expire(key, tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := t.mu.m[key]; l != nil && l.token == tok {
		t.expired.Add(1)
		t.handOverLocked(key, l)
	}
}

// release ends key's lease if tok holds it and reports whether it did.
func (t *leaseTable) release(key []byte, tok string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.mu.m[string(key)]
	if l == nil || l.token != tok {
		return false
	}
	t.handOverLocked(string(key), l)
	return true
}

// handOverLocked passes l to its first waiter, or removes it if none waits.
func (t *leaseTable) handOverLocked(key string, l *lease) {
	l.timer.Stop()
	if len(l.waiters) == 0 {
		delete(t.mu.m, key)
		t.active.Add(-1)
		return
	}
	w := l.waiters[0]
	l.waiters[0] = nil
	l.waiters = l.waiters[1:]
	l.token = newToken()
	t.granted.Add(1)
	t.armLocked(key, l, w.ttl)
	t.resolveLocked(w, leaseGranted, nil, l.token)
}

func (t *leaseTable) resolveLocked(w *leaseWaiter, state int, value []byte, tok string) {
	w.state, w.value, w.token = state, value, tok
	t.waiting.Add(-1)
	w.notify <- struct{}{}
}

// complete ends key's lease after a SET of value, waking every waiter with
// it. value is copied: it may live in a buffer the cache recycles.
func (t *leaseTable) complete(key, value []byte) {
	if t.active.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.mu.m[string(key)]
	if l == nil {
		return
	}
	l.timer.Stop()
	delete(t.mu.m, string(key))
	t.active.Add(-1)
	if len(l.waiters) == 0 {
		return
	}
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	for _, w := range l.waiters {
		t.resolveLocked(w, leaseHit, v, "")
		t.wakeups.Add(1)
	}
}

// leave takes w, queued for key, out of the queue if it is still waiting
// (it becomes a miss). With abandon (its client is leaseMiss), a lease it was
// handed is passed on at once.
func (t *leaseTable) leave(key []byte, w *leaseWaiter, abandon bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.mu.m[string(key)]
	switch {
	case w.state == leaseWaiting:
		w.state = leaseMiss
		t.waiting.Add(-1)
		if l != nil {
			if i := slices.Index(l.waiters, w); i >= 0 {
				l.waiters = slices.Delete(l.waiters, i, i+1)
			}
		}
	case w.state == leaseGranted && abandon && l != nil && l.token == w.token:
		t.handOverLocked(string(key), l)
	}
}

// close stops every lease's timer and wakes no one: the server is stopping
// and its connections end with it.
func (t *leaseTable) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.closed = true
	for _, l := range t.mu.m {
		l.timer.Stop()
	}
}

// leaseStats are the lease counters, for INFO and Prometheus.
type leaseStats struct {
	Granted, Waits, Wakeups, Expired, Refused uint64
	Active, Waiting, Max                      int64
}

func (t *leaseTable) stats() leaseStats {
	return leaseStats{Granted: t.granted.Load(), Waits: t.waits.Load(), Wakeups: t.wakeups.Load(),
		Expired: t.expired.Load(), Refused: t.refused.Load(), Active: t.active.Load(),
		Waiting: t.waiting.Load(), Max: t.max}
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
	if c.s.leases.release(args[1], string(args[2])) {
		c.w.int(1)
	} else {
		c.w.int(0)
	}
	return false
}

// leaseResult is one key's answer.
type leaseResult struct {
	state int // leaseHit, leaseGranted or leaseMiss
	value []byte
	token string
	w     *leaseWaiter // queued behind another holder, nil if not
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
			r.state, r.value = leaseHit, rec.Value()
			continue
		}
		if !errors.Is(err, tier.ErrNotFound) {
			c.releaseGranted(keys, res)
			c.replyErr(err)
			return false
		}
		var w *leaseWaiter
		if wait > 0 {
			if notify == nil {
				notify = make(chan struct{}, len(keys))
			}
			w = &leaseWaiter{notify: notify, ttl: ttl}
		}
		tok, q, err := c.s.leases.acquire(k, ttl, w)
		if err != nil {
			// Grant nothing: pass on the leases already granted, and
			// take the waiters already queued out of their queues.
			c.leaveQueued(keys[:i], res[:i])
			c.releaseGranted(keys[:i], res[:i])
			c.w.error(fmt.Sprintf("ERR max number of leases reached (--max-leases %d)", c.s.leases.max))
			return false
		}
		switch {
		case q:
			r.w = w
			queued++
		case tok == "":
			r.state = leaseMiss
		default:
			// A SET may have landed between the miss and the grant: look
			// again, so that no one computes a value that is there.
			if rec, err := c.s.opts.Cache.Get(k); err == nil {
				r.state, r.value = leaseHit, rec.Value()
				c.s.leases.complete(k, r.value)
				continue
			}
			r.state, r.token = leaseGranted, tok
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
		case leaseHit:
			c.w.bulkString("hit")
			c.w.bulk(r.value)
		case leaseGranted:
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
		if res[i].state == leaseHit {
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
		c.s.leases.leave(k, r.w, hungUp)
		r.state, r.value, r.token = r.w.state, r.w.value, r.w.token
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
			c.s.leases.leave(keys[i], w, true)
			res[i].state = leaseMiss
		}
	}
}

// releaseGranted passes on the leases granted to this command, which will
// not be answered.
func (c *conn) releaseGranted(keys [][]byte, res []leaseResult) {
	for i, r := range res {
		if r.state == leaseGranted {
			c.s.leases.release(keys[i], r.token)
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
