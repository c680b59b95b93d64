package policy

// Ghost remembers the keys L1 dropped unread, by 64-bit hash, oldest
// forgotten first: as many as stood for GhostSpan times the bytes it is
// sized for, at most GhostEntries of those bytes. S3-FIFO sends a key the
// ghost still holds straight to its main queue: it was asked for again
// soon enough to be worth keeping. Sized for L1 and L2 together (the
// daemon passes --mem-max + --disk-max), a key returns to main if it comes
// back before twice what both tiers hold has been asked for once. In the
// simulator (bench/policysim, S3-FIFO 2-tier), a span of 2 gave the best
// mean hit ratio over its 42 cells (0.5727, against 0.5711 with 1 and
// 0.5712 with 4) and 0.4–0.7 points more than 1 on the budget trace at 64
// and 128 MiB; 4 gained 0.2–0.4 more there but lost up to 0.8 points with
// mixed 118 KB / 4 MiB values.
//
// A Ghost is not safe for concurrent use: its owner serializes calls.
type Ghost struct {
	ring       []ghostSlot // circular; the oldest at head
	head, n    int
	seq        uint64
	bytes, max int64
	latest     map[uint64]uint64 // hash → seq of its newest slot still remembered
}

type ghostSlot struct {
	hash, seq uint64
	size      int64
}

// GhostEntryBytes is what a ghost entry costs in memory at most: its slot
// in the ring (24 bytes) and its map entry, with the map's load factor
// and growth (measured by TestGhostBytes: 60 bytes per entry at 256 Ki
// entries).
const GhostEntryBytes = 72

// GhostSpan is how many times the bytes it is sized for a ghost remembers
// keys of.
const GhostSpan = 2

// GhostEntries is how many entries a ghost of maxBytes remembers at most:
// one per 16 KiB, between 1,024 and 4 Mi (256 MiB of ghost at the top).
// Entries of the large records S3-FIFO orders (1 KiB and more) that
// average under 32 KiB are remembered for less than GhostSpan × maxBytes'
// worth: the slots, not the bytes, bound the ghost's memory.
func GhostEntries(maxBytes int64) int {
	return int(min(max(maxBytes/(16<<10), 1024), 4<<20))
}

// NewGhost returns a ghost sized for maxBytes: it remembers GhostSpan ×
// maxBytes' worth of entries, GhostEntries(maxBytes) of them at most.
func NewGhost(maxBytes int64) *Ghost {
	return &Ghost{ring: make([]ghostSlot, GhostEntries(maxBytes)), max: GhostSpan * maxBytes, latest: make(map[uint64]uint64)}
}

// Add remembers hash, for an entry of size bytes, forgetting the oldest
// entries past the ghost's bounds.
func (g *Ghost) Add(hash uint64, size int64) {
	if len(g.ring) == 0 {
		return
	}
	for g.n > 0 && (g.n == len(g.ring) || g.bytes+size > g.max) {
		g.pop()
	}
	g.seq++
	g.ring[(g.head+g.n)%len(g.ring)] = ghostSlot{hash: hash, seq: g.seq, size: size}
	g.n++
	g.bytes += size
	g.latest[hash] = g.seq
}

// pop forgets the oldest slot.
func (g *Ghost) pop() {
	s := g.ring[g.head]
	if g.latest[s.hash] == s.seq {
		delete(g.latest, s.hash)
	}
	g.bytes -= s.size
	g.head = (g.head + 1) % len(g.ring)
	g.n--
}

// Take reports whether the ghost remembers hash, and forgets it.
func (g *Ghost) Take(hash uint64) bool {
	if _, ok := g.latest[hash]; !ok {
		return false
	}
	delete(g.latest, hash)
	return true
}

// Len returns how many keys the ghost remembers.
func (g *Ghost) Len() int { return len(g.latest) }

// Reset forgets every key.
func (g *Ghost) Reset() {
	g.head, g.n, g.bytes = 0, 0, 0
	clear(g.latest)
}
