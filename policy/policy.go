package policy

import "fmt"

// Eviction is an eviction policy of L1 (--eviction).
type Eviction int

const (
	// S3FIFO is the default: a small FIFO for new entries, a main CLOCK
	// for those read again, a ghost for the keys dropped unread.
	S3FIFO Eviction = iota
	// LRU evicts the least recently read or written entry.
	LRU
	// LFU evicts the least frequently read of a few sampled entries
	// (Redis' approximation: a logarithmic counter that decays).
	LFU
	// FIFO evicts in write order, whatever was read.
	FIFO
)

// Default is the policy a daemon runs unless told otherwise.
const Default = S3FIFO

var names = [...]string{S3FIFO: "s3fifo", LRU: "lru", LFU: "lfu", FIFO: "fifo"}

// Names lists the policies' names, the default first.
func Names() []string { return names[:] }

// String returns the policy's name, as --eviction takes it.
func (e Eviction) String() string {
	if e < 0 || int(e) >= len(names) {
		return fmt.Sprintf("Eviction(%d)", int(e))
	}
	return names[e]
}

// RedisName returns the policy in the shape of Redis' maxmemory-policy
// names (CONFIG GET maxmemory-policy, INFO maxmemory_policy): any key may
// be evicted, so "allkeys-" and the policy.
func (e Eviction) RedisName() string { return "allkeys-" + e.String() }

// Admits reports whether the policy filters what L1 writes down to L2
// (S3-FIFO's one-hit wonders); under the others every entry L1 evicts is
// demoted.
func (e Eviction) Admits() bool { return e == S3FIFO }

// Parse returns the policy named s (a name of Names).
func Parse(s string) (Eviction, error) {
	for i, n := range names {
		if n == s {
			return Eviction(i), nil
		}
	}
	return 0, fmt.Errorf("unknown eviction policy %q: want one of %v", s, names)
}
