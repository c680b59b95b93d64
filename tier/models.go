package tier

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
)

// modelsMeta is the name of the L2 meta record holding the registry state.
const modelsMeta = "models"

// ModelState is what the cache knows of one model.
type ModelState struct {
	// Version is the model's current version; "" after a purge.
	Version string `json:"v,omitempty"`
	// Epoch changes with every version change and purge; records written
	// under another epoch are stale (but see Kept). Epochs are local to
	// this cache.
	Epoch uint64 `json:"e"`
	// Kept is set by the model's first rollout (from a state without a
	// version: never known, or purged): the records of {MODEL@Version}…
	// keys written before it, under KeptEpoch, the epoch the model had
	// then, were written for this version and stay current. Its
	// {MODEL@Version}… keys keep being written under KeptEpoch, so each key
	// has one epoch; its {MODEL}… keys, and every key after its next
	// change, use Epoch.
	Kept bool `json:"k,omitempty"`
	// KeptEpoch is the epoch of the {MODEL@Version}… records when Kept.
	KeptEpoch uint64 `json:"ke,omitempty"`
}

// epochOf is the epoch under which records of a key of scope sc (of this
// model) are current: the one new records of the key are written under.
func (m ModelState) epochOf(sc Scope) uint64 {
	if m.Kept && sc.Versioned {
		return m.KeptEpoch
	}
	return m.Epoch
}

// otherVersion reports whether a key of scope sc names a version of the
// model other than its current one ({MODEL@X}… while the model is at V):
// such a key is never served, and writing it is stale.
func (m ModelState) otherVersion(sc Scope) bool {
	return sc.Versioned && m.Version != "" && sc.Version != m.Version
}

// current reports whether a record of a key of scope sc (of this model)
// written under epoch may be served: a {MODEL@X}… key with X other than the
// model's version never is, whatever its epoch.
func (m ModelState) current(sc Scope, epoch uint64) bool {
	if m.otherVersion(sc) {
		return false
	}
	return epoch == m.epochOf(sc)
}

// registry is an immutable snapshot of the model registry; a new one is
// published on every change, so the request path reads it without locking.
type registry struct {
	Revision  uint64                `json:"revision"`
	NextEpoch uint64                `json:"next_epoch"`
	Models    map[string]ModelState `json:"models"`
}

func (r *registry) model(name string) ModelState { return r.Models[name] }

// loadRegistry reads the persisted registry from L2; a missing one is empty.
func loadRegistry(l2 Disk) (*registry, error) {
	reg := &registry{NextEpoch: 1, Models: map[string]ModelState{}}
	b, err := l2.Meta(modelsMeta)
	if errors.Is(err, ErrNotFound) {
		return reg, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tier: reading model registry: %w", err)
	}
	if err := json.Unmarshal(b, reg); err != nil {
		return nil, fmt.Errorf("tier: decoding model registry: %w", err)
	}
	if reg.Models == nil {
		reg.Models = map[string]ModelState{}
	}
	for _, m := range reg.Models {
		if m.Epoch >= reg.NextEpoch {
			reg.NextEpoch = m.Epoch + 1
		}
	}
	return reg, nil
}

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
func (h *Hybrid) ApplyModels(changes []ModelChange, rev uint64) error {
	return h.applyModels(changes, rev, false, false)
}

// ResyncModels is ApplyModels for a registry whose revisions started over
// (the bucket was deleted and created again): it records rev as the
// revision even if it is lower than the one applied before.
func (h *Hybrid) ResyncModels(changes []ModelChange, rev uint64) error {
	return h.applyModels(changes, rev, true, false)
}

// ApplyModelsAsync is ApplyModels for a registry kept elsewhere (a cluster's
// KV bucket, which a restarted cache replays from its persisted revision):
// it publishes the new state and returns without touching the disk. A
// background goroutine then writes the range deletes and persists the
// registry, once for any number of changes applied meanwhile (it waits for
// at most one write batch of the flusher, not for the write queue); errors
// go to Options.OnError and the flusher retries. Everything ApplyModels
// promises about reads and writes holds from the moment it returns.
func (h *Hybrid) ApplyModelsAsync(changes []ModelChange, rev uint64) {
	_ = h.applyModels(changes, rev, false, true)
}

// ResyncModelsAsync is ResyncModels without waiting for the disk, as
// ApplyModelsAsync.
func (h *Hybrid) ResyncModelsAsync(changes []ModelChange, rev uint64) {
	_ = h.applyModels(changes, rev, true, true)
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
	return [][2][]byte{{start, keep}, {prefixEnd(keep), end}}
}

