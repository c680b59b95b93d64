package tier

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
)

// modelsMeta is the name of the L2 meta record holding the registry state.
const modelsMeta = "models"

// RegistryStore is what a Registry needs of the disk tier: its meta
// records, where the registry's state persists, and range deletes, which
// reclaim a changed model's stale entries. disktier.Store implements it,
// as every Disk does.
type RegistryStore interface {
	// Meta returns the value PutMeta stored under name, or ErrNotFound.
	Meta(name string) ([]byte, error)
	// PutMeta durably stores value under name.
	PutMeta(name string, value []byte) error
	// DropRange removes every key k with start <= k < end, in O(1) writes.
	DropRange(start, end []byte) error
}

// Registry is the cache's model registry: each model's current version and
// epoch (ModelState), the registry revision applied, and the Get outcomes
// per model. It owns the rules of a change (ApplyModels: epochs, the first
// rollout's kept entries), persists its state in the store's meta record
// and reclaims stale entries with range deletes. Readers load an immutable
// snapshot without locking.
//
// A Hybrid opens one on its L2 and embeds it, so that the registry's
// methods are the Hybrid's. What decides the changes is outside: see
// LocalRegistry and package invalidation.
type Registry struct {
	store   RegistryStore
	onError func(op string, err error)

	mu    sync.Mutex               // serializes changes and persistence
	snap  atomic.Pointer[snapshot] // the state readers see
	dirty atomic.Bool              // the state in memory is newer than the persisted one
	drops []modelDrop              // range deletes of async changes not yet written; guarded by mu

	closed atomic.Bool
	kick   chan struct{} // wakes loop
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when loop returns

	rollouts atomic.Uint64 // model changes applied
	counts   modelStats    // Get outcomes by model
}

// snapshot is an immutable state of the registry; a new one is published
// on every change, so the request path reads it without locking. It is
// also the persisted form (JSON in the meta record modelsMeta).
type snapshot struct {
	Revision  uint64                `json:"revision"`
	NextEpoch uint64                `json:"next_epoch"`
	Models    map[string]ModelState `json:"models"`
}

func (s *snapshot) model(name string) ModelState { return s.Models[name] }

