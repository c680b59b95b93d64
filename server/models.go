package server

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/tiercache/tiercache/tier"
)

// Local is the Models of a standalone daemon: a rollout or purge applies to
// this daemon's cache only, and each one is the next registry revision.
type Local struct {
	Cache *tier.Hybrid
	mu    sync.Mutex // serializes revisions
}

// Rollout sets model's version in the local registry.
func (l *Local) Rollout(_ context.Context, model, version string) (uint64, error) {
	return l.apply(tier.ModelChange{Model: model, Version: version})
}

// Purge forgets model and drops its entries.
func (l *Local) Purge(_ context.Context, model string) (uint64, error) {
	return l.apply(tier.ModelChange{Model: model})
}

func (l *Local) apply(ch tier.ModelChange) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rev := l.Cache.ModelsRevision() + 1
	if err := l.Cache.ApplyModels([]tier.ModelChange{ch}, rev); err != nil {
		return 0, err
	}
	return rev, nil
}

// ValidateModel checks a model name given to MODEL.* commands: it must be
// usable inside a key scope.
func ValidateModel(model string) error {
	switch {
	case model == "":
		return fmt.Errorf("invalid model name: empty")
	case strings.ContainsAny(model, "{}"):
		return fmt.Errorf("invalid model name %q: it may not contain '{' or '}'", model)
	}
	return nil
}

// ValidateVersion checks a version given to MODEL.ROLLOUT: a key names it
// after the last '@' of its scope, so it cannot contain '@', '{' or '}'.
func ValidateVersion(version string) error {
	switch {
	case version == "":
		return fmt.Errorf("invalid version: empty")
	case len(version) > tier.MaxTagLen:
		return fmt.Errorf("invalid version: longer than %d bytes", tier.MaxTagLen)
	case strings.ContainsAny(version, "@{}"):
		return fmt.Errorf("invalid version %q: it may not contain '@', '{' or '}'", version)
	}
	return nil
}

func cmdModelRollout(c *conn, args [][]byte) bool {
	model, version := string(args[1]), string(args[2])
	if err := ValidateModel(model); err != nil {
		c.w.error("ERR " + err.Error())
		return false
	}
	if err := ValidateVersion(version); err != nil {
		c.w.error("ERR " + err.Error())
		return false
	}
	rev, err := c.s.opts.Models.Rollout(c.s.ctx, model, version)
	if err != nil {
		c.replyErr(err)
		return false
	}
	c.w.int(int64(rev))
	return false
}

func cmdModelPurge(c *conn, args [][]byte) bool {
	model := string(args[1])
	if err := ValidateModel(model); err != nil {
		c.w.error("ERR " + err.Error())
		return false
	}
	rev, err := c.s.opts.Models.Purge(c.s.ctx, model)
	if err != nil {
		c.replyErr(err)
		return false
	}
	c.w.int(int64(rev))
	return false
}

func cmdModelGet(c *conn, args [][]byte) bool {
	if v, ok := c.s.opts.Cache.Model(string(args[1])); ok {
		c.w.bulkString(v)
	} else {
		c.w.null()
	}
	return false
}

func cmdModelList(c *conn, _ [][]byte) bool {
	models := c.s.opts.Cache.Models()
	c.w.array(2 * len(models))
	for _, m := range models {
		c.w.bulkString(m[0])
		c.w.bulkString(m[1])
	}
	return false
}