func (h *Hybrid) applyModels(changes []ModelChange, rev uint64, exact, async bool) error {
	h.modelsMu.Lock()
	defer h.modelsMu.Unlock()
	return h.applyModelsLocked(changes, rev, exact, async)
}

// applyNextModels is ApplyModels at the revision after the one the cache
// has applied, which it returns (0 on error): the revisions of a registry
// that this cache alone keeps (LocalRegistry).
func (h *Hybrid) applyNextModels(changes ...ModelChange) (uint64, error) {
	h.modelsMu.Lock()
	defer h.modelsMu.Unlock()
	rev := h.reg.Load().Revision + 1
	if err := h.applyModelsLocked(changes, rev, false, false); err != nil {
		return 0, err
	}
	return rev, nil
}

func (h *Hybrid) applyModelsLocked(changes []ModelChange, rev uint64, exact, async bool) error {
	if h.closed.Load() {
		return ErrClosed
	}
	old := h.reg.Load()
	next := &registry{Revision: max(old.Revision, rev), NextEpoch: old.NextEpoch, Models: maps.Clone(old.Models)}
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
	h.reg.Store(next)
	if len(drops) > 0 {
		h.rollouts.Add(uint64(len(drops)))
	}
	if async {
		h.regDrops = append(h.regDrops, drops...)
		h.regDirty.Store(true)
		select {
		case h.regKick <- struct{}{}:
		default:
		}
		return nil
	}
	var errs []error
	if err := h.persistRegistryLocked(next); err != nil {
		errs = append(errs, err)
	}
	if err := h.dropModels(drops); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// dropModels range-deletes the L2 entries of each drop's model older than
// its epoch (but those a first rollout keeps).
func (h *Hybrid) dropModels(drops []modelDrop) error {
	var errs []error
	for _, d := range drops {
		for _, r := range d.ranges() {
			if err := h.l2.DropRange(r[0], r[1]); err != nil {
				h.opts.OnError("drop model range", err)
				errs = append(errs, fmt.Errorf("tier: dropping stale entries of %q: %w", d.model, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// registryLoop writes what ApplyModelsAsync leaves behind as soon as it
// is kicked. Owned by NewHybrid, stopped by Close.
func (h *Hybrid) registryLoop() {
	defer close(h.regDone)
	for {
		select {
		case <-h.stop:
			return
		case <-h.regKick:
			h.applyPendingModels()
		}
	}
}

// applyPendingModels writes what ApplyModelsAsync left behind: the range
// deletes, then the registry if it is newer than the persisted one.
func (h *Hybrid) applyPendingModels() {
	h.modelsMu.Lock()
	drops := h.regDrops
	h.regDrops = nil
	h.modelsMu.Unlock()
	if len(drops) > 0 {
		_ = h.dropModels(drops)
	}
	h.retryPersistRegistry()
}

func (h *Hybrid) persistRegistryLocked(reg *registry) error {
	b, err := json.Marshal(reg)
	if err != nil {
		return fmt.Errorf("tier: encoding model registry: %w", err)
	}
	if err := h.l2.PutMeta(modelsMeta, b); err != nil {
		h.regDirty.Store(true)
		h.opts.OnError("persist model registry", err)
		return fmt.Errorf("tier: persisting model registry: %w", err)
	}
	h.regDirty.Store(false)
	return nil
}

// retryPersistRegistry persists the registry if an earlier attempt failed.
func (h *Hybrid) retryPersistRegistry() {
	if !h.regDirty.Load() {
		return
	}
	h.modelsMu.Lock()
	defer h.modelsMu.Unlock()
	if h.regDirty.Load() {
		_ = h.persistRegistryLocked(h.reg.Load())
	}
}

// Model returns the state of model; ok is false for a model the registry
// does not know or has purged.
func (h *Hybrid) Model(model string) (version string, ok bool) {
	m := h.reg.Load().model(model)
	return m.Version, m.Version != ""
}

// Models returns every model with a current version, sorted by name, as
// name/version pairs.
func (h *Hybrid) Models() [][2]string {
	reg := h.reg.Load()
	out := make([][2]string, 0, len(reg.Models))
	for name, m := range reg.Models {
		if m.Version != "" {
			out = append(out, [2]string{name, m.Version})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// ModelsRevision returns the registry revision the cache has applied.
func (h *Hybrid) ModelsRevision() uint64 { return h.reg.Load().Revision }
