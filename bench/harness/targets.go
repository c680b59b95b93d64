package harness

import (
	"fmt"
	"strings"
)

// hotRow finds a hot-set cell.
func (r *Results) hotRow(system, op string, size, conns int) *HotResult {
	for i := range r.HotSet {
		x := &r.HotSet[i]
		if x.System == system && x.Op == op && x.Size == size && x.Conns == conns {
			return x
		}
	}
	return nil
}

func (r *Results) budgetRow(system string, budget int64) *BudgetResult {
	for i := range r.Budget {
		if r.Budget[i].System == system && r.Budget[i].Budget == budget {
			return &r.Budget[i]
		}
	}
	return nil
}

func (r *Results) restartRow(system string) *RestartResult {
	for i := range r.Restart {
		if r.Restart[i].System == system {
			return &r.Restart[i]
		}
	}
	return nil
}

// evaluateTargets checks the targets against the results.
func evaluateTargets(r *Results, c *Config) []Target {
	var ts []Target

	// Hot set: tiercached (write-back, memory only like Redis here) ≥
	// Redis throughput at every size and p99 ≤ Redis p99, every cell.
	if len(r.HotSet) > 0 {
		t := Target{Name: "Hot set: tiercached ≥ Redis throughput and p99 ≤ Redis p99 at every size"}
		var misses []string
		cells := 0
		for _, x := range r.HotSet {
			if x.System != kindTiercache {
				continue
			}
			rd := r.hotRow(kindRedis, x.Op, x.Size, x.Conns)
			if rd == nil {
				continue
			}
			cells++
			if x.OpsPerSec < rd.OpsPerSec || x.P99 > rd.P99 {
				misses = append(misses, fmt.Sprintf("%s %s c=%d (%.2f× rps, p99 %.2f×)", x.Op, fmtBytes(int64(x.Size)), x.Conns, x.OpsPerSec/rd.OpsPerSec, x.P99/rd.P99))
			}
		}
		t.Known = cells > 0
		t.Met = t.Known && len(misses) == 0
		switch {
		case !t.Known:
			t.Detail = "no Redis to compare with"
		case t.Met:
			t.Detail = fmt.Sprintf("all %d cells", cells)
		default:
			t.Detail = fmt.Sprintf("missed in %d of %d cells: %s", len(misses), cells, strings.Join(misses, "; "))
		}
		ts = append(ts, t)
	}

	// Budget: hit ratio ≥ 1.5× Redis-LRU at every budget; p99 GET ≤ 2 ms.
	if len(r.Budget) > 0 {
		t := Target{Name: "Budget: tiercached hit ratio ≥ 1.5× Redis-LRU's at every budget"}
		var parts []string
		t.Met = true
		for _, mem := range c.BudgetMem {
			tc, rd := r.budgetRow(kindTiercache, mem), r.budgetRow(kindRedis, mem)
			if tc == nil || rd == nil {
				continue
			}
			t.Known = true
			ratio := ratioOf(tc.HitRatio, rd.HitRatio)
			if ratio < 1.5 {
				t.Met = false
			}
			parts = append(parts, fmt.Sprintf("%s: %.3f vs %.3f = %.2f×", fmtBytes(mem), tc.HitRatio, rd.HitRatio, ratio))
		}
		t.Met = t.Met && t.Known
		t.Detail = strings.Join(parts, "; ")
		if !t.Known {
			t.Detail = "no Redis to compare with"
		}
		ts = append(ts, t)

		t = Target{Name: fmt.Sprintf("Budget: tiercached p99 GET ≤ 2 ms at %s", fmtBytes(int64(c.BudgetValue))), Known: true, Met: true}
		parts = nil
		for _, x := range r.Budget {
			if x.System != kindTiercache {
				continue
			}
			if x.Get.P99 > 2000 {
				t.Met = false
			}
			parts = append(parts, fmt.Sprintf("%s: %.2f ms", fmtBytes(x.Budget), x.Get.P99/1e3))
		}
		t.Detail = strings.Join(parts, "; ")
		ts = append(ts, t)
	}

	// Cold tier: L2-served GET throughput ≥ 50% of the hot figure.
	for _, x := range r.Cold {
		ratio := ratioOf(x.OpsPerSec, x.HotOpsPerSec)
		ts = append(ts, Target{Name: fmt.Sprintf("Cold tier: L2-served GET throughput ≥ 50%% of hot at %s", fmtBytes(int64(x.Size))),
			Known: true, Met: ratio >= 0.5,
			Detail: fmt.Sprintf("%.0f vs %.0f GET/s = %.2f× (%.0f%% of hits from L2)", x.OpsPerSec, x.HotOpsPerSec, ratio, 100*x.L2Share)})
	}

	// Restart: first hit < 1 s and ≥ 10× sooner than Redis' RDB load.
	if tc := r.restartRow(kindTiercache); tc != nil {
		t := Target{Name: "Restart: first hit < 1 s", Known: true, Met: tc.FirstHitSeconds < 1,
			Detail: fmt.Sprintf("%.3f s with %s cached", tc.FirstHitSeconds, fmtBytes(tc.Bytes))}
		ts = append(ts, t)
		t = Target{Name: "Restart: first hit ≥ 10× sooner than Redis' RDB load"}
		if rd := r.restartRow(kindRedis); rd != nil && rd.FirstHitSeconds > 0 {
			ratio := rd.FirstHitSeconds / tc.FirstHitSeconds
			t.Known, t.Met = true, ratio >= 10
			t.Detail = fmt.Sprintf("%.3f s vs Redis %.3f s: %.1f× sooner", tc.FirstHitSeconds, rd.FirstHitSeconds, ratio)
		} else {
			t.Detail = "no Redis to compare with"
		}
		ts = append(ts, t)
	}
	ts = append(ts, evaluateFleetTargets(r)...)
	return ts
}

func ratioOf(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
