package harness

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// variant is one system configuration in a workload: a kind plus the name
// its rows carry.
type variant struct {
	name, kind, policy string
}

// hotVariants are tiercached in each configured write policy, then the peers.
func (h *runner) hotVariants() []variant {
	var vs []variant
	for _, p := range h.cfg.HotPolicies {
		name := kindTiercache
		if p == "through" {
			name = kindTiercache + "-wt"
		}
		vs = append(vs, variant{name: name, kind: kindTiercache, policy: p})
	}
	for _, k := range h.peerKinds() {
		vs = append(vs, variant{name: k, kind: k})
	}
	return vs
}

// hotKeys is the number of keys of one size in the hot set.
func (h *runner) hotKeys(size int) int {
	return int(min(max(h.cfg.HotBytes/int64(size), 16), 10_000))
}

// pipelineFor keeps megabyte values to one request in flight per
// connection: 64 connections × 4 × 4 MB would measure the kernel's socket
// buffers, not the server.
func (h *runner) pipelineFor(size int) int {
	if size > 1*MiB {
		return 1
	}
	return h.cfg.Pipeline
}

// hotSet runs GET and SET at every size and connection count on each
// system, with every key in memory: HotRounds rounds, each running every
// system in turn (one at a time), then each cell's median round.
func (h *runner) hotSet(ctx context.Context) error {
	maxSize := 0
	for _, s := range h.cfg.HotSizes {
		maxSize = max(maxSize, s)
	}
	memMB := h.cfg.HotMemMax / MiB
	var rows []HotResult
	for round := 1; round <= h.cfg.HotRounds; round++ {
		last := round == h.cfg.HotRounds
		for _, v := range h.hotVariants() {
			h.logf("hot set: round %d of %d: %s", round, h.cfg.HotRounds, v.name)
			p, err := h.start(ctx, v.kind, v.name,
				tcOpts{memMax: h.cfg.HotMemMax, diskMax: max(4*h.cfg.HotMemMax, 1*GiB), policy: v.policy},
				redisOpts{maxMemory: h.cfg.HotMemMax},
				mcOpts{memMB: memMB, itemMax: itemMaxFor(maxSize)})
			if err != nil {
				return err
			}
			got, err := h.hotSetOn(ctx, v.name, p)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			rows = append(rows, got...)
			if !last {
				if err := p.stop(2 * time.Minute); err != nil {
					return err
				}
				continue
			}
			setting := "limit " + fmtBytes(h.cfg.HotMemMax)
			if v.kind == kindTiercache {
				setting = fmt.Sprintf("--mem-max %s, %s", fmtBytes(h.cfg.HotMemMax), v.policy)
			}
			if err := h.stopProc(p, WorkloadHotSet, setting, h.cfg.HotMemMax); err != nil {
				return err
			}
		}
	}
	h.res.HotSet = append(h.res.HotSet, medianRounds(rows)...)
	return nil
}

// medianRounds reduces the rows of several rounds to one per cell (system,
// op, size, conns), in first-seen order: the round with the median
// throughput (the lower middle one for an even count), with the range of
// the others.
func medianRounds(rows []HotResult) []HotResult {
	type cell struct {
		system, op  string
		size, conns int
	}
	var order []cell
	byCell := map[cell][]HotResult{}
	for _, r := range rows {
		c := cell{r.System, r.Op, r.Size, r.Conns}
		if _, ok := byCell[c]; !ok {
			order = append(order, c)
		}
		byCell[c] = append(byCell[c], r)
	}
	out := make([]HotResult, 0, len(order))
	for _, c := range order {
		rs := byCell[c]
		slices.SortFunc(rs, func(a, b HotResult) int { return cmp.Compare(a.OpsPerSec, b.OpsPerSec) })
		m := rs[(len(rs)-1)/2]
		m.Rounds, m.MinOpsPerSec, m.MaxOpsPerSec = len(rs), rs[0].OpsPerSec, rs[len(rs)-1].OpsPerSec
		out = append(out, m)
	}
	return out
}

