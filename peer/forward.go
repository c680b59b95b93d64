package peer

import (
	"errors"
	"io"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// maxBatch is the most bytes of forwarded writes sent to a peer before
// their replies are read (a single larger write goes alone).
const maxBatch = 4 << 20

// Forward sends a SET of key to its owner in the background, when
// another member owns it, and reports whether it was queued. tag is the
// version the value was stored under here (its record's Header().Tag):
// the owner stores it only if that is its own version of the key's model.
// expireAt is in Unix milliseconds, 0 for none. Key and value are copied:
// the caller may reuse them once Forward returns.
//
// A write that does not fit in the queue (QueueBytes) or whose owner's
// breaker is open is dropped and counted (SetsDropped). Writes of one
// key reach its owner in the order they were forwarded.
func (c *Client) Forward(key, value []byte, expireAt int64, tag string) bool {
	n := frameHeader + setFixed + len(tag) + len(key) + len(value)
	if len(value) > c.opts.MaxValue || len(tag) > tier.MaxTagLen || n-frameHeader > maxRequest(c.opts.MaxValue) {
		if c.remoteFor(key) != nil {
			c.stats.setsDropped.Add(1)
		}
		return false
	}
	return c.enqueue(key, true, n, func(b []byte) []byte { return appendSet(b, key, value, expireAt, tag) }, nil)
}

// ForwardDelete deletes key at its owner, when another member owns it, and
// reports whether it was queued. It goes through the same ordered queue as
// Forward (so it lands after the SETs of key forwarded before it) and then
// waits for the owner's answer, at most Timeout: a lookup of key on this
// daemon right after it does not find the owner's old copy, unless the
// owner was slower than that. It deletes the owner's copy only: near
// copies other daemons keep live until evicted (a delete is not a
// fleet-wide invalidation; a rollout is).
func (c *Client) ForwardDelete(key []byte) bool {
	return c.enqueueWait(key, frameHeader+len(key), func(b []byte) []byte { return appendKeyOp(b, opDelete, key) })
}

// ForwardExpire sets key's expiry at its owner, when another member owns
// it, as tier.Hybrid.Expire does with expireAt (Unix ms, 0: none) and
// cond, and reports whether it was queued; it waits for the owner's answer
// as ForwardDelete does.
func (c *Client) ForwardExpire(key []byte, expireAt int64, cond tier.ExpireCond) bool {
	return c.enqueueWait(key, frameHeader+9+len(key), func(b []byte) []byte { return appendExpire(b, key, expireAt, byte(cond)) })
}

// enqueueWait queues an update (not a SET) and waits until it is settled
// (answered, or dropped) or Timeout has passed.
func (c *Client) enqueueWait(key []byte, n int, build func([]byte) []byte) bool {
	done := make(chan struct{})
	if !c.enqueue(key, false, n, build, done) {
		return false
	}
	t := time.NewTimer(c.opts.Timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	return true
}

// enqueue queues the write of n bytes that build encodes for key's
// owner, if it fits in QueueBytes (a write larger than QueueBytes fits
// an empty queue) and the owner's breaker is closed. done, if not nil, is
// closed once the write is settled.
func (c *Client) enqueue(key []byte, set bool, n int, build func([]byte) []byte, done chan struct{}) bool {
	r := c.remoteFor(key)
	if r == nil {
		return false
	}
	if r.down.Load() || !c.reserve(int64(n)) {
		c.dropped(set, 1)
		return false
	}
	f := forward{frame: build(make([]byte, 0, n)), set: set, done: done}
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		c.unqueue(int64(n))
		c.dropped(set, 1)
		return false
	}
	r.mu.queue = append(r.mu.queue, f)
	r.mu.Unlock()
	r.kick()
	return true
}

// reserve takes n bytes of the queue's bound.
func (c *Client) reserve(n int64) bool {
	for {
		q := c.queued.Load()
		if q > 0 && q+n > c.opts.QueueBytes {
			return false
		}
		if c.queued.CompareAndSwap(q, q+n) {
			return true
		}
	}
}

func (c *Client) dropped(set bool, n int) {
	if set {
		c.stats.setsDropped.Add(uint64(n))
	} else {
		c.stats.updatesDropped.Add(uint64(n))
	}
}

// take removes from the queue the writes of the next batch: at least one,
// up to maxBatch bytes.
func (r *remote) take() []forward {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, size := 0, 0
	for n < len(r.mu.queue) && (n == 0 || size+len(r.mu.queue[n].frame) <= maxBatch) {
		size += len(r.mu.queue[n].frame)
		n++
	}
	batch := r.mu.queue[:n:n]
	r.mu.queue = r.mu.queue[n:]
	if len(r.mu.queue) == 0 {
		r.mu.queue = nil
	}
	return batch
}

// dropQueued drops every queued write (the breaker is open, or the
// client is closing), counted.
func (r *remote) dropQueued() {
	r.mu.Lock()
	q := r.mu.queue
	r.mu.queue = nil
	r.mu.Unlock()
	r.settle(q, nil)
}

// settle gives back the queue bytes of batch and counts each write by its
// reply status (nil: none, the write was dropped).
func (r *remote) settle(batch []forward, replies []byte) {
	st := &r.c.stats
	for i, f := range batch {
		if f.done != nil {
			defer close(f.done) // once counted
		}
		switch {
		case i >= len(replies):
			r.c.dropped(f.set, 1)
			if f.set {
				r.c.reportDropped(f.frame)
			}
		case f.set && replies[i] == stOK:
			st.setsForwarded.Add(1)
		case f.set:
			st.setsRefused.Add(1)
		case replies[i] == stOK:
			st.updatesForwarded.Add(1)
		default:
			st.updatesDropped.Add(1)
		}
		// Given back once the write is counted and reported, so that
		// Flush returns only after that.
		r.c.unqueue(int64(len(f.frame)))
	}
}

// reportDropped tells OnSetDropped's function of the SET frame carries.
func (c *Client) reportDropped(frame []byte) {
	fn := c.setDropped.Load()
	if fn == nil {
		return
	}
	req, err := parseSet(frame[frameHeader:])
	if err != nil {
		return // cannot happen: appendSet built it
	}
	(*fn)(req.key, req.value, string(req.tag))
}

// sendQueued sends the queued writes, batch after batch, until the queue
// is empty or the peer fails.
func (r *remote) sendQueued() {
	for !r.down.Load() {
		batch := r.take()
		if len(batch) == 0 {
			return
		}
		r.settle(batch, r.send(batch))
	}
}

// send writes a batch on one connection, pipelined, and returns the
// status of each reply it read; fewer than the batch when the peer
// failed, which opens its breaker.
func (r *remote) send(batch []forward) []byte {
	deadline := time.Now().Add(r.c.opts.ForwardTimeout)
	replies := make([]byte, 0, len(batch))
	for {
		cc, err := r.acquire(deadline)
		if err != nil {
			r.failed(err)
			return replies
		}
		_ = cc.nc.SetDeadline(deadline)
		for _, f := range batch {
			if _, err = cc.bw.Write(f.frame); err != nil {
				break
			}
		}
		if err == nil {
			err = cc.bw.Flush()
		}
		for err == nil && len(replies) < len(batch) {
			var kind byte
			kind, _, err = cc.readReply(maxHelloFrame)
			if err == nil {
				replies = append(replies, kind)
			}
		}
		if err == nil {
			r.release(cc, true)
			return replies
		}
		r.release(cc, false)
		replied := len(replies) > 0 || errors.Is(err, ErrProtocol) || errors.Is(err, io.ErrUnexpectedEOF)
		if retryable(cc, replied, err) {
			continue
		}
		r.failed(err)
		return replies
	}
}
