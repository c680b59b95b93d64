package main

// disk models disktier's eviction (store.go, maintain.go): writes go to
// the current generation, rolled when it has taken 1/32 of the budget;
// while the generations' bytes exceed the budget the oldest generation
// is dropped whole. A generation's bytes count everything written to it,
// so an entry rewritten elsewhere keeps taking room until its old
// generation is dropped. Entries read give a second chance as mode says:
// rewritten into the current generation when read (readTime) or when
// their generation is dropped (atDrop). A rewrite is a write like any
// other.
//
// Left out: Pebble's measured size, the backstop that drops one more
// generation when the directory stays high, and the timing of the
// maintainer (here every drop and rewrite is immediate).
type disk struct {
	budget, genTarget int64
	cost              func(size int64) int64
	gens              []*generation
	m                 map[int32]diskEnt
	live              int64
	written           int64 // bytes ever written (cost), second chances included
	writes            int64
	mode              secondChance
}

// secondChance is how the disk model keeps an entry that was read.
type secondChance uint8

const (
	// readTime is disktier before the CLOCK at drop time (the today
	// model): a hit on an entry of a generation at risk (the older half
	// of the bytes once more than half the budget is used) rewrites it
	// into the current generation at once.
	readTime secondChance = iota
	// atDrop is CLOCK at drop time: a hit marks its entry, a write of the
	// key clears the mark, and dropping a generation rewrites into the
	// current generation the entries still in it that are marked (their
	// marks cleared), in its order while less than 3/4 of the
	// generation's bytes were rewritten (disktier's maxChanceShare),
	// dropping the others. A rewritten entry not read
	// again goes with the next drop of its new generation.
	atDrop
)

// generation is a range of writes dropped together: its keys in write
// order, duplicates and keys since rewritten elsewhere included.
type generation struct {
	id    uint64
	bytes int64
	keys  []int32
	cur   int // keys[:cur] are known to have left this generation
}

// diskEnt is a stored entry: the generation holding its newest write, its
// value's size and, in atDrop mode, whether it was read since written.
type diskEnt struct {
	gen    uint64
	size   int64
	marked bool
}

// newDisk returns the L2 of budget bytes charging cost(size) per entry,
// giving read entries their second chance as mode says.
func newDisk(budget int64, cost func(int64) int64, mode secondChance) *disk {
	return &disk{budget: budget, genTarget: max(budget/32, 1), cost: cost,
		gens: []*generation{{id: 1}}, m: make(map[int32]diskEnt), mode: mode}
}

// has reports whether k is stored.
func (d *disk) has(k int32) bool {
	_, ok := d.m[k]
	return ok
}

// get looks k up. A hit is marked (atDrop) or, at risk, rewritten
// (readTime).
func (d *disk) get(k int32) bool {
	e, ok := d.m[k]
	if !ok {
		return false
	}
	switch d.mode {
	case atDrop:
		if !e.marked {
			e.marked = true
			d.m[k] = e
		}
	case readTime:
		if e.gen < d.atRiskBelow() {
			d.write(k, e.size)
		}
	}
	return true
}

// atRiskBelow is disktier's secondChanceBelow.
func (d *disk) atRiskBelow() uint64 {
	atRisk := d.live - d.budget/2
	var before int64
	for _, g := range d.gens {
		if before >= atRisk {
			return g.id
		}
		before += g.bytes
	}
	return d.gens[len(d.gens)-1].id
}

// hasRoom reports whether a write of size bytes leaves the store a
// generation below its budget: true while it fills, false once it has
// dropped generations (it then stays within one of its budget).
func (d *disk) hasRoom(size int64) bool { return d.live+d.cost(size) <= d.budget-d.genTarget }

// write stores k in the current generation, unmarked, and evicts.
func (d *disk) write(k int32, size int64) {
	c := d.cost(size)
	cur := d.gens[len(d.gens)-1]
	d.m[k] = diskEnt{gen: cur.id, size: size}
	cur.keys = append(cur.keys, k)
	cur.bytes += c
	d.live += c
	d.written += c
	d.writes++
	if cur.bytes >= d.genTarget {
		d.gens = append(d.gens, &generation{id: cur.id + 1})
	}
	for d.live > d.budget {
		d.dropOldest()
	}
}

// dropOldest drops the oldest generation with the entries still in it,
// then, in atDrop mode, rewrites those that were marked. The generation's
// bytes are gone before the rewrites are written, and the rewrites are
// unmarked, so a drop they cause drops them.
func (d *disk) dropOldest() {
	if len(d.gens) == 1 {
		cur := d.gens[0]
		d.gens = append(d.gens, &generation{id: cur.id + 1})
	}
	g := d.gens[0]
	var keep []rewrite
	room := g.bytes * 3 / 4
	for _, k := range g.keys {
		e, ok := d.m[k]
		if !ok || e.gen != g.id {
			continue
		}
		if d.mode == atDrop && e.marked && room > 0 {
			room -= d.cost(e.size)
			keep = append(keep, rewrite{k, e.size})
		}
		delete(d.m, k)
	}
	d.live -= g.bytes
	d.gens = d.gens[1:]
	for _, r := range keep {
		d.write(r.key, r.size)
	}
}

// rewrite is an entry of a dropped generation to write again.
type rewrite struct {
	key  int32
	size int64
}

// oldest returns the key the store would evict first: the oldest entry
// still in the oldest generation.
func (d *disk) oldest() (int32, bool) {
	for _, g := range d.gens {
		for ; g.cur < len(g.keys); g.cur++ {
			k := g.keys[g.cur]
			if e, ok := d.m[k]; ok && e.gen == g.id {
				return k, true
			}
		}
	}
	return 0, false
}
