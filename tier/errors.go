package tier

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors returned by tiers, grouped by when they happen. Sentinels are
// checked with errors.Is; most are wrapped with detail. A condition that
// callers answer from its details has its own type, matched with
// errors.As, which is also errors.Is its sentinel.

// Errors of any operation.
var (
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("tier: closed")
)

// Errors of lookups.
var (
	// ErrNotFound is returned by Get for a key that is absent, expired or
	// invalidated.
	ErrNotFound = errors.New("tier: not found")
	// ErrCorrupt is wrapped by errors about a record that failed to decode or
	// whose checksum does not match.
	ErrCorrupt = errors.New("tier: corrupt record")
)

// Errors of keys and writes.
var (
	// ErrBadScope is matched by an *InvalidError about a malformed
	// {MODEL@VERSION} scope (ParseScope).
	ErrBadScope = errors.New("tier: invalid key scope")
	// ErrTooLarge is returned for a record that a tier cannot hold: a
	// Hybrid returns a *TooLargeError, which matches it; the tiers wrap it
	// with their own detail.
	ErrTooLarge = errors.New("tier: record too large")
)

// Errors of model registry changes.
var (
	// ErrInvalidModel is matched by an *InvalidError about a model name
	// that cannot be used in the registry (ValidateModel).
	ErrInvalidModel = errors.New("tier: invalid model name")
	// ErrInvalidVersion is matched by an *InvalidError about a version
	// that cannot be used in the registry (ValidateVersion).
	ErrInvalidVersion = errors.New("tier: invalid version")
)

// StaleError is returned by a write of {MODEL@X}… while MODEL is at another
// version. Its message is the one the RESP server sends after "-".
type StaleError struct {
	Model   string // the model named in the key
	Current string // the version the registry has for it
}

// Error returns "STALE MODEL is at VERSION".
func (e *StaleError) Error() string {
	return fmt.Sprintf("STALE %s is at %s", e.Model, e.Current)
}

// The names an InvalidError can be about (InvalidError.What).
const (
	whatModel   = "model name"
	whatVersion = "version"
	whatScope   = "key scope"
)

// InvalidError is a name the cache refuses: a model name or a version the
// registry cannot hold (ValidateModel, ValidateVersion, NewRollout,
// NewPurge), or a key whose {SCOPE} is malformed (ParseScope). It matches
// ErrInvalidModel, ErrInvalidVersion or ErrBadScope, as What says.
type InvalidError struct {
	// What is refused: "model name", "version" or "key scope".
	What string
	// Name is the model name, the version, or what is between the key's
	// braces.
	Name string
	// Reason is what is wrong with Name ("empty", "it may not contain …").
	Reason string
	// quote: the message shows Name, quoted, before Reason.
	quote bool
}

// Message is the error's text without the package's prefix: "invalid
// WHAT: REASON", or `invalid WHAT "NAME": REASON` when the reason is about
// the characters of NAME. It is what the RESP server sends after "ERR ".
func (e *InvalidError) Message() string {
	if e.quote {
		return "invalid " + e.What + " " + strconv.Quote(e.Name) + ": " + e.Reason
	}
	return "invalid " + e.What + ": " + e.Reason
}

// Error returns "tier: " and the Message.
func (e *InvalidError) Error() string { return "tier: " + e.Message() }

// Is reports whether target is the sentinel of What.
func (e *InvalidError) Is(target error) bool {
	switch e.What {
	case whatModel:
		return target == ErrInvalidModel
	case whatVersion:
		return target == ErrInvalidVersion
	case whatScope:
		return target == ErrBadScope
	}
	return false
}

// TooLargeError is returned by a write of a key or a value longer than the
// disk tier takes (its limits, after the cache's own framing of the key
// and record). It matches ErrTooLarge.
type TooLargeError struct {
	What string // "key" or "value"
	Size int    // its length, in bytes
	Max  int    // the longest the disk tier takes, in bytes
}

// Message is the error's text without the package's prefix: "key too
// large: key of SIZE bytes (at most MAX)", or for a value "value too large:
// value of SIZE bytes (the disk tier takes at most MAX)". It is what the
// RESP server sends after "ERR ".
func (e *TooLargeError) Message() string {
	limit := "at most"
	if e.What == "value" {
		limit = "the disk tier takes at most"
	}
	return fmt.Sprintf("%s too large: %s of %d bytes (%s %d)", e.What, e.What, e.Size, limit, e.Max)
}

// Error returns "tier: " and the Message.
func (e *TooLargeError) Error() string { return "tier: " + e.Message() }

// Is reports whether target is ErrTooLarge.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }
