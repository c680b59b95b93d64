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

// LocalRegistry is the model registry of a standalone cache: a rollout or
// purge applies to this cache only, and each one is the next registry
// revision. A cache in a cluster follows a registry kept elsewhere instead
// (package invalidation), which applies changes with ApplyModelsAsync.
type LocalRegistry struct {
	h *Hybrid
}

// NewLocalRegistry returns the standalone registry of h.
func NewLocalRegistry(h *Hybrid) *LocalRegistry { return &LocalRegistry{h: h} }

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
	return r.h.applyNextModels(ModelChange{Model: model, Version: version})
}

// Purge forgets model and drops its entries, and returns the registry
// revision of the change once it is applied and persisted.
func (r *LocalRegistry) Purge(_ context.Context, model string) (uint64, error) {
	if err := ValidateModel(model); err != nil {
		return 0, err
	}
	return r.h.applyNextModels(ModelChange{Model: model})
}