// OpenRegistry loads the registry persisted in store (an empty one if
// there is none) and starts the goroutine that writes what
// ApplyModelsAsync leaves behind. onError (nil: ignore) is told about
// store errors the registry absorbed. Close it before closing store.
func OpenRegistry(store RegistryStore, onError func(op string, err error)) (*Registry, error) {
	snap, err := loadSnapshot(store)
	if err != nil {
		return nil, err
	}
	if onError == nil {
		onError = func(string, error) {}
	}
	r := &Registry{
		store:   store,
		onError: onError,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	r.snap.Store(snap)
	go r.loop()
	return r, nil
}

// loadSnapshot reads the persisted registry; a missing one is empty.
func loadSnapshot(store RegistryStore) (*snapshot, error) {
	snap := &snapshot{NextEpoch: 1, Models: map[string]ModelState{}}
	b, err := store.Meta(modelsMeta)
	if errors.Is(err, ErrNotFound) {
		return snap, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tier: reading model registry: %w", err)
	}
	if err := json.Unmarshal(b, snap); err != nil {
		return nil, fmt.Errorf("tier: decoding model registry: %w", err)
	}
	if snap.Models == nil {
		snap.Models = map[string]ModelState{}
	}
	for _, m := range snap.Models {
		if m.Epoch >= snap.NextEpoch {
			snap.NextEpoch = m.Epoch + 1
		}
	}
	return snap, nil
}

// state returns what the registry knows of model now.
func (r *Registry) state(model string) ModelState { return r.snap.Load().model(model) }

// ApplyModels applies changes to the registry and records rev as the
// registry revision they bring the cache to (the revision only moves
// forward). A change that does not change anything (same version; purge of
// a purged model) is a no-op, so replaying changes is harmless.
//
// From the moment ApplyModels returns, and for readers running concurrently
// from the moment the new state is published, no record of a changed model
// written under its previous epoch is served, and writes of {MODEL@X} with X
// other than the new version fail with a StaleError. The one exception is a
// model's first rollout, from a state without a version (never known, or
// purged) to V: the {MODEL@V}… records written meanwhile were written for V
// and stay (ModelState.Kept); its {MODEL}… and {MODEL@X}… records are
// stale. L2 space is reclaimed with range deletes (no scan); stale L1
// records are dropped when read or evicted.
//
// ApplyModels returns once the new state is persisted (one synced write)
// and the range deletes are written. The new state is applied in memory
// even if persisting it fails; the error is returned so the caller can
// retry (the persisted revision stays behind, which makes a restarted cache
// replay the change).
func (r *Registry) ApplyModels(changes []ModelChange, rev uint64) error {
	return r.apply(changes, rev, false, false)
}

// ResyncModels is ApplyModels for a registry whose revisions started over
// (the bucket was deleted and created again): it records rev as the
// revision even if it is lower than the one applied before.
func (r *Registry) ResyncModels(changes []ModelChange, rev uint64) error {
	return r.apply(changes, rev, true, false)
}

// ApplyModelsAsync is ApplyModels for a registry kept elsewhere (a cluster's
// KV bucket, which a restarted cache replays from its persisted revision):
// it publishes the new state and returns without touching the disk. A
// background goroutine then writes the range deletes and persists the
// registry, once for any number of changes applied meanwhile; errors go to
// the onError of OpenRegistry and are retried (a Hybrid retries after each
// flush of its write queue). Everything ApplyModels promises about reads
// and writes holds from the moment it returns.
func (r *Registry) ApplyModelsAsync(changes []ModelChange, rev uint64) {
	_ = r.apply(changes, rev, false, true)
}

// ResyncModelsAsync is ResyncModels without waiting for the disk, as
// ApplyModelsAsync.
func (r *Registry) ResyncModelsAsync(changes []ModelChange, rev uint64) {
	_ = r.apply(changes, rev, true, true)
}

// applyNext is ApplyModels at the revision after the one applied, which it
// returns (0 on error): the revisions of a registry that this cache alone
// keeps (LocalRegistry).
func (r *Registry) applyNext(changes ...ModelChange) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rev := r.snap.Load().Revision + 1
	if err := r.applyLocked(changes, rev, false, false); err != nil {
		return 0, err
	}
	return rev, nil
}

func (r *Registry) apply(changes []ModelChange, rev uint64, exact, async bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applyLocked(changes, rev, exact, async)
}

// applyLocked publishes the state changes bring and, unless async, persists
// it and writes its range deletes; async leaves both to loop.
func (r *Registry) applyLocked(changes []ModelChange, rev uint64, exact, async bool) error {
	if r.closed.Load() {
		return ErrClosed
	}
	old := r.snap.Load()
	next := &snapshot{Revision: max(old.Revision, rev), NextEpoch: old.NextEpoch, Models: maps.Clone(old.Models)}
	if exact {
		next.Revision = rev
	}
	var drops []modelDrop
	for _, c := range changes {
		cur, known := next.Models[c.model]
		if known && cur.Version == c.version {
			continue
		}
		st := ModelState{Version: c.version, Epoch: next.NextEpoch}
		drop := modelDrop{model: c.model, epoch: next.NextEpoch}
		if cur.Version == "" && c.version != "" {
			// The model's first rollout: what was written for this
			// version before it stays (see ModelState.Kept).
			st.Kept, st.KeptEpoch = true, cur.Epoch
			drop.kept, drop.keptEpoch, drop.version = true, cur.Epoch, c.version
		}
		next.Models[c.model] = st
		drops = append(drops, drop)
		next.NextEpoch++
	}
	if len(drops) == 0 && next.Revision == old.Revision {
		return nil
	}
	r.snap.Store(next)
	if len(drops) > 0 {
		r.rollouts.Add(uint64(len(drops)))
	}
	if async {
		r.drops = append(r.drops, drops...)
		r.dirty.Store(true)
		select {
		case r.kick <- struct{}{}:
		default:
		}
		return nil
	}
	return errors.Join(r.persistLocked(next), r.drop(drops))
}

