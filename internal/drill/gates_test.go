package drill

import (
	"slices"
	"sync"
)

// writerGates hold a drill's writers back during a rollout: a daemon's
// writers hold its gate (a read lock) while they compute and write a
// value, and the test takes the gates of the daemons a rollout goes to
// (lockAll) and gives each back once that daemon applied it (unlock), so
// that no writer stores a value of the old version under the new one.
type writerGates struct {
	gates map[string]*sync.RWMutex // by daemon; filled before any goroutine starts

	gatesMu sync.Mutex // guards locked
	locked  []*daemon  // the daemons whose gates the test holds
}

// gatesOf returns an open gate for each of ds, by daemon name.
func gatesOf(ds []*daemon) map[string]*sync.RWMutex {
	gates := map[string]*sync.RWMutex{}
	for _, d := range ds {
		gates[d.name] = &sync.RWMutex{}
	}
	return gates
}

// lockAll stops the writers of ds (before a rollout).
func (g *writerGates) lockAll(ds ...*daemon) {
	for _, d := range ds {
		g.gates[d.name].Lock()
		g.gatesMu.Lock()
		g.locked = append(g.locked, d)
		g.gatesMu.Unlock()
	}
}

// unlock lets ds's writers go on (once they applied the rollout).
func (g *writerGates) unlock(ds ...*daemon) {
	for _, d := range ds {
		g.gatesMu.Lock()
		i := slices.Index(g.locked, d)
		if i >= 0 {
			g.locked = slices.Delete(g.locked, i, i+1)
		}
		g.gatesMu.Unlock()
		if i >= 0 {
			g.gates[d.name].Unlock()
		}
	}
}

// unlockAll gives back every gate the test holds (a drill that failed
// during a rollout).
func (g *writerGates) unlockAll() {
	g.gatesMu.Lock()
	held := slices.Clone(g.locked)
	g.gatesMu.Unlock()
	g.unlock(held...)
}
