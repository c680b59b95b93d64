package harness

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// restart caches RestartBytes, measures steady GET throughput, restarts
// the system and times, from the new process' start, the first hit and
// the first window at 90% of the steady throughput. tiercached restarts
// from its L2 (write-through); Redis from an RDB written by SAVE;
// memcached keeps nothing and is only noted.
func (h *runner) restart(ctx context.Context) error {
	size := h.cfg.RestartValue
	keys := int(h.cfg.RestartBytes / int64(size))
	value := randomValue(size, h.cfg.Seed+3)
	kinds := []string{kindTiercache}
	if h.peers[kindRedis] != "" {
		kinds = append(kinds, kindRedis)
	}
	for _, k := range kinds {
		r, err := h.restartOne(ctx, k, keys, value)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		h.res.Restart = append(h.res.Restart, r)
	}
	if h.peers[kindMemcached] != "" {
		h.res.Restart = append(h.res.Restart, RestartResult{System: kindMemcached, Bytes: h.cfg.RestartBytes, Keys: keys,
			Note: "memcached keeps nothing across a restart: every GET misses until the cache is refilled"})
	}
	return nil
}

func (h *runner) restartOne(ctx context.Context, kind string, keys int, value []byte) (RestartResult, error) {
	r := RestartResult{System: kind, Bytes: h.cfg.RestartBytes, Keys: keys, WindowSeconds: h.cfg.RestartWindow.Seconds()}
	dir := h.tempDir(kind + "-restart")
	tc := tcOpts{memMax: h.cfg.RestartBytes + h.cfg.RestartBytes/4 + 64*MiB, diskMax: max(3*h.cfg.RestartBytes, 64*MiB), policy: "through", dataDir: dir}
	ro := redisOpts{dir: dir}
	setting := "--mem-max " + fmtBytes(tc.memMax) + ", through"
	budget := tc.memMax
	if kind == kindRedis {
		setting, budget = "no limit, RDB", 0
	}
	p, err := h.start(ctx, kind, kind, tc, ro, mcOpts{})
	if err != nil {
		return r, err
	}
	const prefix = "rs:"
	fd, err := fill(ctx, p.dial, 4, h.cfg.Pipeline, prefix, keys, value)
	if err != nil {
		return r, err
	}
	r.FillSeconds = fd.Seconds()
	if kind == kindTiercache {
		if err := waitFlushed(ctx, p); err != nil {
			return r, err
		}
	}
	h.logf("restart: %s holds %d × %s (%s), filled in %.1fs", kind, keys, fmtBytes(int64(len(value))), fmtBytes(h.cfg.RestartBytes), fd.Seconds())
	hot, err := load{dial: p.dial, conns: h.cfg.RestartConns, pipeline: h.cfg.Pipeline, op: opGet,
		keys: keys, prefix: prefix, duration: h.cfg.ColdDuration, seed: h.cfg.Seed}.run(ctx)
	if err != nil {
		return r, err
	}
	r.HotOpsPerSec = float64(hot.Requests) / hot.Elapsed.Seconds()
	if kind == kindRedis {
		c, err := p.resp()
		if err != nil {
			return r, err
		}
		t0 := time.Now()
		_, err = c.do("SAVE")
		c.Close()
		if err != nil {
			return r, fmt.Errorf("SAVE: %w", err)
		}
		r.SaveSeconds = time.Since(t0).Seconds()
	}
	t0 := time.Now()
	if err := h.stopProc(p, WorkloadRestart, setting+", before restart", budget); err != nil {
		return r, err
	}
	r.StopSeconds = time.Since(t0).Seconds()

	// Restart and poll for the first hit as fast as the socket allows.
	tc.noWait, ro.noWait = true, true
	p, err = h.start(ctx, kind, kind, tc, ro, mcOpts{})
	if err != nil {
		return r, err
	}
	firstHit, err := pollFirstHit(ctx, p, prefix+strconv.Itoa(keys/2), h.cfg.RestartTimeout)
	if err != nil {
		return r, err
	}
	r.FirstHitSeconds = firstHit.Seconds()
	target := 0.9 * r.HotOpsPerSec
	win := h.cfg.RestartWindow
	_, err = load{dial: p.dial, conns: h.cfg.RestartConns, pipeline: h.cfg.Pipeline, op: opGet,
		keys: keys, prefix: prefix, duration: h.cfg.RestartTimeout, seed: h.cfg.Seed + 7,
		window: win, onWindow: func(at time.Duration, n int64) bool {
			ops := float64(n) / win.Seconds()
			r.Windows = append(r.Windows, ops)
			if ops >= target {
				r.Reached90 = true
				r.To90Seconds = firstHit.Seconds() + at.Seconds()
				return false
			}
			return true
		}}.run(ctx)
	if err != nil {
		return r, err
	}
	if !r.Reached90 {
		r.Note = fmt.Sprintf("did not reach 90%% of %.0f GET/s within %v", r.HotOpsPerSec, h.cfg.RestartTimeout)
	}
	if kind == kindTiercache {
		// How far the warm-up of L1 from L2 had got by then.
		if m, err := info(p, "tiers"); err == nil && m["l1_warmup_done"] != "" {
			r.WarmupBytes, _ = strconv.ParseInt(m["l1_warmup_bytes"], 10, 64)
			r.WarmupDone = m["l1_warmup_done"] == "1"
			state := "still running"
			if r.WarmupDone {
				state = "done"
			}
			note := fmt.Sprintf("L1 warm-up had copied %s (%s)", fmtBytes(r.WarmupBytes), state)
			if m, err := info(p, "memory"); err == nil {
				r.HugePageBytes, _ = strconv.ParseInt(m["used_memory_huge_pages"], 10, 64)
				note += fmt.Sprintf("; %s in huge pages (huge_pages:%s)", fmtBytes(r.HugePageBytes), m["huge_pages"])
			}
			if r.Note != "" {
				note = r.Note + "; " + note
			}
			r.Note = note
		}
	}
	h.logf("restart: %s first hit %.3fs, 90%% at %.3fs (hot %.0f GET/s, save %.1fs, stop %.1fs) %s", kind, r.FirstHitSeconds, r.To90Seconds, r.HotOpsPerSec, r.SaveSeconds, r.StopSeconds, r.Note)
	return r, h.stopProc(p, WorkloadRestart, setting+", after restart", budget)
}

// pollFirstHit dials and GETs key until it hits, and returns the time
// from the process' start. Refused connections and -LOADING replies are
// retried every millisecond.
func pollFirstHit(ctx context.Context, p *proc, key string, timeout time.Duration) (time.Duration, error) {
	deadline := p.start.Add(timeout)
	var c *respConn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return 0, fmt.Errorf("%s exited during start-up (%v): %s", p.name, p.err, p.log)
		case <-ctx.Done():
			return 0, ctx.Err()
		default:
		}
		if c == nil {
			if c, last = p.resp(); last != nil {
				c = nil
				time.Sleep(time.Millisecond)
				continue
			}
		}
		c.sendGet([]byte(key))
		if last = c.flush(); last == nil {
			var hit bool
			hit, _, last = c.recvGet()
			if hit {
				return time.Since(p.start), nil
			}
		}
		if last != nil && !isServerError(last) {
			c.Close()
			c = nil
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("%s: no hit within %v of start (last: %v)", p.name, timeout, last)
}