// modelDrop is a model's range of L2 entries older than epoch, to delete,
// except, when kept is set, those of {model@version}… keys under
// keptEpoch (a first rollout: see ModelState.Kept).
type modelDrop struct {
	model     string
	epoch     uint64
	kept      bool
	keptEpoch uint64
	version   string
}

// ranges returns the [start, end) pairs of L2 keys d deletes.
func (d modelDrop) ranges() [][2][]byte {
	start, end := ModelRange(d.model, 0, d.epoch)
	if !d.kept {
		return [][2][]byte{{start, end}}
	}
	// A user key's scope ends at its first '}', so every key of scope
	// {model@version} starts with exactly these bytes, and only those.
	keep := ModelKey(d.model, d.keptEpoch, []byte("{"+d.model+"@"+d.version+"}"))
	return [][2][]byte{{start, keep}, {PrefixEnd(keep), end}}
}

// drop range-deletes the L2 entries of each drop's model older than its
// epoch (but those a first rollout keeps).
func (r *Registry) drop(drops []modelDrop) error {
	var errs []error
	for _, d := range drops {
		for _, rg := range d.ranges() {
			if err := r.store.DropRange(rg[0], rg[1]); err != nil {
				r.onError("drop model range", err)
				errs = append(errs, fmt.Errorf("tier: dropping stale entries of %q: %w", d.model, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// loop writes what ApplyModelsAsync leaves behind as soon as it is kicked.
// Owned by OpenRegistry, stopped by Close.
func (r *Registry) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
			r.retry()
		}
	}
}

// retry writes what ApplyModelsAsync left behind, or what failed: the
// range deletes, then the state if it is newer than the persisted one.
func (r *Registry) retry() {
	r.mu.Lock()
	drops := r.drops
	r.drops = nil
	r.mu.Unlock()
	if len(drops) > 0 {
		_ = r.drop(drops)
	}
	if !r.dirty.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dirty.Load() {
		_ = r.persistLocked(r.snap.Load())
	}
}

func (r *Registry) persistLocked(snap *snapshot) error {
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("tier: encoding model registry: %w", err)
	}
	if err := r.store.PutMeta(modelsMeta, b); err != nil {
		r.dirty.Store(true)
		r.onError("persist model registry", err)
		return fmt.Errorf("tier: persisting model registry: %w", err)
	}
	r.dirty.Store(false)
	return nil
}

// Close stops the background goroutine, writes what it left behind, and
// reports an error if the state could not be persisted. Changes after
// Close are ErrClosed. It is idempotent; it does not close the store.
func (r *Registry) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	close(r.stop)
	<-r.done
	r.retry()
	if r.dirty.Load() {
		return errors.New("tier: model registry not persisted")
	}
	return nil
}

// Model returns the version of model; ok is false for a model the registry
// does not know or has purged.
func (r *Registry) Model(model string) (version string, ok bool) {
	m := r.state(model)
	return m.Version, m.Version != ""
}

// Models returns every model with a current version, sorted by name, as
// name/version pairs.
func (r *Registry) Models() [][2]string {
	snap := r.snap.Load()
	out := make([][2]string, 0, len(snap.Models))
	for name, m := range snap.Models {
		if m.Version != "" {
			out = append(out, [2]string{name, m.Version})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// ModelsRevision returns the registry revision applied.
func (r *Registry) ModelsRevision() uint64 { return r.snap.Load().Revision }

// registryStats are the registry's part of HybridStats.
type registryStats struct {
	revision uint64
	known    int // models with a current version
	rollouts uint64
}

func (r *Registry) stats() registryStats {
	snap := r.snap.Load()
	st := registryStats{revision: snap.Revision, rollouts: r.rollouts.Load()}
	for _, m := range snap.Models {
		if m.Version != "" {
			st.known++
		}
	}
	return st
}
