package peer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/tiercache/tiercache/lease"
	"github.com/tiercache/tiercache/tier"
)

// Leases across the fleet: LEASE.GET and LEASE.MGET of a key another
// member owns are taken at the owner (opLeaseGet), so that one member
// computes each key for the whole fleet. A lease request may wait, up to
// its WAIT, so it goes on a connection of its own, from a second pool of
// each remote (leaseConn), and never delays the pipelined GETs.

// tokenSep separates the token an owner granted from the owner's member
// id in the token a client is given: LEASE.RELEASE then goes to the
// member that granted it, wherever the key's ownership has moved since.
const tokenSep = "@"

// LeaseRemote reports whether key's lease is taken at another member:
// another member owns key and its breaker is closed (OwnerUp).
func (c *Client) LeaseRemote(key []byte) bool { return c.OwnerUp(key) }

// Lease takes the leases of keys at their owners, one request per owner,
// concurrently, as LEASE.MGET ttl WAIT wait does there, and returns one
// answer per key: a Hit with the owner's record (whose version the
// caller must check, as Get's), Granted with a token naming the owner,
// Miss, or Unreachable when this daemon owns the key, or its owner's
// breaker is open, or the owner failed or did not answer within Timeout
// plus wait: the caller then takes the lease locally. An owner at its
// bound makes Lease return a *lease.FullError. When ctx is done (the
// caller's client hung up), the requests are abandoned: their
// connections close, and the owners pass on what they granted.
func (c *Client) Lease(ctx context.Context, keys [][]byte, ttl, wait time.Duration) ([]lease.Answer, error) {
	ans := make([]lease.Answer, len(keys))
	byOwner := map[*remote][]int{}
	for i, k := range keys {
		ans[i].State = lease.Unreachable
		if r := c.remoteFor(k); r != nil && !r.down.Load() {
			byOwner[r] = append(byOwner[r], i)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex // guards first
	var first error
	for r, idx := range byOwner {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := make([][]byte, len(idx))
			for j, i := range idx {
				sub[j] = keys[i]
			}
			got, err := r.lease(ctx, sub, ttl, wait)
			if err != nil {
				mu.Lock()
				first = firstErr(first, err)
				mu.Unlock()
				return
			}
			for j, i := range idx {
				ans[i] = got[j]
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return ans, nil
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// ReleaseLease releases key's lease at the member that granted token,
// when token names one (Lease's tokens do), and reports whether it did
// (released) and whether token was such a token (remote). A member that
// is gone or does not answer within Timeout released nothing.
func (c *Client) ReleaseLease(key []byte, token string) (released, remote bool) {
	tok, id, ok := strings.Cut(token, tokenSep)
	if !ok || id == "" {
		return false, false
	}
	m, ok := c.opts.Ring.Member(id)
	if !ok || id == c.opts.Self {
		return false, true
	}
	r := c.remote(m)
	if r == nil || r.down.Load() {
		return false, true
	}
	deadline := time.Now().Add(c.opts.Timeout)
	kind, body, err := r.leaseRequest(context.Background(), deadline, appendLeaseRelease(nil, key, tok), maxHelloFrame)
	if err != nil {
		r.failed(err)
		return false, true
	}
	return kind == stOK && len(body) == 1 && body[0] == 1, true
}

// lease sends one lease request for keys, all owned by r. It returns the
// answers, all Unreachable when the request failed, or a
// *lease.FullError.
func (r *remote) lease(ctx context.Context, keys [][]byte, ttl, wait time.Duration) ([]lease.Answer, error) {
	ans := make([]lease.Answer, len(keys))
	for i := range ans {
		ans[i].State = lease.Unreachable
	}
	ttlMs, waitMs := ceilMs(ttl), ceilMs(wait)
	deadline := time.Now().Add(r.c.opts.Timeout + time.Duration(waitMs)*time.Millisecond)
	kind, body, err := r.leaseRequest(ctx, deadline, appendLeaseGet(nil, keys, ttlMs, waitMs), len(keys)*maxRequest(r.c.opts.MaxValue))
	switch {
	case ctx.Err() != nil:
		return ans, nil // abandoned: nobody reads the answers
	case err != nil:
		r.failed(err)
		return ans, nil
	}
	switch kind {
	case stOK:
		if err := parseLeaseAnswers(body, ans, r.m.ID); err != nil {
			r.failed(err)
			for i := range ans {
				ans[i] = lease.Answer{State: lease.Unreachable}
			}
		}
		return ans, nil
	case stFull:
		if len(body) == 8 {
			return nil, &lease.FullError{Max: int(binary.LittleEndian.Uint64(body))}
		}
	case stStale, stError:
		// The owner's registry is at another version of the model than
		// ours (a rollout in progress), or it could not look up: the
		// lease is taken here.
		r.c.stats.errors.Add(1)
		return ans, nil
	}
	r.failed(fmt.Errorf("%w: LEASE.GET answered with status %d", ErrProtocol, kind))
	return ans, nil
}

// ceilMs is d in whole milliseconds, rounded up.
func ceilMs(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// parseLeaseAnswers fills in ans from an opLeaseGet's reply; tokens get
// the owner's id.
func parseLeaseAnswers(body []byte, ans []lease.Answer, owner string) error {
	for i := range ans {
		if len(body) < 1 {
			return fmt.Errorf("%w: LEASE.GET reply truncated at answer %d", ErrProtocol, i)
		}
		kind := body[0]
		body = body[1:]
		switch kind {
		case leaseHit:
			if len(body) < 4 || int(binary.LittleEndian.Uint32(body)) > len(body)-4 {
				return fmt.Errorf("%w: LEASE.GET reply's record truncated", ErrProtocol)
			}
			n := int(binary.LittleEndian.Uint32(body))
			rec := tier.Record(body[4 : 4+n])
			if err := rec.Check(); err != nil {
				return fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			ans[i] = lease.Answer{State: lease.Hit, Record: rec, Value: rec.Value()}
			body = body[4+n:]
		case leaseGranted:
			if len(body) < 2 || int(binary.LittleEndian.Uint16(body)) > len(body)-2 {
				return fmt.Errorf("%w: LEASE.GET reply's token truncated", ErrProtocol)
			}
			n := int(binary.LittleEndian.Uint16(body))
			ans[i] = lease.Answer{State: lease.Granted, Token: string(body[2:2+n]) + tokenSep + owner}
			body = body[2+n:]
		case leaseMiss:
			ans[i] = lease.Answer{State: lease.Miss}
		default:
			return fmt.Errorf("%w: LEASE.GET answer of kind %d", ErrProtocol, kind)
		}
	}
	if len(body) != 0 {
		return fmt.Errorf("%w: LEASE.GET reply with %d bytes after its answers", ErrProtocol, len(body))
	}
	return nil
}

// leaseRequest sends frame on a lease connection and reads its reply, by
// deadline. When ctx is done first, the connection is closed: the owner
// ends the wait and passes on what it granted.
func (r *remote) leaseRequest(ctx context.Context, deadline time.Time, frame []byte, limit int) (kind byte, body []byte, err error) {
	for {
		cc, err := r.leaseConn(deadline)
		if err != nil {
			return 0, nil, err
		}
		stop := context.AfterFunc(ctx, func() { _ = cc.nc.Close() })
		_ = cc.nc.SetDeadline(deadline)
		_, err = cc.bw.Write(frame)
		if err == nil {
			err = cc.bw.Flush()
		}
		replied := false
		if err == nil {
			kind, body, err = cc.readReply(limit)
			replied = err == nil || errors.Is(err, ErrProtocol) || errors.Is(err, io.ErrUnexpectedEOF)
		}
		closed := !stop()
		if err != nil || closed {
			r.leaseDone(cc, false)
			if err == nil {
				err = ctx.Err()
			}
			if ctx.Err() == nil && retryable(cc, replied, err) {
				continue
			}
			return 0, nil, err
		}
		r.leaseDone(cc, true)
		return kind, body, nil
	}
}

// leaseConn returns a connection for a lease request: an idle one of the
// lease pool, or a new one while fewer than MaxLeaseConns are open. With
// all of them busy the request fails at once (errBusy): its keys' leases
// are then taken locally rather than waiting behind other waits.
func (r *remote) leaseConn(deadline time.Time) (*clientConn, error) {
	select {
	case cc := <-r.leaseIdle:
		cc.reused = true
		return cc, nil
	default:
	}
	select {
	case r.leaseSlots <- struct{}{}:
	default:
		return nil, errBusy
	}
	cc, err := r.dial(deadline)
	if err != nil {
		<-r.leaseSlots
		return nil, err
	}
	return cc, nil
}

// leaseDone returns cc to the lease pool after a request it answered
// (ok) while the pool has room for it (MaxConns idle), or closes it.
func (r *remote) leaseDone(cc *clientConn, ok bool) {
	if ok {
		select {
		case r.leaseIdle <- cc:
			return
		default:
		}
	}
	r.untrack(cc)
	<-r.leaseSlots
}
