package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Write saves results.json, results.md and the PNG plots into dir,
// creating it.
func Write(dir string, r *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	plots, perr := writePlots(dir, r)
	md := Markdown(r, plots)
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return perr
}

// Markdown renders r; plots are the PNG file names to link.
func Markdown(r *Results, plots []string) string {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	hasPlot := func(n string) bool {
		for _, x := range plots {
			if x == n {
				return true
			}
		}
		return false
	}
	p("# tiercache benchmark results (%s mode)\n\n", r.Mode)
	p("Command: `%s`  \n", r.CommandLine)
	p("Started %s, took %.0f s (%.1f min).\n\n", r.Started.Format("2006-01-02 15:04 MST"), r.Seconds, r.Seconds/60)
	p("Every system is driven by the same Go load generator over a Unix socket; ")
	p("conclusions rest on the ratios (tiercached ÷ peer), measured minutes apart on the same shared, noisy machine — absolute numbers vary between runs.\n\n")

	p("## Machine\n\n| | |\n|---|---|\n")
	m := r.Machine
	p("| CPUs | %d × %s |\n| RAM | %s |\n| kernel | %s |\n| Go (harness) | %s |\n", m.CPUs, m.CPUModel, fmtBytes(m.MemTotal), m.Kernel, m.GoVersion)
	for _, s := range r.Systems {
		v := s.Version
		if !s.Available {
			v = "**skipped**: " + s.Note
		}
		p("| %s | %s |\n", s.Name, oneLine(v))
	}
	p("\n")
	if len(r.Notes) > 0 {
		p("## Notes from this run\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	if len(r.Targets) > 0 {
		p("## Targets\n\n| target | met | this run |\n|---|---|---|\n")
		for _, t := range r.Targets {
			met := "no"
			switch {
			case !t.Known:
				met = "n/a"
			case t.Met:
				met = "**yes**"
			}
			p("| %s | %s | %s |\n", t.Name, met, t.Detail)
		}
		p("\n")
	}
	writeHot(&b, r, hasPlot)
	writeBudget(&b, r, hasPlot)
	writeCold(&b, r)
	writeRestart(&b, r, hasPlot)
	writeProp(&b, r, hasPlot)
	writeMemory(&b, r)
	writeFleet(&b, r, hasPlot)
	writeMethod(&b, r)
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func ms(us float64) string { return fmt.Sprintf("%.2f", us/1e3) }

func ratioCell(a, b float64) string {
	if b == 0 || a == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func writeHot(b *bytes.Buffer, r *Results, hasPlot func(string) bool) {
	if len(r.HotSet) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	c := r.Config
	p("## 1. Hot set\n\n")
	p("Every key in memory (up to %s per value size, at most 10,000 keys; tiercached `--mem-max %s`, Redis `maxmemory` and memcached `-m` the same), ", fmtBytes(c.HotBytes), fmtBytes(c.HotMemMax))
	p("uniform random keys, %.1f s per cell, %d requests in flight per connection (1 for values over 1 MiB). ", c.HotDurationSec, c.Pipeline)
	if c.HotRounds > 1 {
		p("%d rounds, the systems alternating within each (one running at a time); each cell is its median round by throughput. ", c.HotRounds)
	}
	p("`tiercached` is write-back (memory only, like Redis without persistence); `tiercached-wt` is write-through (every SET fsync'ed to L2 within 200 ms). ")
	p("Ratio columns: this row ÷ Redis and ÷ memcached in the same cell (throughput: > 1 is better; p99: < 1 is better).\n\n")
	for _, plot := range []string{"hotset_get.png", "hotset_set.png"} {
		if hasPlot(plot) {
			p("![%s](%s)\n", plot, plot)
		}
	}
	writeHotMatrix(b, r)
	p("\n| op | size | conns | system | req/s | MB/s | p50 ms | p99 ms | p99.9 ms | req/s ÷ Redis | p99 ÷ Redis | req/s ÷ memcached | p99 ÷ memcached |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.HotSet {
		rr, mr := "—", "—"
		rp, mp := "—", "—"
		if x.System != kindRedis {
			if rd := r.hotRow(kindRedis, x.Op, x.Size, x.Conns); rd != nil {
				rr, rp = ratioCell(x.OpsPerSec, rd.OpsPerSec), ratioCell(x.P99, rd.P99)
			}
		}
		if x.System != kindMemcached {
			if md := r.hotRow(kindMemcached, x.Op, x.Size, x.Conns); md != nil {
				mr, mp = ratioCell(x.OpsPerSec, md.OpsPerSec), ratioCell(x.P99, md.P99)
			}
		}
		name := x.System
		if strings.HasPrefix(name, kindTiercache) {
			name = "**" + name + "**"
		}
		p("| %s | %s | %d | %s | %.0f | %.1f | %s | %s | %s | %s | %s | %s | %s |\n", x.Op, fmtBytes(int64(x.Size)), x.Conns, name,
			x.OpsPerSec, x.MBPerSec, ms(x.P50), ms(x.P99), ms(x.P999), rr, rp, mr, mp)
	}
	p("\n")
}

// writeHotMatrix prints, per tiercached variant and peer, the throughput
// and p99 ratios of every cell on one screen.
func writeHotMatrix(b *bytes.Buffer, r *Results) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var conns []int
	seen := map[int]bool{}
	for _, x := range r.HotSet {
		if !seen[x.Conns] {
			seen[x.Conns] = true
			conns = append(conns, x.Conns)
		}
	}
	for _, tc := range systemsIn(r.HotSet, func(x HotResult) string { return x.System }) {
		if !strings.HasPrefix(tc, kindTiercache) {
			continue
		}
		for _, peer := range []string{kindRedis, kindMemcached} {
			if r.hotRow(peer, r.HotSet[0].Op, r.HotSet[0].Size, r.HotSet[0].Conns) == nil {
				continue
			}
			p("\n**%s ÷ %s**: throughput ratio (p99 ratio) per connection count\n\n| op | size |", tc, peer)
			for _, c := range conns {
				p(" %d conns |", c)
			}
			p("\n|---|---|%s\n", strings.Repeat("---|", len(conns)))
			for _, x := range r.HotSet {
				if x.System != tc || x.Conns != conns[0] {
					continue
				}
				p("| %s | %s |", x.Op, fmtBytes(int64(x.Size)))
				for _, c := range conns {
					a, o := r.hotRow(tc, x.Op, x.Size, c), r.hotRow(peer, x.Op, x.Size, c)
					if a == nil || o == nil {
						p(" — |")
						continue
					}
					p(" %s (%s) |", ratioCell(a.OpsPerSec, o.OpsPerSec), ratioCell(a.P99, o.P99))
				}
				p("\n")
			}
		}
	}
	p("\nAll figures:\n")
}

func writeBudget(b *bytes.Buffer, r *Results, hasPlot func(string) bool) {
	if len(r.Budget) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	c := r.Config
	p("## 2. Budget: cache-aside replay\n\n")
	p("%d pipeline workers replay one trace of Zipf(s=%.2g) prompts over %d distinct keys, %s embeddings: GET, and on a miss the encoder runs (%.0f ms, accounted, not slept) and the embedding is SET. ",
		c.BudgetConns, c.BudgetZipfS, c.BudgetKeys, fmtBytes(int64(c.BudgetValue)), c.EncoderDelayMs)
	p("The first %d requests warm the caches and are not counted; the next %d are. ", c.BudgetWarmup, c.BudgetRequests)
	p("Every system gets the same memory: Redis `maxmemory` + `allkeys-lru`, memcached `-m`, tiercached `--mem-max` plus its disk tier `--disk-max` = %.0f× the budget (the daemon's defaults are 1 GiB and 10 GiB), write policy `%s`. ", c.BudgetDiskFactor, c.BudgetPolicy)
	if len(c.BudgetPeerMem) > 0 {
		p("The peers also run at %s (no tiercached row) so that the systems can be compared at equal resident memory too. ", joinBytes(c.BudgetPeerMem))
	}
	p("Encoder-seconds saved per 1,000 requests = hits × %.0f ms; with no cache, 1,000 requests cost %.0f encoder-seconds.\n\n", c.EncoderDelayMs, c.EncoderDelayMs)
	if hasPlot("budget_hit_ratio.png") {
		p("![hit ratio vs budget](budget_hit_ratio.png)\n\n")
	}
	if len(r.BudgetModel) > 0 {
		p("For reference, an exact LRU cache replaying the same trace (no overheads; what the popularity curve allows at all — first-time prompts, the compulsory misses, bound every system):\n\n")
		p("| budget | items in memory | exact LRU hit ratio | items in memory + disk | exact LRU hit ratio | gain | compulsory misses |\n|---|---|---|---|---|---|---|\n")
		for _, m := range r.BudgetModel {
			p("| %s | %d | %.3f | %d | %.3f | %.2f× | %.3f |\n", fmtBytes(m.Budget), m.MemItems, m.LRUMem, m.MemDiskItems, m.LRUMemDisk, ratioOf(m.LRUMemDisk, m.LRUMem), m.Compulsory)
		}
		p("\nMeasured:\n\n")
	}
	p("| budget | system | hit ratio | ÷ Redis | ÷ memcached | p50 GET ms | p99 GET ms | p99 GET ÷ Redis | encoder-s saved / 1k req | SET errors | replay s |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.Budget {
		rr, mr, rp := "—", "—", "—"
		if x.System != kindRedis {
			if rd := r.budgetRow(kindRedis, x.Budget); rd != nil {
				rr, rp = ratioCell(x.HitRatio, rd.HitRatio), ratioCell(x.Get.P99, rd.Get.P99)
			}
		}
		if x.System != kindMemcached {
			if md := r.budgetRow(kindMemcached, x.Budget); md != nil {
				mr = ratioCell(x.HitRatio, md.HitRatio)
			}
		}
		name := x.System
		if x.DiskMax > 0 {
			name = fmt.Sprintf("**%s** (+%s disk)", x.System, fmtBytes(x.DiskMax))
		}
		p("| %s | %s | %.3f | %s | %s | %s | %s | %s | %.1f | %d | %.1f |\n", fmtBytes(x.Budget), name, x.HitRatio, rr, mr,
			ms(x.Get.P50), ms(x.Get.P99), rp, x.EncoderSecondsSavedPer1k, x.SetErrors, x.Seconds)
	}
	p("\n")
	writeRSSMatched(b, r)
}

// writeRSSMatched compares at equal resident memory rather than equal
// configured budget: tiercached's process holds more than --mem-max
// (indices, Pebble's caches and memtables, Go heap slack), so each of its
// rows is set against the peers' row with the nearest peak RSS.
func writeRSSMatched(b *bytes.Buffer, r *Results) {
	rss := map[string]int64{}
	key := func(sys string, budget int64) string { return fmt.Sprintf("%s/%d", sys, budget) }
	for _, m := range r.Memory {
		if m.Workload == WorkloadBudget {
			rss[key(m.System, m.Budget)] = m.PeakRSS
		}
	}
	var lines []string
	for _, x := range r.Budget {
		if x.System != kindTiercache {
			continue
		}
		mine := rss[key(x.System, x.Budget)]
		if mine == 0 {
			continue
		}
		for _, peer := range []string{kindRedis, kindMemcached} {
			var best *BudgetResult
			var bestRSS int64
			for i := range r.Budget {
				y := &r.Budget[i]
				if y.System != peer {
					continue
				}
				yr := rss[key(peer, y.Budget)]
				if yr < mine*9/10 {
					continue // the peer had clearly less memory
				}
				if best == nil || abs64(yr-mine) < abs64(bestRSS-mine) {
					best, bestRSS = y, yr
				}
			}
			if best != nil {
				lines = append(lines, fmt.Sprintf("- tiercached at %s (peak RSS %s): hit ratio %.3f; %s at %s (peak RSS %s): %.3f — **%s×**",
					fmtBytes(x.Budget), fmtBytes(mine), x.HitRatio, peer, fmtBytes(best.Budget), fmtBytes(bestRSS), best.HitRatio, ratioCell(x.HitRatio, best.HitRatio)))
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(b, "At equal *resident* memory instead of equal configured budget (tiercached's process holds more than `--mem-max`; see §6), each tiercached row against the peer row with the nearest peak RSS that is at least 90%% of tiercached's (rows without one are left out):\n\n%s\n\n", strings.Join(lines, "\n"))
}

func joinBytes(ns []int64) string {
	var s []string
	for _, n := range ns {
		s = append(s, fmtBytes(n))
	}
	return strings.Join(s, ", ")
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func writeCold(b *bytes.Buffer, r *Results) {
	if len(r.Cold) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## 3. Cold tier\n\n")
	p("Working set %d× `--mem-max`, written through to L2, then read uniformly at random (most reads miss L1 and are served from L2 and promoted). ", r.Config.ColdFactor)
	p("The hot figure is the same daemon reading keys that fit in half of L1, same connections and pipeline. ")
	p("L2 is Pebble on the local disk; the kernel's page cache (24 GiB RAM here) holds much of it, as it would on a production host with free memory.\n\n")
	p("| --mem-max | working set | size | conns | L2-served share | GET/s | p50 ms | p99 ms | hot L2-served share | hot GET/s | hot p99 ms | GET/s ÷ hot | p99 ÷ hot |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.Cold {
		p("| %s | %s | %s | %d | %.0f%% | %.0f | %s | %s | %.0f%% | %.0f | %s | %s | %s |\n", fmtBytes(x.MemMax), fmtBytes(x.WorkingSet), fmtBytes(int64(x.Size)), x.Conns,
			100*x.L2Share, x.OpsPerSec, ms(x.Latency.P50), ms(x.Latency.P99), 100*x.HotL2Share, x.HotOpsPerSec, ms(x.HotLatency.P99),
			ratioCell(x.OpsPerSec, x.HotOpsPerSec), ratioCell(x.Latency.P99, x.HotLatency.P99))
		if hr := r.hotRow(kindTiercache, "GET", x.Size, x.Conns); hr != nil {
			p("\nFor reference, the hot-set table's tiercached GET %s at %d connections: %.0f GET/s, p99 %s ms (cold ÷ that: %s).\n",
				fmtBytes(int64(x.Size)), x.Conns, hr.OpsPerSec, ms(hr.P99), ratioCell(x.OpsPerSec, hr.OpsPerSec))
		}
	}
	p("\n")
}

func writeRestart(b *bytes.Buffer, r *Results, hasPlot func(string) bool) {
	if len(r.Restart) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## 4. Restart\n\n")
	p("Each system caches the same data (%s of %s values), serves uniform random GETs to set its steady (hot) throughput, and is restarted: ", fmtBytes(r.Config.RestartBytes), fmtBytes(int64(r.Config.BudgetValue)))
	p("tiercached (write-through) with SIGTERM and the same `--data-dir`, serving from L2 at once while it warms L1 from L2 in the background (its note: how much the warm-up had copied when 90%% was reached); Redis after `SAVE`, loading the RDB. ")
	p("Times run from the new process' start (fork/exec) to the first GET that hits, and to the first %.0f ms window whose throughput reaches 90%% of the steady figure.\n\n", 1e3*firstWindow(r))
	if hasPlot("restart.png") {
		p("![throughput after restart](restart.png)\n\n")
	}
	p("| system | cached | fill s | SAVE s | stop s | first hit s | 90%% of hot s | steady GET/s | first hit ÷ Redis | 90%% ÷ Redis | note |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	rd := r.restartRow(kindRedis)
	for _, x := range r.Restart {
		if x.Note != "" && x.FirstHitSeconds == 0 {
			p("| %s | %s | | | | | | | | | %s |\n", x.System, fmtBytes(x.Bytes), x.Note)
			continue
		}
		fr, nr := "—", "—"
		if rd != nil && x.System != kindRedis {
			fr = ratioCell(x.FirstHitSeconds, rd.FirstHitSeconds)
			nr = ratioCell(x.To90Seconds, rd.To90Seconds)
		}
		to90 := fmt.Sprintf("%.3f", x.To90Seconds)
		if !x.Reached90 {
			to90 = "not reached"
		}
		p("| %s | %s | %.1f | %s | %.2f | %.3f | %s | %.0f | %s | %s | %s |\n", x.System, fmtBytes(x.Bytes), x.FillSeconds, secs(x.SaveSeconds), x.StopSeconds,
			x.FirstHitSeconds, to90, x.HotOpsPerSec, fr, nr, x.Note)
	}
	p("\n")
}

func firstWindow(r *Results) float64 {
	for _, x := range r.Restart {
		if x.WindowSeconds > 0 {
			return x.WindowSeconds
		}
	}
	return 0.1
}

func secs(s float64) string {
	if s == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", s)
}

func writeProp(b *bytes.Buffer, r *Results, hasPlot func(string) bool) {
	if len(r.Propagation) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## 5. Propagation\n\n")
	if r.Config.PropNATS == "standalone" {
		p("%d daemons on a standalone `nats-server -js` (its own process, random loopback port), each joined with `--nats URL`. ", r.Config.PropDaemons)
	} else {
		p("%d daemons: A runs the embedded NATS server (`--nats embedded --nats-listen 127.0.0.1:0`), the others join it with `--nats URL` (A's `nats_url` from `INFO cluster`). ", r.Config.PropDaemons)
	}
	p("Before each rollout every daemon holds the model's keys at the current version v(N−1) plus `{clip@v(N−1)}probe`; once every process of the cluster is idle again (each under 5%% of a CPU over 20 ms, read from `/proc/PID/task/*/schedstat`), `MODEL.ROLLOUT clip vN` is sent to A. ")
	p("**Stale-free** is measured the way a client sees it: from the moment ROLLOUT returns on A, each daemon is polled (back-to-back, one connection each) with `GET {clip@v(N−1)}probe` until it answers nil — a client can no longer be served the old model's output there. ")
	p("(`MODEL.GET clip` = vN would measure when the registry changed, not what GET returns.) ")
	p("\"Each daemon\" counts every (rollout, daemon) pair; \"all daemons\" is, per rollout, the slowest of the %d.\n\n", r.Config.PropDaemons)
	if hasPlot("propagation.png") {
		p("![propagation](propagation.png)\n\n")
	}
	p("| keys/model | rollouts | each daemon p50 / p99 / max ms | all daemons p50 / p99 / max ms | MODEL.ROLLOUT on A p50 / p99 ms | timeouts | fill s/rollout | settle s/rollout (not idle) |\n|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.Propagation {
		p("| %d | %d | %s / %s / %s | %s / %s / %s | %s / %s | %d | %.2f | %.2f (%d) |\n", x.Keys, x.Rollouts,
			ms(x.EachDaemon.P50), ms(x.EachDaemon.P99), ms(x.EachDaemon.Max),
			ms(x.AllDaemons.P50), ms(x.AllDaemons.P99), ms(x.AllDaemons.Max),
			ms(x.Rollout.P50), ms(x.Rollout.P99), x.Timeouts, x.FillSecs, x.SettleSecs, x.NotIdle)
	}
	if len(r.Propagation) > 1 {
		a, z := r.Propagation[0], r.Propagation[len(r.Propagation)-1]
		p("\nFlatness: all-daemons p50 at %d keys ÷ at %d keys = %s; p99 %s.\n", z.Keys, a.Keys, ratioCell(z.AllDaemons.P50, a.AllDaemons.P50), ratioCell(z.AllDaemons.P99, a.AllDaemons.P99))
	}
	p("\nPer daemon (p50 / p99 ms):")
	for _, x := range r.Propagation {
		p(" %d keys:", x.Keys)
		for i, l := range x.PerDaemon {
			p(" %c %s/%s", 'A'+i, ms(l.P50), ms(l.P99))
		}
		p(".")
	}
	p("\n\n")
}

func writeMemory(b *bytes.Buffer, r *Results) {
	if len(r.Memory) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## 6. Memory\n\n")
	p("Peak RSS (`VmHWM` from `/proc/PID/status`, read just before each process was stopped) next to the memory the system was configured with.\n\n")
	p("| workload | system | setting | budget | peak RSS | RSS ÷ budget |\n|---|---|---|---|---|---|\n")
	for _, x := range r.Memory {
		bud, ratio := "none", "—"
		if x.Budget > 0 {
			bud, ratio = fmtBytes(x.Budget), ratioCell(float64(x.PeakRSS), float64(x.Budget))
		}
		p("| %s | %s | %s | %s | %s | %s |\n", x.Workload, x.System, x.Setting, bud, fmtBytes(x.PeakRSS), ratio)
	}
	p("\n")
}

func writeMethod(b *bytes.Buffer, r *Results) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Method\n\n")
	p("- Load generator (`bench/harness`): one goroutine per connection, RESP (tiercached, Redis) or memcached text protocol written and parsed by hand with reused buffers, so the client costs every system the same. ")
	p("A connection writes a batch of requests, then reads their replies; a request's latency runs from the batch's write to its own reply (as redis-benchmark `-P`). Latencies are recorded in HDR histograms (1 µs – 2 min, 3 significant digits).\n")
	p("- The client runs on the same 2 cores as the server: a server that needs less CPU per request leaves more to the client, which is part of what the ratios show.\n")
	p("- Values are random bytes (incompressible, like embeddings).\n")
	p("- Results are reproducible with the command line above (seed %d); expect ±10–20%% between runs on this shared machine.\n", r.Config.Seed)
}
