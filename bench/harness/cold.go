package harness

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// cold measures GETs served from L2: a working set ColdFactor × --mem-max
// is written through to disk, then read uniformly at random, so most
// reads miss L1. The hot reference is the same daemon reading a subset
// that fits in L1 (half of --mem-max), with the same connections.
func (h *runner) cold(ctx context.Context) error {
	mem := h.cfg.ColdMemMax
	size := h.cfg.BudgetValue
	ws := int64(h.cfg.ColdFactor) * mem
	keys := int(ws / int64(size))
	disk := max(3*ws, 64*MiB)
	p, err := h.start(ctx, kindTiercache, kindTiercache, tcOpts{memMax: mem, diskMax: disk, policy: "through"}, redisOpts{}, mcOpts{})
	if err != nil {
		return err
	}
	value := randomValue(size, h.cfg.Seed+2)
	const prefix = "cold:"
	fd, err := fill(ctx, p.dial, 4, h.cfg.Pipeline, prefix, keys, value)
	if err != nil {
		return err
	}
	if err := waitFlushed(ctx, p); err != nil {
		return err
	}
	h.logf("cold: wrote %d × %s (%s, %d× --mem-max %s) in %.1fs", keys, fmtBytes(int64(size)), fmtBytes(ws), h.cfg.ColdFactor, fmtBytes(mem), fd.Seconds())
	before, _ := info(p, "tiers")
	r, err := load{dial: p.dial, conns: h.cfg.ColdConns, pipeline: h.cfg.Pipeline, op: opGet,
		keys: keys, prefix: prefix, duration: h.cfg.ColdDuration, seed: h.cfg.Seed}.run(ctx)
	if err != nil {
		return err
	}
	after, _ := info(p, "tiers")
	res := ColdResult{System: kindTiercache, MemMax: mem, WorkingSet: ws, Size: size, Conns: h.cfg.ColdConns,
		OpsPerSec: float64(r.Requests) / r.Elapsed.Seconds(), Latency: summarize(r.Hist), FillSeconds: fd.Seconds()}
	if r.Requests > 0 {
		res.HitRatio = float64(r.Hits) / float64(r.Requests)
	}
	l1 := counterDelta(before, after, "l1_hits")
	l2 := counterDelta(before, after, "l2_hits")
	if l1+l2 > 0 {
		res.L2Share = float64(l2) / float64(l1+l2)
	}
	// Hot reference: keys that fit in half of L1, promoted by two passes.
	hotKeys := max(int(mem/2/int64(size)), 1)
	for range 2 {
		if err := readAll(ctx, p, prefix, hotKeys); err != nil {
			return err
		}
	}
	before, _ = info(p, "tiers")
	hr, err := load{dial: p.dial, conns: h.cfg.ColdConns, pipeline: h.cfg.Pipeline, op: opGet,
		keys: hotKeys, prefix: prefix, duration: h.cfg.ColdDuration, seed: h.cfg.Seed}.run(ctx)
	if err != nil {
		return err
	}
	after, _ = info(p, "tiers")
	l1, l2 = counterDelta(before, after, "l1_hits"), counterDelta(before, after, "l2_hits")
	if l1+l2 > 0 {
		res.HotL2Share = float64(l2) / float64(l1+l2)
	}
	res.HotOpsPerSec = float64(hr.Requests) / hr.Elapsed.Seconds()
	res.HotLatency = summarize(hr.Hist)
	h.res.Cold = append(h.res.Cold, res)
	h.logf("cold: %.0f GET/s p99 %.0fµs (L2 share %.2f, hit %.3f); hot %.0f GET/s p99 %.0fµs",
		res.OpsPerSec, res.Latency.P99, res.L2Share, res.HitRatio, res.HotOpsPerSec, res.HotLatency.P99)
	return h.stopProc(p, WorkloadCold, fmt.Sprintf("--mem-max %s, working set %s", fmtBytes(mem), fmtBytes(ws)), mem)
}

// counterDelta is after[k] − before[k] for an INFO counter.
func counterDelta(before, after map[string]string, k string) int64 {
	a, _ := strconv.ParseInt(after[k], 10, 64)
	b, _ := strconv.ParseInt(before[k], 10, 64)
	return a - b
}

// waitFlushed polls INFO until tiercached's write queue is empty, so that
// a write-through fill is all in L2.
func waitFlushed(ctx context.Context, p *proc) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		m, err := info(p, "tiers")
		if err != nil {
			return err
		}
		if m["pending_write_bytes"] == "0" || m["pending_write_bytes"] == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: write queue not empty after 2m", p.name)
}

// readAll GETs prefix0 … prefix(keys-1) once, pipelined.
func readAll(ctx context.Context, p *proc, prefix string, keys int) error {
	c, err := p.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	key := make([]byte, 0, 32)
	const batch = 8
	for i := 0; i < keys && ctx.Err() == nil; i += batch {
		n := min(batch, keys-i)
		for j := range n {
			c.sendGet(strconv.AppendInt(append(key[:0], prefix...), int64(i+j), 10))
		}
		if err := c.flush(); err != nil {
			return err
		}
		for range n {
			if _, _, err := c.recvGet(); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}
