package peer

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/lease"

	"github.com/tiercache/tiercache/tier"
)

// Cache is a fleet member's cache as its own clients see it: its
// *tier.Hybrid, whose lookups that miss ask the key's owner, and whose
// writes of keys another member owns are also sent to that owner. Every
// other method is the Hybrid's. A daemon outside a fleet uses the Hybrid
// alone.
//
// Its Get, SetWith, Remove and Expire have the Hybrid's meaning, so a
// Cache is what the RESP server needs of a cache (server.Cache) and the
// server never sees a peer: GET, MGET, EXISTS, TTL and a lease's lookup
// all go through Get.
//
// The Hybrid's statistics stay local: a lookup that misses locally counts
// as a miss there (keyspace_misses, the model's misses) even when the
// owner then serves it; PeerStats counts what the peers served.
type Cache struct {
	*tier.Hybrid
	client *Client

	// Keep decides whether a value a peer served is kept in L1 as a near
	// copy (tier.Hybrid.Fill's keep). NewCache sets it to always: the copy
	// is clean (evicting it writes nothing), fenced like any entry, and
	// competes for L1 under its admission policy like any entry.
	Keep func(key []byte, r tier.Record) bool

	served, fenced atomic.Uint64
}

// NewCache returns h as a member of the fleet that client reaches. It
// closes neither: the caller closes the client before the Hybrid.
//
// A near copy whose forward is dropped (Client.OnSetDropped) is then
// stored here as any write (tier.Hybrid.KeepNear): the owner may never
// have had it, and the near copy alone would be lost at a restart.
func NewCache(h *tier.Hybrid, client *Client) *Cache {
	client.OnSetDropped(func(key, value []byte, tag string) { h.KeepNear(key, value, tag) })
	return &Cache{Hybrid: h, client: client, Keep: func([]byte, tier.Record) bool { return true }}
}

// Client returns the client the cache asks peers through.
func (c *Cache) Client() *Client { return c.client }

// Get returns key's live record from the Hybrid or, when it misses there
// and another member owns key, from the owner, if the fencing rule lets
// this cache serve it (tier.Hybrid.Fill). A dead, refusing or slow owner,
// or a record of another version than this cache's, is a miss: an error
// wrapping tier.ErrNotFound, never another error.
func (c *Cache) Get(key []byte) (tier.Record, error) {
	seq := c.Hybrid.WriteSeq(key)
	r, err := c.Hybrid.Get(key)
	if err == nil || !errors.Is(err, tier.ErrNotFound) {
		return r, err
	}
	// The owner's record is read into the Hybrid's buffer pool, as a
	// SET's value is: a near copy L1 keeps (by reference) is recycled
	// once evicted, and a record it does not keep at once, so a stream
	// of peer-served GETs does not keep landing in memory never touched
	// (a page fault per 4 KiB). This lookup then ends as the buffer's
	// reader (Done); the caller holds a pinned guard of the pool, as for
	// any record Get returns.
	pool := c.Hybrid.Buffers()
	pr, ok := c.client.get(key, pool)
	if !ok {
		return nil, err
	}
	fr, ferr := c.Hybrid.Fill(key, pr, seq, c.Keep(key, pr))
	pool.Done(pr)
	if ferr != nil {
		if errors.Is(ferr, tier.ErrNotFound) {
			c.fenced.Add(1)
		}
		return nil, err
	}
	c.served.Add(1)
	return fr, nil
}

// SetWith is the Hybrid's SetWith; a value it stored under a key another
// member owns is then forwarded to the owner in the background, with the
// version tag it was stored under here (tier.SetResult.Tag, read within
// the write), so that an owner that has applied another version of the
// model refuses it.
//
// While that owner is up (its breaker closed), the value is stored here
// as a near copy (tier.SetArgs.Near): in memory only, so that the fleet
// holds it once on disk, at its owner, rather than once more per member
// that wrote it. Measured on the fleet workload, the writers' disk copies
// were what kept the fleet's hit ratio under one daemon's of the same
// total size. An owner that is down gets nothing, and the value is stored
// here as any write; so is a near copy whose forward is not queued (the
// queue is full, the value too large for a peer) or is dropped later.
func (c *Cache) SetWith(key, value []byte, a tier.SetArgs) (tier.SetResult, error) {
	up := c.client.OwnerUp(key)
	a.Near = up
	res, err := c.Hybrid.SetWith(key, value, a)
	if err != nil || !res.Stored {
		return res, err
	}
	if _, remote, _ := c.client.Owner(key); !remote {
		return res, nil
	}
	expireAt := a.ExpireAt
	if a.KeepTTL {
		// The expiry kept is the old value's, which SetWith does not return.
		r, err := c.Hybrid.PeerGet(key)
		if err != nil {
			return res, nil // gone already: nothing to forward
		}
		expireAt = r.ExpireAt()
	}
	// value is still the caller's to read here (SetArgs.Spare's buffer is
	// retired only once the command ends); Forward copies it.
	if !c.client.Forward(key, value, expireAt, res.Tag) && a.Near {
		c.Hybrid.KeepNear(key, value, res.Tag)
	}
	return res, nil
}

