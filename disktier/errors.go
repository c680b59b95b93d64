package disktier

import "errors"

// Errors returned by the store, grouped by when they happen. Each is checked
// with errors.Is; most are wrapped with detail. Operations after Close return
// tier.ErrClosed, lookups of absent, expired or corrupt entries
// tier.ErrNotFound, and records or batches the store cannot hold
// tier.ErrTooLarge.
var (
	// ErrInvalidOptions is wrapped by the error of Open (and of
	// Options.Validate) that lists every problem found in the options.
	ErrInvalidOptions = errors.New("disktier: invalid options")
	// ErrIncompatible is returned by Open for a directory written in a
	// layout this version does not know.
	ErrIncompatible = errors.New("disktier: incompatible store layout")

	// ErrStorage wraps an error that Pebble returned for a read or a write
	// (an I/O error, a full disk). The error Pebble returned is wrapped too.
	ErrStorage = errors.New("disktier: storage error")
	// ErrUnavailable is returned by writes, and by reads while no Pebble
	// instance is open, after a storage fault that Pebble cannot recover
	// from in place. The store reopens Pebble in the background once the
	// directory accepts writes again; nothing has to be done by the caller.
	ErrUnavailable = errors.New("disktier: store unavailable after a storage fault")
	// ErrNoSpace is returned by a write that waited longer than the store's
	// back-pressure timeout for eviction to make room within MaxBytes.
	ErrNoSpace = errors.New("disktier: no space within MaxBytes")
)
