package lease

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrFull is Acquire's refusal at the table's bound (Options.Max).
var ErrFull = errors.New("lease: max number of leases reached")

// Bytes is the most memory one lease or one waiter holds, for keys of up
// to 128 bytes (a longer key adds its length): the lease's map entry, key,
// token and expiry timer, or a waiter, its notify channel and its place in
// the queue. Measured by TestBytes (live Go heap after collection, 96-byte
// keys, 1,000 to 300,000 leases): 373-407 bytes per lease, 192 per waiter;
// 512 leaves room for the map's growth. The 166 MiB of RSS that 300,000
// leases added before there was a bound (580 bytes each) is that heap and
// the garbage collector's headroom, which the daemon's Go memory limit
// caps.
const Bytes = 512

// DefaultMax is Options.Max's default.
const DefaultMax = 100_000

// Options configure a Table.
type Options struct {
	// Max bounds the leases and waiters held together. Default DefaultMax.
	Max int
}

// Table holds the leases of every key.
type Table struct {
	max int64 // most leases and waiters together

	mu struct {
		sync.Mutex // guards m and every lease and waiter in it
		m          map[string]*lease
		closed     bool
	}
	active atomic.Int64 // len(mu.m): Complete skips the lock while it is 0

	granted atomic.Uint64 // leases given out, including hand-overs to waiters
	waits   atomic.Uint64 // keys an Acquire queued for
	wakeups atomic.Uint64 // waiters answered with the value of a Complete
	expired atomic.Uint64 // leases that reached their TTL
	refused atomic.Uint64 // grants and waits refused at max
	waiting atomic.Int64  // waiters now
}

// lease is one key's lease: its holder's token and the clients waiting.
type lease struct {
	token   string
	timer   *time.Timer // expires the lease
	waiters []*Waiter
}

// State is what became of a key for a Waiter.
type State int

// A Waiter's states.
const (
	Waiting State = iota // still queued
	Hit                  // the key was completed with a value
	Granted              // the lease was handed over to the waiter
	Miss                 // it left the queue with neither
	// Unreachable is a fleet's answer for a key whose owner did not
	// answer (package peer): its lease is then taken locally. A Table
	// never gives it.
	Unreachable
)

// Waiter is one key of one waiting caller. Its fields other than notify
// and ttl are guarded by the Table's mutex.
type Waiter struct {
	notify chan<- struct{} // one send when the waiter is resolved
	ttl    time.Duration   // the lease's TTL if it is handed over
	state  State
	value  []byte // Hit: the value completed
	token  string // Granted: the lease handed over
}

// NewWaiter returns a Waiter that, once resolved, sends once on notify
// and takes a lease handed over to it for ttl. Waiters of one caller may
// share notify: it then needs room for one send per waiter, as a resolved
// waiter's send never blocks the table.
func NewWaiter(notify chan<- struct{}, ttl time.Duration) *Waiter {
	return &Waiter{notify: notify, ttl: ttl}
}

// Outcome is what became of w: Hit and the value, Granted and the token,
// or Miss. It is final once Leave has returned.
func (w *Waiter) Outcome() (st State, value []byte, token string) {
	return w.state, w.value, w.token
}

// New returns an empty Table.
func New(opts Options) *Table {
	if opts.Max <= 0 {
		opts.Max = DefaultMax
	}
	t := &Table{max: int64(opts.Max)}
	t.mu.m = make(map[string]*lease)
	return t
}

// Max is the bound on leases and waiters together.
func (t *Table) Max() int { return int(t.max) }

// newToken returns a random lease token.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Acquire grants key's lease for ttl if no one holds it and returns its
// token. Otherwise, with w non-nil, w is queued behind the holder (queued);
// with w nil the caller is told nothing is available (token ""). A grant
// or a wait that would take the table past its bound is refused with
// ErrFull; a miss without a wait holds nothing and is not. After Close,
// nothing is available.
func (t *Table) Acquire(key []byte, ttl time.Duration, w *Waiter) (token string, queued bool, err error) {
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
		return "", false, ErrFull
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
func (t *Table) armLocked(key string, l *lease, ttl time.Duration) {
	tok := l.token
	l.timer = time.AfterFunc(ttl, func() { t.expire(key, tok) })
}

// expire ends key's lease if tok still holds it.
func (t *Table) expire(key, tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := t.mu.m[key]; l != nil && l.token == tok {
		t.expired.Add(1)
		t.handOverLocked(key, l)
	}
}

// Release ends key's lease if tok holds it and reports whether it did;
// the first waiter, if any, takes it over.
func (t *Table) Release(key []byte, tok string) bool {
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
func (t *Table) handOverLocked(key string, l *lease) {
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
	t.resolveLocked(w, Granted, nil, l.token)
}

func (t *Table) resolveLocked(w *Waiter, st State, value []byte, tok string) {
	w.state, w.value, w.token = st, value, tok
	t.waiting.Add(-1)
	w.notify <- struct{}{}
}

// Complete ends key's lease, whoever holds it, after key was stored with
// value, and wakes every waiter with it. value is copied: it may live in
// a buffer the cache recycles.
func (t *Table) Complete(key, value []byte) {
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
		t.resolveLocked(w, Hit, v, "")
		t.wakeups.Add(1)
	}
}

// Leave takes w, queued for key, out of the queue if it is still waiting
// (it becomes a Miss). With abandon (its caller is gone), a lease it was
// handed is passed on at once.
func (t *Table) Leave(key []byte, w *Waiter, abandon bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.mu.m[string(key)]
	switch {
	case w.state == Waiting:
		w.state = Miss
		t.waiting.Add(-1)
		if l != nil {
			if i := slices.Index(l.waiters, w); i >= 0 {
				l.waiters = slices.Delete(l.waiters, i, i+1)
			}
		}
	case w.state == Granted && abandon && l != nil && l.token == w.token:
		t.handOverLocked(string(key), l)
	}
}

// Close stops every lease's timer and wakes no one: its user is stopping
// and its waiters end with it. Acquire grants nothing afterwards.
// Idempotent.
func (t *Table) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.closed = true
	for _, l := range t.mu.m {
		l.timer.Stop()
	}
}

// Stats are a Table's counters, for INFO and Prometheus.
type Stats struct {
	// Granted are leases given out, hand-overs to waiters included;
	// Waits the keys a caller queued for; Wakeups the waiters answered
	// with a completed value; Expired the leases that reached their TTL;
	// Refused the grants and waits refused at Max.
	Granted, Waits, Wakeups, Expired, Refused uint64
	// Active are the leases held now, Waiting the waiters queued now.
	Active, Waiting int64
	// Max is the bound on Active + Waiting.
	Max int64
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	return Stats{Granted: t.granted.Load(), Waits: t.waits.Load(), Wakeups: t.wakeups.Load(),
		Expired: t.expired.Load(), Refused: t.refused.Load(), Active: t.active.Load(),
		Waiting: t.waiting.Load(), Max: t.max}
}
