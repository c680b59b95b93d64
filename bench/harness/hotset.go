package harness

import (
	"context"
	"fmt"
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
// system, with every key in memory.
func (h *runner) hotSet(ctx context.Context) error {
	maxSize := 0
	for _, s := range h.cfg.HotSizes {
		maxSize = max(maxSize, s)
	}
	memMB := h.cfg.HotMemMax / MiB
	for _, v := range h.hotVariants() {
		p, err := h.start(ctx, v.kind, v.name,
			tcOpts{memMax: h.cfg.HotMemMax, diskMax: max(4*h.cfg.HotMemMax, 1*GiB), policy: v.policy},
			redisOpts{maxMemory: h.cfg.HotMemMax},
			mcOpts{memMB: memMB, itemMax: itemMaxFor(maxSize)})
		if err != nil {
			return err
		}
		if err := h.hotSetOn(ctx, v.name, p); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		setting := "limit " + fmtBytes(h.cfg.HotMemMax)
		if v.kind == kindTiercache {
			setting = fmt.Sprintf("--mem-max %s, %s", fmtBytes(h.cfg.HotMemMax), v.policy)
		}
		if err := h.stopProc(p, WorkloadHotSet, setting, h.cfg.HotMemMax); err != nil {
			return err
		}
	}
	return nil
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

func (h *runner) hotSetOn(ctx context.Context, name string, p *proc) error {
	for _, size := range h.cfg.HotSizes {
		keys := h.hotKeys(size)
		prefix := fmt.Sprintf("hot:%d:", size)
		value := randomValue(size, h.cfg.Seed)
		d, err := fill(ctx, p.dial, 4, h.pipelineFor(size), prefix, keys, value)
		if err != nil {
			return err
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
					return fmt.Errorf("%s %s conns=%d: %w", op, fmtBytes(int64(size)), conns, err)
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
				h.res.HotSet = append(h.res.HotSet, hr)
				h.logf("%s %s %s c=%d: %.0f ops/s %.1f MB/s p50 %.0fµs p99 %.0fµs", name, op, fmtBytes(int64(size)), conns, hr.OpsPerSec, hr.MBPerSec, hr.P50, hr.P99)
			}
		}
	}
	return nil
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
