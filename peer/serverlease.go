package peer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/lease"
	"github.com/tiercache/tiercache/tier"
)

// errNoLeases answers a lease request to a server without a lease table.
var errNoLeases = errors.New("this member serves no leases")

// leaseGet answers an opLeaseGet: the keys' leases taken at this owner,
// from its lease table and its Store (lease.Table.Get with PeerGet), as
// a RESP LEASE.MGET here would. The wait ends when the requesting
// connection closes: what the request held is passed on.
func (c *serverConn) leaseGet(body []byte) error {
	o := &c.s.opts
	if o.Leases == nil {
		return c.error(errNoLeases)
	}
	keys, ttlMs, waitMs, err := parseLeaseGet(body)
	if err != nil {
		return c.error(err)
	}
	if sc, ok := o.Store.(scopeChecker); ok {
		for _, k := range keys {
			if err := sc.CheckScope(k); err != nil {
				var se *tier.StaleError
				if errors.As(err, &se) {
					return writeFrame(c.bw, stStale, []byte(err.Error()))
				}
				return c.error(err)
			}
		}
	}
	c.s.stats.leaseGets.Add(1)
	ctx, cancel := context.WithCancel(c.s.ctx)
	defer cancel()
	c.guard.Pin()
	defer c.guard.Unpin()
	var stopWatch func() error
	pause := func() error {
		// The records found were copied: let go of the buffers, send
		// what is buffered, and watch for the requester going away.
		c.guard.Unpin()
		if err := c.flush(); err != nil {
			return err
		}
		stopWatch = c.watchClose(cancel)
		return nil
	}
	ans, err := o.Leases.Get(ctx, keys, time.Duration(ttlMs)*time.Millisecond, time.Duration(waitMs)*time.Millisecond, o.Store.PeerGet, pause)
	if stopWatch != nil {
		if werr := stopWatch(); werr != nil && err == nil {
			// Gone as the wait ended: pass on what was granted.
			for i, a := range ans {
				if a.State == lease.Granted {
					o.Leases.Release(keys[i], a.Token)
				}
			}
			return werr
		}
	}
	var full *lease.FullError
	switch {
	case errors.As(err, &full):
		return writeFrame(c.bw, stFull, binary.LittleEndian.AppendUint64(nil, uint64(full.Max)))
	case err != nil && ctx.Err() != nil:
		return ErrClosed // the requester or this server is gone
	case err != nil:
		return c.error(err)
	}
	c.guard.Pin()
	return c.writeLeaseAnswers(keys, ans)
}

// writeLeaseAnswers writes an opLeaseGet's reply. A hit woken by a
// completion carries only the value: its record is looked up again (the
// SET that completed it stored it), and answered as a miss if it is gone
// meanwhile (evicted, or stale after a rollout).
func (c *serverConn) writeLeaseAnswers(keys [][]byte, ans []lease.Answer) error {
	n := 0
	for i := range ans {
		a := &ans[i]
		if a.State == lease.Hit && a.Record == nil {
			r, err := c.s.opts.Store.PeerGet(keys[i])
			if err != nil {
				a.State = lease.Miss
			} else {
				a.Record = r
			}
		}
		switch a.State {
		case lease.Hit:
			n += 1 + 4 + len(a.Record)
		case lease.Granted:
			n += 1 + 2 + len(a.Token)
		default:
			n++
		}
	}
	b := make([]byte, 0, frameHeader+n)
	var h [frameHeader]byte
	putHeader(h[:], stOK, n)
	b = append(b, h[:]...)
	for _, a := range ans {
		switch a.State {
		case lease.Hit:
			b = append(b, leaseHit)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(a.Record)))
			b = append(b, a.Record...)
		case lease.Granted:
			b = append(b, leaseGranted)
			b = binary.LittleEndian.AppendUint16(b, uint16(len(a.Token)))
			b = append(b, a.Token...)
		default:
			b = append(b, leaseMiss)
		}
	}
	_, err := c.bw.Write(b)
	return err
}

// leaseRelease answers an opLeaseRelease.
func (c *serverConn) leaseRelease(body []byte) error {
	o := &c.s.opts
	if o.Leases == nil {
		return c.error(errNoLeases)
	}
	key, token, err := parseLeaseRelease(body)
	if err != nil {
		return c.error(err)
	}
	return writeFrame(c.bw, stOK, []byte{boolByte(o.Leases.Release(key, token))})
}

// watchClose calls cancel when the peer closes the connection while a
// lease request waits: a requester sends nothing else on its lease
// connection until it is answered, so a read that ends is its going away.
// stop ends the watch, waits for it, and returns the read's error if the
// connection ended; input that arrived stays buffered for the loop.
func (c *serverConn) watchClose(cancel context.CancelFunc) (stop func() error) {
	done := make(chan error, 1)
	go func() {
		_, err := c.br.Peek(1)
		if err != nil && !isTimeout(err) {
			cancel()
		}
		done <- err
	}()
	return func() error {
		_ = c.nc.SetReadDeadline(time.Now())
		err := <-done
		_ = c.nc.SetReadDeadline(time.Time{})
		if err != nil && !isTimeout(err) {
			return fmt.Errorf("peer: requester gone during a lease wait: %w", err)
		}
		return nil
	}
}
