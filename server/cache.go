package server

import (
	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/tier"
)

// Cache is what the server needs of the storage engine; *tier.Hybrid is
// one. It is made of the small interfaces below, one per kind of command.
type Cache interface {
	Keyspace
	Scopes
	Reporter
	// FlushAll removes every entry (FLUSHALL, FLUSHDB).
	FlushAll() error
	// Buffers is the pool values are read into (bufpool.Holder): SETs read
	// into its buffers, and connections pin its guards while they hold
	// records they looked up.
	bufpool.Holder
}

// Keyspace is the commands that read and write keys.
type Keyspace interface {
	// Get returns key's live record, or an error wrapping
	// tier.ErrNotFound.
	Get(key []byte) (tier.Record, error)
	// SetWith is SET with its options.
	SetWith(key, value []byte, a tier.SetArgs) (tier.SetResult, error)
	// Remove deletes key and reports whether it had a live value.
	Remove(key []byte) (bool, error)
	// Expire sets or removes key's expiry if cond holds.
	Expire(key []byte, expireAt int64, cond tier.ExpireCond) (bool, error)
}

// Scopes answers for model scopes and versions without writing.
type Scopes interface {
	// CheckWrite returns the error a write of key would get now (a
	// malformed scope, a *tier.StaleError), counting a stale one.
	CheckWrite(key []byte) error
	// CheckScope is CheckWrite without counting: for leases.
	CheckScope(key []byte) error
	// Model returns model's current version (MODEL.GET).
	Model(model string) (version string, ok bool)
	// Models returns every model with a version, by name (MODEL.LIST).
	Models() [][2]string
}

// Reporter is what INFO, DBSIZE and the metrics read.
type Reporter interface {
	Stats() tier.HybridStats
	ModelStats() tier.ModelStats
	// Keys estimates the number of live keys.
	Keys() int64
}

var _ Cache = (*tier.Hybrid)(nil)
