package invalidation

import (
	"errors"

	"github.com/tiercache/tiercache/tier"
)

// Errors returned by the package, checked with errors.Is; most are wrapped
// with detail.
var (
	// ErrUnavailable is returned by Rollout and Purge when NATS (or its
	// JetStream service) cannot be reached: nothing was changed.
	ErrUnavailable = errors.New("invalidation: NATS unavailable")
	// ErrNotApplied is returned by Rollout and Purge when the change was
	// committed to the registry but this daemon had not applied it when the
	// wait (Options.SyncTimeout, or the caller's context) ended. The
	// revision is returned with it: the change will still be applied.
	ErrNotApplied = errors.New("invalidation: committed but not yet applied here")
	// ErrInvalidModel is matched by errors about a model name that cannot
	// be used (EncodeModel, DecodeModel: a *tier.InvalidError) or a KV key
	// that does not decode to one (DecodeModel). It is
	// tier.ErrInvalidModel: the rules are the cache's. Rollout and Purge
	// never return it: their change was checked when it was made.
	ErrInvalidModel = tier.ErrInvalidModel
	// ErrInvalidVersion is tier.ErrInvalidVersion, matched by the
	// *tier.InvalidError of tier.NewRollout for a version that cannot be
	// used.
	ErrInvalidVersion = tier.ErrInvalidVersion
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("invalidation: closed")
)
