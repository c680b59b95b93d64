package peer

import (
	"github.com/tiercache/tiercache/tier"
)

// Store is the owner's cache as its Server uses it: lookups, writes,
// deletes and expiries of single keys. *tier.Hybrid implements it.
//
// The server never forwards: a Store answers from the owner's own tiers.
// Get must never return a record its registry holds stale (Hybrid's Get
// does not) nor an expired one.
type Store interface {
	Get(key []byte) (tier.Record, error)
	SetValue(key, value []byte, expireAt int64) error
	Remove(key []byte) (bool, error)
	Expire(key []byte, expireAt int64, cond tier.ExpireCond) (bool, error)
}

// Versions tells a model's current version; ok is false for a model the
// registry does not know or has purged. *tier.Hybrid implements it
// (tier.Registry.Model).
type Versions interface {
	Model(model string) (version string, ok bool)
}

// TaggedSetter is a Store that can store a value only if tag is its
// current version of the key's model, atomically with respect to
// rollouts: it returns a *tier.StaleError and stores nothing otherwise.
// When the Server's Store implements it, forwarded SETs use it; without
// it the Server checks the tag before and after SetValue, which leaves a
// window (see the package documentation's Caveats).
type TaggedSetter interface {
	SetTagged(key, value []byte, expireAt int64, tag string) error
}

var (
	_ Store    = (*tier.Hybrid)(nil)
	_ Versions = (*tier.Hybrid)(nil)
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
