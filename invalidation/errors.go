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
	// ErrInvalidModel is wrapped by errors about a model name that cannot be
	// used (tier.ValidateModel) or a KV key that does not decode to one. It
	// is tier.ErrInvalidModel: the rules are the cache's.
	ErrInvalidModel = tier.ErrInvalidModel
	// ErrInvalidVersion is wrapped by errors about a version that cannot be
	// used (tier.ValidateVersion). It is tier.ErrInvalidVersion.
	ErrInvalidVersion = tier.ErrInvalidVersion
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("invalidation: closed")
)
