package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/internal/zipf"
)

// budgetStream is the PCG stream the budget trace is drawn from.
const budgetStream = 0x21bf

// BudgetTrace is the budget workload's replayed prompt sequence, the same
// for every system: c.BudgetWarmup + c.BudgetRequests Zipf(c.BudgetZipfS)
// ranks over c.BudgetKeys prompts, from c.Seed. bench/policysim simulates
// eviction policies on it.
func BudgetTrace(c Config) []int32 {
	return zipf.New(c.BudgetKeys, c.BudgetZipfS).Trace(c.BudgetWarmup+c.BudgetRequests, c.Seed, budgetStream)
}

// trace is the replayed prompt sequence: the same for every system.
func (h *runner) trace() []int32 { return BudgetTrace(h.cfg) }

// budget replays the trace cache-aside on every system at each memory
// budget.
func (h *runner) budget(ctx context.Context) error {
	tr := h.trace()
	value := randomValue(h.cfg.BudgetValue, h.cfg.Seed+1)
	all := append([]string{kindTiercache}, h.peerKinds()...)
	budgets := append(append([]int64(nil), h.cfg.BudgetMem...), h.cfg.BudgetPeerMem...)
	for bi, mem := range budgets {
		disk := int64(h.cfg.BudgetDiskFactor * float64(mem))
		kinds := all
		if bi >= len(h.cfg.BudgetMem) {
			kinds = h.peerKinds() // peers only: for the equal-RSS comparison
		} else {
			h.res.BudgetModel = append(h.res.BudgetModel, h.lruModel(tr, mem, disk))
		}
		for _, k := range kinds {
			p, err := h.start(ctx, k, k,
				tcOpts{memMax: mem, diskMax: disk, policy: h.cfg.BudgetPolicy},
				redisOpts{maxMemory: mem},
				mcOpts{memMB: max(mem/MiB, 1), itemMax: itemMaxFor(h.cfg.BudgetValue)})
			if err != nil {
				return err
			}
			io0, _ := storageWrites(p.pid())
			r, err := h.replay(ctx, p, tr, value)
			if err != nil {
				return fmt.Errorf("%s at %s: %w", k, fmtBytes(mem), err)
			}
			if io1, ok := storageWrites(p.pid()); ok && k == kindTiercache {
				r.DiskWriteBytesPer1k = float64(io1-io0) / float64(len(tr)) * 1000
			}
			r.Budget = mem
			setting := "limit " + fmtBytes(mem)
			if k == kindTiercache {
				r.DiskMax = disk
				setting = fmt.Sprintf("--mem-max %s --disk-max %s, %s", fmtBytes(mem), fmtBytes(disk), h.cfg.BudgetPolicy)
			}
			if k == kindTiercache {
				if m, err := info(p, "tiers"); err == nil {
					h.logf("tiercached tiers: l1_hits=%s l2_hits=%s l1_bytes=%s l2_bytes=%s l2_keys=%s demotions=%s l2_write_bytes=%s l1_admitted=%s l1_rejected=%s l2_rejected=%s",
						m["l1_hits"], m["l2_hits"], m["l1_bytes"], m["l2_bytes"], m["l2_keys"], m["demotions"], m["l2_write_bytes"], m["l1_admitted"], m["l1_rejected"], m["l2_rejected"])
					keys, _ := strconv.ParseInt(m["l2_keys"], 10, 64)
					r.L2LiveShare = float64(keys*int64(h.cfg.BudgetValue)) / float64(disk)
					if wb, err := strconv.ParseInt(m["l2_write_bytes"], 10, 64); err == nil {
						r.L2WriteBytesPer1k = float64(wb) / float64(len(tr)) * 1000
					}
				}
				h.logf("tiercached budget %s: L2 holds %.3f of --disk-max in values; %.1f MB written to storage per 1,000 requests (/proc/PID/io), %.1f MB by L2's own count",
					fmtBytes(mem), r.L2LiveShare, r.DiskWriteBytesPer1k/1e6, r.L2WriteBytesPer1k/1e6)
			}
			h.res.Budget = append(h.res.Budget, r)
			h.logf("%s budget %s: hit %.3f, GET p99 %.0fµs, %.1f encoder-s saved/1k, %d set errors, %.1fs",
				k, fmtBytes(mem), r.HitRatio, r.Get.P99, r.EncoderSecondsSavedPer1k, r.SetErrors, r.Seconds)
			if err := h.stopProc(p, WorkloadBudget, setting, mem); err != nil {
				return err
			}
		}
	}
	return nil
}

