package peer

import (
	"context"
	"time"

	"github.com/tiercache/tiercache/lease"
	"github.com/tiercache/tiercache/tier"
)

// Store is the owner's cache as its Server uses it: lookups, fenced
// writes, deletes and expiries of single keys. *tier.Hybrid implements it.
//
// The server never forwards: a Store answers from the owner's own tiers.
// PeerGet must never return a record its registry holds stale (Hybrid's
// does not) nor an expired one, and does not count as a client's lookup.
// SetTagged stores a value only if tag is the Store's current version of
// the key's model, checked under the same registry snapshot as the write
// (so a rollout cannot land in between); otherwise it stores nothing and
// returns a *tier.StaleError.
type Store interface {
	PeerGet(key []byte) (tier.Record, error)
	SetTagged(key, value []byte, expireAt int64, tag string) error
	Remove(key []byte) (bool, error)
	Expire(key []byte, expireAt int64, cond tier.ExpireCond) (bool, error)
}

// Versions tells a model's current version; ok is false for a model the
// registry does not know or has purged. *tier.Hybrid implements it
// (tier.Registry.Model).
type Versions interface {
	Model(model string) (version string, ok bool)
}

// Leases is the lease table as the owner side sees it: LEASE.GET and
// LEASE.MGET that other members take at the owner (Get, with the Store's
// PeerGet as the lookup) and their releases; and a forwarded SET that is
// stored completes its key's lease and hands the value to the lease's
// waiters. *lease.Table implements it.
type Leases interface {
	Get(ctx context.Context, keys [][]byte, ttl, wait time.Duration, lookup lease.Lookup, pause func() error) ([]lease.Answer, error)
	Release(key []byte, token string) bool
	Complete(key, value []byte)
}

// scopeChecker is a Store that can tell a key no value could be stored
// under (a {MODEL@X}… key whose model is at another version):
// *tier.Hybrid.CheckScope. The owner grants no lease for it.
type scopeChecker interface {
	CheckScope(key []byte) error
}

var (
	_ Store    = (*tier.Hybrid)(nil)
	_ Versions = (*tier.Hybrid)(nil)
	_ Leases   = (*lease.Table)(nil)

	_ scopeChecker = (*tier.Hybrid)(nil)
)

// Servable reports whether r, a record of key a peer sent, may be served
// by a daemon whose registry is v: the fencing rule across hosts. A
// plain key's record always may. A {MODEL}… key's record only if it was
// stored under the version v has for MODEL ("" for a model v does not
// know). A {MODEL@X}… key's record only if it was stored under X, and v
// has MODEL at X or does not know MODEL (as a local read of the key).
//
// Client.Get returns records as the owner sent them; whoever serves one
// calls Servable first, with its registry as it is then.
func Servable(key []byte, r tier.Record, v Versions) bool {
	hdr, err := r.Header()
	if err != nil {
		return false
	}
	return tagCurrent(key, hdr.Tag, v)
}

// tagCurrent reports whether a value of key stored under the version tag
// is current for the registry v (see Servable).
func tagCurrent(key []byte, tag string, v Versions) bool {
	sc, scoped, err := tier.ParseScope(key)
	switch {
	case err != nil:
		return false
	case !scoped:
		return tag == ""
	}
	cur, _ := v.Model(sc.Model)
	if sc.Versioned {
		return tag == sc.Version && (cur == "" || cur == sc.Version)
	}
	return tag == cur
}
