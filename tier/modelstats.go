package tier

import (
	"maps"
	"sort"
	"sync"
	"sync/atomic"
)

// modelShards is how many copies of a group's counters there are: a Get
// counts into the copy of its key's stripe, so that GETs of one model on
// different cores rarely write the same cache line.
const modelShards = 8

// modelCounts are the Get outcomes of one group of keys since start.
type modelCounts struct {
	shards [modelShards]struct {
		hits, misses atomic.Uint64
		_            [64 - 16]byte
	}
}

// count counts one Get into shard (any number: it is reduced).
func (c *modelCounts) count(hit bool, shard uint64) {
	s := &c.shards[shard%modelShards]
	if hit {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
	}
}

func (c *modelCounts) load() KeyCounts {
	var k KeyCounts
	for i := range c.shards {
		k.Hits += c.shards[i].hits.Load()
		k.Misses += c.shards[i].misses.Load()
	}
	return k
}

// modelStats keeps the Get outcomes per model. Only models the registry
// has had a version for get counters of their own (so their number is
// bounded by the registry, not by the keys clients send); scoped keys of
// other models count as unregistered, plain keys as unscoped.
type modelStats struct {
	mu     sync.Mutex                              // serializes additions to byName
	byName atomic.Pointer[map[string]*modelCounts] // copied on write: lookups take no lock

	unscoped, unregistered modelCounts
}

// of returns model's counters, adding them on first use.
func (s *modelStats) of(model string) *modelCounts {
	if m := s.byName.Load(); m != nil {
		if c := (*m)[model]; c != nil {
			return c
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var next map[string]*modelCounts
	if m := s.byName.Load(); m != nil {
		if c := (*m)[model]; c != nil {
			return c
		}
		next = maps.Clone(*m)
	} else {
		next = map[string]*modelCounts{}
	}
	c := &modelCounts{}
	next[model] = c
	s.byName.Store(&next)
	return c
}

// KeyCounts are the Get hits and misses of a group of keys since start.
type KeyCounts struct {
	Hits, Misses uint64
}

// ModelCounts are the Get hits and misses of one model's keys.
type ModelCounts struct {
	Model, Version string
	KeyCounts
}

// ModelStats are the Get outcomes by model since start.
type ModelStats struct {
	// Models has one entry per model the registry has a version for now,
	// sorted by name.
	Models []ModelCounts
	// Unscoped counts plain keys (no {MODEL} scope).
	Unscoped KeyCounts
	// Unregistered counts keys scoped to a model the registry has no
	// version for.
	Unregistered KeyCounts
}

// ModelStats returns the Get hits and misses of every model in the
// registry, of plain keys and of keys of unregistered models. Counts are
// kept from start (or from a model's first rollout seen by this process)
// and survive rollouts; a purged model's line goes away, and its counts
// continue if it comes back.
func (r *Registry) ModelStats() ModelStats {
	out := ModelStats{Unscoped: r.counts.unscoped.load(), Unregistered: r.counts.unregistered.load()}
	var counts map[string]*modelCounts
	if m := r.counts.byName.Load(); m != nil {
		counts = *m
	}
	for name, st := range r.snap.Load().Models {
		if st.Version == "" {
			continue
		}
		mc := ModelCounts{Model: name, Version: st.Version}
		if c := counts[name]; c != nil {
			mc.KeyCounts = c.load()
		}
		out.Models = append(out.Models, mc)
	}
	sort.Slice(out.Models, func(i, j int) bool { return out.Models[i].Model < out.Models[j].Model })
	return out
}
