package peer

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/dgryski/go-rendezvous"
)

// Member is one daemon of the fleet as ownership sees it.
type Member struct {
	// ID is the daemon's node id. Ownership hashes it, not Addr, so a
	// daemon that comes back on another address keeps its keys.
	ID string
	// Addr is the address its peer Server listens on, as other daemons
	// dial it (host:port).
	Addr string
}

// Ring decides which member owns a key: rendezvous (highest random
// weight) hashing over the members, so that a member joining or leaving
// moves only the keys it gains or loses, about 1/N of them. Owners depend
// only on the set of member ids and the key, never on the order members
// are given in or on the process: every daemon that sees the same members
// computes the same owners.
//
// Owner reads an immutable snapshot without locking; Update replaces it.
type Ring struct {
	mu    sync.Mutex // serializes Update
	state atomic.Pointer[ringState]
}

// ringState is one immutable membership.
type ringState struct {
	members []Member          // sorted by ID
	byID    map[string]Member // the same members
	hrw     *rendezvous.Rendezvous
	changed chan struct{} // closed when the next state replaces this one
}

// NewRing returns a ring over members (see Update).
func NewRing(members []Member) *Ring {
	r := &Ring{}
	r.state.Store(newRingState(members))
	return r
}

// hashString is the hash of member ids and keys: xxhash, fixed across
// processes, platforms and versions of this program, as ownership must be.
func hashString(s string) uint64 { return xxhash.Sum64String(s) }

func newRingState(members []Member) *ringState {
	s := &ringState{byID: make(map[string]Member, len(members)), changed: make(chan struct{})}
	for _, m := range members {
		if m.ID == "" || m.Addr == "" {
			continue // not serving peers: it owns nothing
		}
		s.byID[m.ID] = m
	}
	for _, m := range s.byID {
		s.members = append(s.members, m)
	}
	slices.SortFunc(s.members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	ids := make([]string, len(s.members))
	for i, m := range s.members {
		ids[i] = m.ID
	}
	s.hrw = rendezvous.New(ids, hashString)
	return s
}

// Update replaces the members. Members without an ID or an Addr own
// nothing and are left out; of two members with one ID, the later wins.
// Readers that called Changed before are told.
func (r *Ring) Update(members []Member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.state.Swap(newRingState(members))
	close(old.changed)
}

// Owner returns the member that owns key; ok is false when the ring has
// no members.
func (r *Ring) Owner(key []byte) (m Member, ok bool) {
	s := r.state.Load()
	if len(s.members) == 0 {
		return Member{}, false
	}
	return s.byID[s.hrw.Lookup(string(key))], true
}

// Members returns the members, sorted by ID.
func (r *Ring) Members() []Member {
	return slices.Clone(r.state.Load().members)
}

// Member returns the member with this id, if the ring has it.
func (r *Ring) Member(id string) (Member, bool) {
	m, ok := r.state.Load().byID[id]
	return m, ok
}

// Changed returns a channel that is closed by the next Update.
func (r *Ring) Changed() <-chan struct{} {
	return r.state.Load().changed
}
