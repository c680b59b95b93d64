package tier

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
