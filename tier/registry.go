package tier

import (
	"context"
	"fmt"
	"strings"
)

// ValidateModel reports whether model can be a model of the registry: it
// lives inside a key's {SCOPE}, so it must be non-empty and contain neither
// '{' nor '}'. Other names are an error wrapping ErrInvalidModel.
func ValidateModel(model string) error {
	switch {
	case model == "":
		return fmt.Errorf("%w: empty", ErrInvalidModel)
	case strings.ContainsAny(model, "{}"):
		return fmt.Errorf("%w %q: it may not contain '{' or '}'", ErrInvalidModel, model)
	}
	return nil
}

// ValidateVersion reports whether version can be a model's version: a key
// names it after the last '@' of its scope, so it must be non-empty, at most
// MaxTagLen bytes, and contain none of '@', '{', '}'. Other versions are an
// error wrapping ErrInvalidVersion.
func ValidateVersion(version string) error {
	switch {
	case version == "":
		return fmt.Errorf("%w: empty", ErrInvalidVersion)
	case len(version) > MaxTagLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidVersion, MaxTagLen)
	case strings.ContainsAny(version, "@{}"):
		return fmt.Errorf("%w %q: it may not contain '@', '{' or '}'", ErrInvalidVersion, version)
	}
	return nil
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

// Rollout sets model's version and returns the registry revision of the
// change, once it is applied and persisted (ApplyModels). Invalid names
// and versions are errors wrapping ErrInvalidModel or ErrInvalidVersion.
func (r *LocalRegistry) Rollout(_ context.Context, model, version string) (uint64, error) {
	if err := ValidateModel(model); err != nil {
		return 0, err
	}
	if err := ValidateVersion(version); err != nil {
		return 0, err
	}
	return r.r.applyNext(ModelChange{Model: model, Version: version})
}

// Purge forgets model and drops its entries, and returns the registry
// revision of the change once it is applied and persisted.
func (r *LocalRegistry) Purge(_ context.Context, model string) (uint64, error) {
	if err := ValidateModel(model); err != nil {
		return 0, err
	}
	return r.r.applyNext(ModelChange{Model: model})
}
