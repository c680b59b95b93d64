package main

import (
	"container/heap"
	"slices"
)

// nextUses returns, for each request, the position of the next request
// of the same key, or len(keys) if there is none.
func nextUses(keys []int32) []int32 {
	next := make([]int32, len(keys))
	last := make(map[int32]int32, len(keys)/4)
	for i := len(keys) - 1; i >= 0; i-- {
		if j, ok := last[keys[i]]; ok {
			next[i] = j
		} else {
			next[i] = int32(len(keys))
		}
		last[keys[i]] = int32(i)
	}
	return next
}

// belady is Belady's OPT with bypass: on a miss the key is cached unless
// it is never requested again, then the entries whose next request is
// furthest away (the new one included: bypass) are evicted until the
// cache is within capacity. With values of one size this is optimal: no
// policy, online or offline, has more hits. With mixed sizes it is a
// heuristic (exact OPT is NP-hard; evicting a large value asked for later
// may beat evicting a small one asked for last), not a bound: see bound.
type belady struct {
	next  []int32
	cap   int64
	bytes int64
	m     map[int32]*node
	h     nodeHeap
}

func newBelady(next []int32, capacity int64) *belady {
	return &belady{next: next, cap: capacity, m: make(map[int32]*node),
		h: nodeHeap{less: func(a, b *node) bool { return a.prio > b.prio }}}
}

func (b *belady) request(i int, k int32, size int64) bool {
	nxt := int64(b.next[i])
	if e := b.m[k]; e != nil {
		e.prio = nxt
		heap.Fix(&b.h, e.hidx)
		return true
	}
	if nxt == int64(len(b.next)) || size > b.cap {
		return false
	}
	e := &node{key: k, size: size, cost: size, prio: nxt}
	heap.Push(&b.h, e)
	b.m[k] = e
	b.bytes += size
	for b.bytes > b.cap {
		v := heap.Pop(&b.h).(*node)
		delete(b.m, v.key)
		b.bytes -= v.cost
	}
	return false
}

func (b *belady) held() held { return held{Keys: len(b.m)} }

// bound is an upper bound on the measured hit ratio of any cache of
// capacity bytes, mixed sizes included (the PFOO-U bound of Berger et
// al., "Practical bounds on optimal caching with variable object sizes",
// 2018). A hit at request j of a key last requested at i < j needs the
// key's value held through the j-i steps between them, which takes
// size × (j-i) byte-steps; a cache holds at most capacity bytes at each
// of the trace's steps, capacity × len(keys) in all. Taking the hits of
// smallest cost first maximizes their number within that total, so no
// schedule, which must also fit at every single step, has more.
func bound(t Trace, v Values, capacity int64) float64 {
	last := make(map[int32]int, len(t.Keys)/4)
	var costs []float64
	for j, k := range t.Keys {
		if i, ok := last[k]; ok && j >= t.Warm {
			if s := v.size(k); s <= capacity {
				costs = append(costs, float64(s)*float64(j-i))
			}
		}
		last[k] = j
	}
	slices.Sort(costs)
	budget := float64(capacity) * float64(len(t.Keys))
	n := 0
	for _, c := range costs {
		if budget < c {
			break
		}
		budget -= c
		n++
	}
	return float64(n) / float64(len(t.Keys)-t.Warm)
}

// compulsory is the share of measured requests whose key was requested
// before (in the warm-up or the measured part): the hit ratio of an
// infinite cache, an upper bound at any capacity.
func compulsory(t Trace) float64 {
	seen := make(map[int32]bool, len(t.Keys)/4)
	n := 0
	for j, k := range t.Keys {
		if seen[k] && j >= t.Warm {
			n++
		}
		seen[k] = true
	}
	return float64(n) / float64(len(t.Keys)-t.Warm)
}