// itemMaxFor is memcached's -I for values up to size: its default 1 MiB,
// else the next power of two above size (the item header needs room).
func itemMaxFor(size int) int64 {
	if size < 1*MiB-1024 {
		return 0
	}
	m := int64(2 * MiB)
	for m < int64(size)+64*KiB {
		m *= 2
	}
	return m
}

// hotSetOn runs every hot-set cell on one system and returns its rows.
func (h *runner) hotSetOn(ctx context.Context, name string, p *proc) ([]HotResult, error) {
	var rows []HotResult
	for _, size := range h.cfg.HotSizes {
		keys := h.hotKeys(size)
		prefix := fmt.Sprintf("hot:%d:", size)
		value := randomValue(size, h.cfg.Seed)
		d, err := fill(ctx, p.dial, 4, h.pipelineFor(size), prefix, keys, value)
		if err != nil {
			return nil, err
		}
		h.logf("%s: filled %d × %s in %.1fs", name, keys, fmtBytes(int64(size)), d.Seconds())
		for _, op := range []opKind{opGet, opSet} {
			for _, conns := range h.cfg.HotConns {
				r, err := load{
					dial: p.dial, conns: conns, pipeline: h.pipelineFor(size), op: op,
					keys: keys, prefix: prefix, value: value,
					duration: h.cfg.HotDuration, seed: h.cfg.Seed,
				}.run(ctx)
				if err != nil {
					return nil, fmt.Errorf("%s %s conns=%d: %w", op, fmtBytes(int64(size)), conns, err)
				}
				hr := HotResult{
					System: name, Op: op.String(), Size: size, Conns: conns, Keys: keys,
					Requests: r.Requests, Errors: r.Errors, Seconds: r.Elapsed.Seconds(),
					OpsPerSec: float64(r.Requests) / r.Elapsed.Seconds(),
					MBPerSec:  float64(r.Bytes) / r.Elapsed.Seconds() / 1e6,
					Latency:   summarize(r.Hist),
				}
				if op == opGet && r.Requests > 0 {
					hr.HitRatio = float64(r.Hits) / float64(r.Requests)
					if hr.HitRatio < 0.999 {
						h.note("hot set: %s GET %s conns=%d hit only %.1f%% (the hot set did not stay in memory)", name, fmtBytes(int64(size)), conns, 100*hr.HitRatio)
					}
				}
				if r.Errors > 0 {
					h.note("hot set: %s %s %s conns=%d: %d error replies, first: %v", name, op, fmtBytes(int64(size)), conns, r.Errors, r.FirstErr)
				}
				rows = append(rows, hr)
				h.logf("%s %s %s c=%d: %.0f ops/s %.1f MB/s p50 %.0fµs p99 %.0fµs", name, op, fmtBytes(int64(size)), conns, hr.OpsPerSec, hr.MBPerSec, hr.P50, hr.P99)
			}
		}
	}
	return rows, nil
}

// fmtBytes prints n in binary units the way the flags take them.
func fmtBytes(n int64) string {
	switch {
	case n >= GiB && n%GiB == 0:
		return fmt.Sprintf("%dGiB", n/GiB)
	case n >= GiB:
		return fmt.Sprintf("%.1fGiB", float64(n)/GiB)
	case n >= MiB && n%MiB == 0:
		return fmt.Sprintf("%dMiB", n/MiB)
	case n >= MiB:
		return fmt.Sprintf("%.1fMiB", float64(n)/MiB)
	case n >= KiB && n%KiB == 0:
		return fmt.Sprintf("%dKiB", n/KiB)
	case n >= KiB:
		return fmt.Sprintf("%.1fKiB", float64(n)/KiB)
	}
	return fmt.Sprintf("%dB", n)
}
