package main

import (
	"fmt"
	"sync"

	"github.com/tiercache/tiercache/bench/harness"
	"github.com/tiercache/tiercache/internal/zipf"
)

// Value sizes.
const (
	// SmallValue is the budget workload's embedding: 118 KB.
	SmallValue = 120832
	// LargeValue is the large embedding of the mixed value model: 4 MiB.
	LargeValue = 4 << 20
	// MiB is a mebibyte.
	MiB = 1 << 20
)

// Values is a value model: the size of each key's value.
type Values string

const (
	// Uniform gives every key a 118 KB value.
	Uniform Values = "118KB"
	// Mixed gives one key in ten (by a hash of the key) a 4 MiB value and
	// the others 118 KB: 79% of the distinct bytes are in 4 MiB values.
	Mixed Values = "mix"
)

// size returns the value size of key k.
func (v Values) size(k int32) int64 {
	if v == Mixed && mix64(uint64(uint32(k))^0x9e3779b97f4a7c15)%10 == 0 {
		return LargeValue
	}
	return SmallValue
}

// mean is the mean value size over keys.
func (v Values) mean() float64 {
	if v == Mixed {
		return 0.9*SmallValue + 0.1*LargeValue
	}
	return SmallValue
}

// mix64 is SplitMix64's finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Trace is a request sequence: every request is a GET of a key and, on a
// miss, a SET of it (cache-aside). Only the requests from Warm on count.
type Trace struct {
	Name string
	Keys []int32
	Warm int
	// Rollout, when not 0, is the request from which every key is new: a
	// model rollout, after which the old version's keys are never asked
	// for again. The daemon drops them from both tiers (L2 by range
	// deletes, which free its room); every policy is told the same way:
	// from there on it starts empty (see rolledOut).
	Rollout int
}

// Shape describes the traces of one run. The zero value of a field
// selects the full run's setting (see FullShape).
type Shape struct {
	// Keys is the number of distinct prompts of the Zipf traces.
	Keys int
	// Warm and Measured are the lengths of the warm-up and the measured
	// part of the Zipf, shift and scan traces.
	Warm, Measured int
	// Budget is the harness's configuration whose budget trace is
	// replayed; nil leaves the budget trace out.
	Budget *harness.Config
	// LoopFactor is the loop's working set ÷ the capacity in entries.
	LoopFactor float64
	// Seed names the random streams.
	Seed uint64
}

// FullShape is the full simulation: the harness's budget trace and
// Zipf traces of 1,000,000 prompts with 100,000 warm-up and 200,000
// measured requests.
func FullShape() Shape {
	c := harness.FullConfig()
	return Shape{Keys: 1_000_000, Warm: 100_000, Measured: 200_000, Budget: &c, LoopFactor: 1.1, Seed: 1}
}

// traceKind is one family of traces; build makes the trace for a
// capacity of capBytes and values v.
type traceKind struct {
	name  string
	build func(s Shape, capBytes int64, v Values) Trace
}

// kinds returns the trace families of s. z caches each exponent's table,
// which takes a while for a million keys; the cells that ask for it run
// concurrently.
func kinds(s Shape) []traceKind {
	var mu sync.Mutex // guards tables
	tables := map[float64]*zipf.Zipf{}
	z := func(e float64) *zipf.Zipf {
		mu.Lock()
		defer mu.Unlock()
		if tables[e] == nil {
			tables[e] = zipf.New(s.Keys, e)
		}
		return tables[e]
	}
	var ks []traceKind
	if s.Budget != nil {
		c := *s.Budget
		ks = append(ks, traceKind{"budget", func(Shape, int64, Values) Trace {
			return Trace{Name: "budget", Keys: harness.BudgetTrace(c), Warm: c.BudgetWarmup}
		}})
	}
	for i, e := range []float64{0.8, 1.0, 1.2} {
		name := fmt.Sprintf("zipf-%.1f", e)
		ks = append(ks, traceKind{name, func(s Shape, _ int64, _ Values) Trace {
			return Trace{Name: name, Keys: z(e).Trace(s.Warm+s.Measured, s.Seed, 0x5100+uint64(i)), Warm: s.Warm}
		}})
	}
	ks = append(ks,
		traceKind{"shift", func(s Shape, _ int64, _ Values) Trace {
			// A rollout halfway through the measured part: every key
			// from then on is new (another model version's prompts).
			t := z(1.0).Trace(s.Warm+s.Measured, s.Seed, 0x5200)
			for i := s.Warm + s.Measured/2; i < len(t); i++ {
				t[i] += int32(s.Keys)
			}
			return Trace{Name: "shift", Keys: t, Warm: s.Warm, Rollout: s.Warm + s.Measured/2}
		}},
		traceKind{"scan", func(s Shape, _ int64, _ Values) Trace {
			// Zipf(1) load; during the middle half of the measured
			// part a batch job interleaves one request of a key never
			// seen before after each of the load's.
			load := z(1.0).Trace(s.Warm+s.Measured, s.Seed, 0x5300)
			t := make([]int32, 0, len(load)+s.Measured/2)
			from, to := s.Warm+s.Measured/4, s.Warm+3*s.Measured/4
			next := int32(2 * s.Keys)
			for i, k := range load {
				t = append(t, k)
				if i >= from && i < to {
					t = append(t, next)
					next++
				}
			}
			return Trace{Name: "scan", Keys: t, Warm: s.Warm}
		}},
		traceKind{"loop", func(s Shape, capBytes int64, v Values) Trace {
			// A working set of LoopFactor × the capacity in bytes,
			// requested in the same order over and over: 2 loops
			// warm, 3 measured.
			n := 0
			for ws := int64(0); float64(ws) <= s.LoopFactor*float64(capBytes); n++ {
				ws += v.size(int32(n))
			}
			t := make([]int32, 5*n)
			for i := range t {
				t[i] = int32(i % n)
			}
			return Trace{Name: "loop", Keys: t, Warm: 2 * n}
		}},
	)
	return ks
}