// storageWrites returns the bytes process pid caused to be written to
// storage (write_bytes of /proc/PID/io), whatever the build: what L2
// costs the device.
func storageWrites(pid int) (int64, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "io"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// lruModel simulates exact LRU caches on the trace.
func (h *runner) lruModel(tr []int32, mem, disk int64) BudgetModel {
	v := int64(h.cfg.BudgetValue)
	m := BudgetModel{Budget: mem, MemItems: int(mem / v), MemDiskItems: int((mem + disk) / v)}
	m.LRUMem, _ = lruHits(tr, h.cfg.BudgetWarmup, m.MemItems)
	m.LRUMemDisk, m.Compulsory = lruHits(tr, h.cfg.BudgetWarmup, m.MemDiskItems)
	return m
}

// lruHits is the hit ratio of an exact LRU cache of capacity items over
// tr[warm:] (tr[:warm] only warms it), and the share of first-seen keys.
func lruHits(tr []int32, warm, capacity int) (hit, compulsory float64) {
	type node struct{ prev, next int32 } // doubly linked list over keys, by key
	pos := map[int32]*node{}
	seen := map[int32]bool{}
	var head, tail int32 = -1, -1 // most, least recently used
	unlink := func(k int32, n *node) {
		if n.prev >= 0 {
			pos[n.prev].next = n.next
		} else {
			head = n.next
		}
		if n.next >= 0 {
			pos[n.next].prev = n.prev
		} else {
			tail = n.prev
		}
	}
	pushFront := func(k int32, n *node) {
		n.prev, n.next = -1, head
		if head >= 0 {
			pos[head].prev = k
		}
		head = k
		if tail < 0 {
			tail = k
		}
	}
	var hits, first, n int
	for i, k := range tr {
		measured := i >= warm
		if measured {
			n++
			if !seen[k] {
				first++
			}
		}
		seen[k] = true
		if nd, ok := pos[k]; ok {
			if measured {
				hits++
			}
			unlink(k, nd)
			pushFront(k, nd)
			continue
		}
		if capacity == 0 {
			continue
		}
		nd := &node{}
		pos[k] = nd
		pushFront(k, nd)
		if len(pos) > capacity {
			old := tail
			unlink(old, pos[old])
			delete(pos, old)
		}
	}
	if n == 0 {
		return 0, 0
	}
	return float64(hits) / float64(n), float64(first) / float64(n)
}

// replay runs the trace with BudgetConns workers: each takes the next
// prompt, GETs its embedding and on a miss accounts the encoder's delay
// (without sleeping) and SETs the embedding. Only requests after the
// warm-up are counted.
func (h *runner) replay(ctx context.Context, p *proc, tr []int32, value []byte) (BudgetResult, error) {
	var (
		next    atomic.Int64
		mu      sync.Mutex // guards the totals below
		getH    = newHist()
		setH    = newHist()
		reqs    int64
		hits    int64
		setErrs int64
		wg      sync.WaitGroup
		errs    = make(chan error, h.cfg.BudgetConns)
	)
	warm := int64(h.cfg.BudgetWarmup)
	start := time.Now()
	for range h.cfg.BudgetConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.dial()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			gh, sh := newHist(), newHist()
			var nreq, nhit, nse int64
			key := make([]byte, 0, 32)
			defer func() {
				mu.Lock()
				getH.Merge(gh)
				setH.Merge(sh)
				reqs += nreq
				hits += nhit
				setErrs += nse
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(tr)) {
					return
				}
				measured := i >= warm
				key = strconv.AppendInt(append(key[:0], "{clip@v1}p"...), int64(tr[i]), 10)
				t0 := time.Now()
				c.sendGet(key)
				if err := c.flush(); err != nil {
					errs <- err
					return
				}
				hit, _, err := c.recvGet()
				if err != nil {
					errs <- fmt.Errorf("GET: %w", err)
					return
				}
				if measured {
					record(gh, time.Since(t0))
					nreq++
					if hit {
						nhit++
					}
				}
				if hit {
					continue
				}
				// Miss: the encoder would run here for EncoderDelay; the
				// delay is accounted from the hit ratio, not slept.
				t1 := time.Now()
				c.sendSet(key, value)
				if err := c.flush(); err != nil {
					errs <- err
					return
				}
				if err := c.recvSet(); err != nil {
					if !isServerError(err) {
						errs <- fmt.Errorf("SET: %w", err)
						return
					}
					nse++ // e.g. memcached out of memory: the pipeline goes on
				}
				if measured {
					record(sh, time.Since(t1))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return BudgetResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return BudgetResult{}, err
	}
	r := BudgetResult{System: p.name, Requests: reqs, Hits: hits, SetErrors: setErrs,
		Get: summarize(getH), Set: summarize(setH), Seconds: time.Since(start).Seconds()}
	if reqs > 0 {
		r.HitRatio = float64(hits) / float64(reqs)
	}
	delay := h.cfg.EncoderDelay.Seconds()
	r.EncoderSecondsSavedPer1k = 1000 * r.HitRatio * delay
	r.EncoderSecondsSpentPer1k = 1000 * (1 - r.HitRatio) * delay
	return r, nil
}