// Remove deletes key here and, when another member owns it, at the owner,
// waiting for the owner's answer at most the peer timeout (see
// Client.ForwardDelete): a GET here right after it does not find the
// owner's old copy. It reports whether this cache had a live value. Near
// copies on third members live until evicted (a delete is not a
// fleet-wide invalidation).
func (c *Cache) Remove(key []byte) (bool, error) {
	ok, err := c.Hybrid.Remove(key)
	c.client.ForwardDelete(key)
	return ok, err
}

// Expire sets or removes key's expiry here and, when another member owns
// it, at the owner, waiting as Remove does. It reports what this cache did.
func (c *Cache) Expire(key []byte, expireAt int64, cond tier.ExpireCond) (bool, error) {
	ok, err := c.Hybrid.Expire(key, expireAt, cond)
	c.client.ForwardExpire(key, expireAt, cond)
	return ok, err
}

// PeerStats returns the client's counters, with Hits counting only the
// records this cache served and Fenced those the fencing rule refused
// (counted in Misses).
func (c *Cache) PeerStats() Stats {
	st := c.client.Stats()
	served, fenced := c.served.Load(), c.fenced.Load()
	st.Fenced = fenced
	st.Misses += fenced
	st.Hits = served
	return st
}

// LeaseRemote reports whether key's lease is taken at its owner, another
// member whose breaker is closed (Client.LeaseRemote).
func (c *Cache) LeaseRemote(key []byte) bool { return c.client.LeaseRemote(key) }

// Lease takes keys' leases at their owners (Client.Lease), for the keys
// this cache does not hold itself: a key found here (a near copy, or a
// copy written here) is a Hit at once, its record a copy, with no request.
// A hit at the owner is served only if the fencing rule lets this cache
// serve the owner's record (tier.Hybrid.Fill, which may keep it as a near
// copy); one it refuses is Unreachable, as are keys whose owner did not
// answer: their leases are taken locally.
func (c *Cache) Lease(ctx context.Context, keys [][]byte, ttl, wait time.Duration) ([]lease.Answer, error) {
	ans := make([]lease.Answer, len(keys))
	var ask [][]byte
	var idx []int
	seqs := make([]uint64, len(keys))
	// L1's large records are pooled buffers: one read here is reused
	// only once the guard is unpinned, after the copy.
	guard := c.Hybrid.Buffers().Guard()
	defer guard.Close()
	for i, k := range keys {
		seqs[i] = c.Hybrid.WriteSeq(k)
		guard.Pin()
		r, err := c.Hybrid.Get(k)
		if err == nil {
			r = slices.Clone(r) // the answer outlives the lookup
		}
		guard.Unpin()
		if err == nil {
			ans[i] = lease.Answer{State: lease.Hit, Record: r, Value: r.Value()}
			continue
		}
		ask = append(ask, k)
		idx = append(idx, i)
	}
	if len(ask) == 0 {
		return ans, nil
	}
	got, err := c.client.Lease(ctx, ask, ttl, wait)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		ans[i] = got[j]
	}
	for _, i := range idx {
		a := &ans[i]
		if a.State != lease.Hit {
			continue
		}
		fr, err := c.Hybrid.Fill(keys[i], a.Record, seqs[i], c.Keep(keys[i], a.Record))
		if err != nil {
			if errors.Is(err, tier.ErrNotFound) {
				c.fenced.Add(1)
			}
			*a = lease.Answer{State: lease.Unreachable}
			continue
		}
		c.served.Add(1)
		a.Record, a.Value = fr, fr.Value()
	}
	return ans, nil
}

// ReleaseLease releases a lease another member granted
// (Client.ReleaseLease).
func (c *Cache) ReleaseLease(key []byte, token string) (released, remote bool) {
	return c.client.ReleaseLease(key, token)
}
