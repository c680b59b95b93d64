package main

import (
	"fmt"
	"runtime"
	"sync"
)

// cache is one simulated policy. request replays request i of the trace,
// a GET of key k whose value has size bytes and, on a miss, the SET of
// it that follows (cache-aside); it reports whether the GET hit.
type cache interface {
	request(i int, k int32, size int64) bool
}

// held is what a cache holds at the end of a run: keys in L1 and in L2
// (two-tier models) and distinct keys in all.
type held struct{ L1, L2, Keys int }

// env is what a policy is built for: one trace at one capacity.
type env struct {
	next            []int32 // nextUses of the trace, for OPT
	memMax, diskMax int64   // the two tiers' capacities (--mem-max, --disk-max)
	total           int64   // memMax + diskMax: the single-tier policies' capacity
	entries, l1Ent  int     // total and memMax in mean-sized values (sketch sizing)
}

// Policy is one simulated policy.
type Policy struct {
	// Name is the row's name in the report.
	Name string
	// TwoTier marks the models of L1 and L2 with their own capacities,
	// which report bytes written to L2.
	TwoTier bool
	make    func(e env) cache
}

// Policies are the simulated policies, in the report's order.
var Policies = []Policy{
	{Name: "OPT", make: func(e env) cache { return newBelady(e.next, e.total) }},
	{Name: "LRU", make: func(e env) cache { return newLRU(e.total) }},
	{Name: "FIFO", make: func(e env) cache { return newFIFO(e.total) }},
	{Name: "LFU-DA", make: func(e env) cache { return newLFU(e.total) }},
	{Name: "S3-FIFO", make: func(e env) cache { return newS3FIFO(e.total, e.total-e.total/10, 0) }},
	{Name: "W-TinyLFU", make: func(e env) cache { return newWTinyLFU(e.total, newSketch(e.entries)) }},
	{Name: "today", TwoTier: true, make: func(e env) cache { return newToday(daemonAccounting(e.memMax, e.diskMax)) }},
	{Name: "today, nominal bytes", TwoTier: true, make: func(e env) cache { return newToday(nominalAccounting(e.memMax, e.diskMax)) }},
	{Name: "S3-FIFO 2-tier", TwoTier: true, make: func(e env) cache { return newS3FIFO2(daemonAccounting(e.memMax, e.diskMax)) }},
	{Name: "W-TinyLFU 2-tier", TwoTier: true, make: func(e env) cache {
		return newWTinyLFU2(daemonAccounting(e.memMax, e.diskMax), e.entries, e.l1Ent, false)
	}},
	{Name: "W-TinyLFU 2-tier, split sketch", TwoTier: true, make: func(e env) cache {
		return newWTinyLFU2(daemonAccounting(e.memMax, e.diskMax), e.entries, e.l1Ent, true)
	}},
}

// Result is one policy's outcome on one trace at one capacity.
type Result struct {
	Trace  string
	Values Values
	MemMax int64 // --mem-max; --disk-max is DiskFactor × MemMax
	Policy string
	// Hit is the measured hit ratio.
	Hit float64
	// Held is what the cache held at the end.
	Held held
	// L2Bytes and L2Writes are the bytes and entries written to L2 during
	// the measured part (two-tier models), second chances included.
	L2Bytes, L2Writes int64
}

// Cell is every result of one trace at one capacity, with the bounds.
type Cell struct {
	Trace      string
	Values     Values
	MemMax     int64
	Requests   int // measured
	Compulsory float64
	Bound      float64
	Results    []Result // in Policies' order
}

// OPT returns the cell's OPT hit ratio.
func (c Cell) OPT() float64 { return c.Results[0].Hit }

// Config is a simulation run.
type Config struct {
	Shape      Shape
	Values     []Values
	MemMax     []int64
	DiskFactor int64
	Policies   []Policy
	// Workers simulate cells in parallel. Default 2.
	Workers int
}

// run simulates c over t.
func run(c cache, t Trace, v Values) (hit float64, l2Bytes, l2Writes int64) {
	tt, _ := c.(interface{ l2Written() (int64, int64) })
	var b0, w0 int64
	hits := 0
	for i, k := range t.Keys {
		if i == t.Warm && tt != nil {
			b0, w0 = tt.l2Written()
		}
		if c.request(i, k, v.size(k)) && i >= t.Warm {
			hits++
		}
	}
	if tt != nil {
		b, w := tt.l2Written()
		l2Bytes, l2Writes = b-b0, w-w0
	}
	return float64(hits) / float64(len(t.Keys)-t.Warm), l2Bytes, l2Writes
}

// Simulate runs every policy on every trace at every capacity.
func Simulate(cfg Config, progress func(string)) []Cell {
	type job struct {
		v    Values
		mem  int64
		kind traceKind
		idx  int
	}
	ks := kinds(cfg.Shape)
	var jobs []job
	for _, v := range cfg.Values {
		for _, kind := range ks {
			for _, mem := range cfg.MemMax {
				jobs = append(jobs, job{v, mem, kind, len(jobs)})
			}
		}
	}
	cells := make([]Cell, len(jobs))
	ch := make(chan job)
	var wg sync.WaitGroup
	for range max(cfg.Workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				cells[j.idx] = simulateCell(cfg, j.kind, j.v, j.mem)
				if progress != nil {
					progress(fmt.Sprintf("%s %s %d MiB done", j.kind.name, j.v, j.mem/MiB))
				}
				runtime.GC()
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	return cells
}

func simulateCell(cfg Config, kind traceKind, v Values, mem int64) Cell {
	disk := cfg.DiskFactor * mem
	total := mem + disk
	e := env{memMax: mem, diskMax: disk, total: total,
		entries: int(float64(total) / v.mean()), l1Ent: int(float64(mem) / v.mean())}
	t := kind.build(cfg.Shape, total, v)
	e.next = nextUses(t.Keys)
	cell := Cell{Trace: t.Name, Values: v, MemMax: mem, Requests: len(t.Keys) - t.Warm,
		Compulsory: compulsory(t), Bound: bound(t, v, total)}
	for _, p := range cfg.Policies {
		c := p.make(e)
		if t.Rollout > 0 {
			c = &rolledOut{before: c, after: p.make(e), at: t.Rollout}
		}
		hit, b, w := run(c, t, v)
		r := Result{Trace: t.Name, Values: v, MemMax: mem, Policy: p.Name, Hit: hit, L2Bytes: b, L2Writes: w}
		if h, ok := c.(interface{ held() held }); ok {
			r.Held = h.held()
		}
		cell.Results = append(cell.Results, r)
	}
	return cell
}

// rolledOut is a policy told of a rollout at request at: before it, the
// requests go to before; from it on, to after, a fresh instance, as the
// daemon drops the old version's keys from both tiers (which frees L2's
// room: its admission takes everything again while L2 fills).
type rolledOut struct {
	before, after cache
	at            int
}

func (r *rolledOut) request(i int, k int32, size int64) bool {
	if i >= r.at {
		return r.after.request(i, k, size)
	}
	return r.before.request(i, k, size)
}

// l2Written sums what both instances wrote to L2 (two-tier models).
func (r *rolledOut) l2Written() (bytes, writes int64) {
	for _, c := range []cache{r.before, r.after} {
		if tt, ok := c.(interface{ l2Written() (int64, int64) }); ok {
			b, w := tt.l2Written()
			bytes, writes = bytes+b, writes+w
		}
	}
	return bytes, writes
}

// held is what the instance after the rollout holds.
func (r *rolledOut) held() held {
	if h, ok := r.after.(interface{ held() held }); ok {
		return h.held()
	}
	return held{}
}
