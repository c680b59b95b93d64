package tier

import (
	"context"
	"fmt"
	"strings"
)

// ValidateModel reports whether model can be a model of the registry: it
// lives inside a key's {SCOPE}, so it must be non-empty and contain neither
// '{' nor '}'. Other names are an *InvalidError matching ErrInvalidModel.
func ValidateModel(model string) error {
	switch {
	case model == "":
		return &InvalidError{What: whatModel, Reason: "empty"}
	case strings.ContainsAny(model, "{}"):
		return &InvalidError{What: whatModel, Name: model, Reason: "it may not contain '{' or '}'", quote: true}
	}
	return nil
}

// ValidateVersion reports whether version can be a model's version: a key
// names it after the last '@' of its scope, so it must be non-empty, at most
// MaxTagLen bytes, and contain none of '@', '{', '}'. Other versions are an
// *InvalidError matching ErrInvalidVersion.
func ValidateVersion(version string) error {
	switch {
	case version == "":
		return &InvalidError{What: whatVersion, Reason: "empty"}
	case len(version) > MaxTagLen:
		return &InvalidError{What: whatVersion, Name: version, Reason: fmt.Sprintf("longer than %d bytes", MaxTagLen)}
	case strings.ContainsAny(version, "@{}"):
		return &InvalidError{What: whatVersion, Name: version, Reason: "it may not contain '@', '{' or '}'", quote: true}
	}
	return nil
}

// ModelChange is one change to the model registry, checked: a rollout of
// a model to a version (NewRollout) or a purge of a model (NewPurge). Its
// fields are unexported, so a change that passed neither constructor
// cannot be made outside this package, and what takes one (ApplyModels,
// LocalRegistry, package invalidation's Publisher and Cluster, the
// server's Models) checks nothing again. The zero ModelChange is neither a
// rollout nor a purge: Rollout and Purge panic on it, as on a change of
// the other kind, and ApplyModels must not be given one.
type ModelChange struct {
	model string
	// version is the model's new version; "" purges the model (drops all
	// of its entries and forgets its version).
	version string
}

// NewRollout returns the change that sets model's version: model must
// pass ValidateModel and version ValidateVersion, in that order; the first
// refusal is returned, an *InvalidError.
func NewRollout(model, version string) (ModelChange, error) {
	if err := ValidateModel(model); err != nil {
		return ModelChange{}, err
	}
	if err := ValidateVersion(version); err != nil {
		return ModelChange{}, err
	}
	return ModelChange{model: model, version: version}, nil
}

// NewPurge returns the change that forgets model and drops its entries:
// model must pass ValidateModel, or the error is an *InvalidError.
func NewPurge(model string) (ModelChange, error) {
	if err := ValidateModel(model); err != nil {
		return ModelChange{}, err
	}
	return ModelChange{model: model}, nil
}

// Model returns the model the change is about.
func (c ModelChange) Model() string { return c.model }

// Version returns the model's new version, "" for a purge.
func (c ModelChange) Version() string { return c.version }

// IsRollout reports whether c is a rollout (made by NewRollout).
func (c ModelChange) IsRollout() bool { return c.version != "" }

// IsPurge reports whether c is a purge (made by NewPurge or AsPurge).
func (c ModelChange) IsPurge() bool { return c.model != "" && c.version == "" }

// AsPurge returns the purge of c's model, which needs no new check.
func (c ModelChange) AsPurge() ModelChange { return ModelChange{model: c.model} }

// String returns "MODEL@VERSION" for a rollout, "MODEL purged" for a
// purge, "no change" for the zero ModelChange.
func (c ModelChange) String() string {
	switch {
	case c.model == "":
		return "no change"
	case c.version == "":
		return c.model + " purged"
	}
	return c.model + "@" + c.version
}

// LocalRegistry is the model registry of a standalone cache: a rollout or
// purge applies to this cache only, and each one is the next registry
// revision. A cache in a cluster follows a registry kept elsewhere instead
// (package invalidation), which applies changes with ApplyModelsAsync.
type LocalRegistry struct {
	r *Registry
}

// NewLocalRegistry returns the standalone registry that changes r (a
// Hybrid's is its Registry field).
func NewLocalRegistry(r *Registry) *LocalRegistry { return &LocalRegistry{r: r} }

// Rollout applies ch, a rollout (NewRollout), and returns the registry
// revision of the change, once it is applied and persisted (ApplyModels).
// It panics if ch is not a rollout.
func (r *LocalRegistry) Rollout(_ context.Context, ch ModelChange) (uint64, error) {
	if !ch.IsRollout() {
		panic("tier: LocalRegistry.Rollout of " + ch.String() + ", not a rollout")
	}
	return r.r.applyNext(ch)
}

// Purge applies ch, a purge (NewPurge): it forgets the model and drops its
// entries, and returns the registry revision of the change once it is
// applied and persisted. It panics if ch is not a purge.
func (r *LocalRegistry) Purge(_ context.Context, ch ModelChange) (uint64, error) {
	if !ch.IsPurge() {
		panic("tier: LocalRegistry.Purge of " + ch.String() + ", not a purge")
	}
	return r.r.applyNext(ch)
}
