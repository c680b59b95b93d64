package memtier

import (
	"fmt"
	"testing"

	"github.com/tiercache/tiercache/policy"
	"github.com/tiercache/tiercache/tier"
)

// policyCache is an 8 MiB L1 under p (its ghost remembering 1 GiB of
// entries) whose large store holds n records of size bytes, n measured,
// and the names of the entries it evicted, with whether the policy
// admitted each.
type policyCache struct {
	*Cache
	n, size int
	evicted map[string]bool
}

func newPolicyCache(t *testing.T, p policy.Eviction, size int) *policyCache {
	t.Helper()
	c := &policyCache{Cache: newCache(t, Options{MaxBytes: 8 << 20, Eviction: p, GhostBytes: 1 << 30}), size: size, evicted: map[string]bool{}}
	c.SetOnEvict(func(key string, _ tier.Record, admitted bool) { c.evicted[key] = admitted })
	c.n = int(c.largeLimit() / costOf([]byte("k00"), record(size, 0, 0), 0))
	return c
}

func (c *policyCache) set(t *testing.T, key string) {
	t.Helper()
	if err := c.Set([]byte(key), record(c.size, 0, 1)); err != nil {
		t.Fatal(err)
	}
}

func (c *policyCache) read(t *testing.T, key string, times int) {
	t.Helper()
	for range times {
		if _, err := c.Get([]byte(key)); err != nil {
			t.Fatalf("Get(%s): %v", key, err)
		}
	}
}

func (c *policyCache) has(key string) bool { return c.large.has(key) }

// fill stores k00 … k(n-1), filling the large store without evicting.
func (c *policyCache) fill(t *testing.T) {
	t.Helper()
	for i := range c.n {
		c.set(t, fmt.Sprintf("k%02d", i))
	}
	if len(c.evicted) != 0 {
		t.Fatalf("filling %d entries evicted %v", c.n, c.evicted)
	}
}

// TestPolicyFIFO: FIFO evicts the oldest write, whatever was read.
func TestPolicyFIFO(t *testing.T) {
	c := newPolicyCache(t, policy.FIFO, 200<<10)
	c.fill(t)
	c.read(t, "k00", 10)
	c.set(t, "new")
	if !c.has("new") || c.has("k00") || !c.has("k01") {
		t.Fatalf("evicted %v, want k00 (the oldest, read or not)", c.evicted)
	}
}

// TestPolicyLRU: LRU evicts the least recently used entry: reading the
// oldest keeps it.
func TestPolicyLRU(t *testing.T) {
	c := newPolicyCache(t, policy.LRU, 200<<10)
	c.fill(t)
	c.read(t, "k00", 1)
	c.set(t, "new")
	c.set(t, "new2")
	if !c.has("k00") || c.has("k01") || c.has("k02") || !c.has("k03") {
		t.Fatalf("evicted %v, want k01 and k02 (k00 was read since)", c.evicted)
	}
}

// TestPolicyLFU: LFU evicts the least frequently read entry, not the
// oldest nor the least recent.
func TestPolicyLFU(t *testing.T) {
	c := newPolicyCache(t, policy.LFU, 600<<10)
	if c.n > lfuExact {
		t.Fatalf("%d entries: the test wants LFU exact (at most %d)", c.n, lfuExact)
	}
	c.fill(t)
	for i := range c.n {
		if k := fmt.Sprintf("k%02d", i); k != "k05" {
			c.read(t, k, 100) // the counter is logarithmic, as Redis': ~5 more
		}
	}
	c.read(t, "k05", 1) // read once, and last: LRU would keep it
	c.set(t, "new")
	if len(c.evicted) != 1 || c.has("k05") {
		t.Fatalf("evicted %v, want k05 (read once; every other key 100 times)", c.evicted)
	}
}

// TestPolicyS3FIFO: new entries go to the small queue; one read there
// moves to main and survives a scan of one-time keys, which leave unread
// (not admitted: the hook hears so) and are remembered by the ghost, so
// that one written again goes to main directly.
func TestPolicyS3FIFO(t *testing.T) {
	c := newPolicyCache(t, policy.S3FIFO, 200<<10)
	c.fill(t)
	for i := range c.n / 2 {
		c.read(t, fmt.Sprintf("k%02d", i), 2) // the hot half
	}
	for i := range 4 * c.n {
		c.set(t, fmt.Sprintf("scan%03d", i))
	}
	for i := range c.n / 2 {
		if k := fmt.Sprintf("k%02d", i); !c.has(k) {
			t.Fatalf("the scan evicted the hot %s (evicted %d entries)", k, len(c.evicted))
		}
	}
	st := c.Stats()
	if st.Rejected == 0 || st.Admitted < uint64(c.n/2) {
		t.Fatalf("admitted %d, rejected %d: want the hot half admitted, scan keys rejected", st.Admitted, st.Rejected)
	}
	if admitted, ok := c.evicted["scan000"]; !ok || admitted {
		t.Fatalf("scan000: evicted %v, admitted %v; want evicted unread, not admitted", ok, admitted)
	}
	// scan000 is in the ghost: written again, it is admitted to main.
	before := c.Stats().Admitted
	c.set(t, "scan000")
	if c.Stats().Admitted != before+1 || c.large.mu.m["scan000"].q != inMain {
		t.Fatal("a key the ghost remembers did not go to main")
	}
	// A promotion (SetProven) goes to main too.
	if err := c.SetProven([]byte("proven"), record(200<<10, 0, 2)); err != nil {
		t.Fatal(err)
	}
	if c.large.mu.m["proven"].q != inMain {
		t.Fatal("SetProven did not put the entry in main")
	}
}
