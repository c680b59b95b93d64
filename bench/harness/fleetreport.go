package harness

import (
	"bytes"
	"fmt"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writeFleet renders the fleet workload: the hit ratios and their ratios
// per fleet size, the peer-served GET and the member loss.
func writeFleet(b *bytes.Buffer, r *Results, hasPlot func(string) bool) {
	if len(r.Fleet) == 0 && len(r.FleetPeerGet) == 0 && r.FleetLoss == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	c := r.Config
	p("## 7. Fleet (peer fill)\n\n")
	p("The budget workload's trace (Zipf s=%.2g over %d prompts, %s values, %d warm-up + %d measured requests, %d workers) is spread round-robin over the daemons, as a load balancer would, cache-aside: GET, and on a miss the encoder (accounted, not slept) and a SET to the same daemon. ",
		c.BudgetZipfS, c.BudgetKeys, fmtBytes(int64(c.BudgetValue)), c.BudgetWarmup, c.BudgetRequests, c.BudgetConns)
	p("The daemons run on a standalone `nats-server -js` on loopback, each with `--peer-listen 127.0.0.1:0` and a peer password (peer fill) or without `--peer-listen` (peer fill off: private caches of the same size). ")
	p("\"One daemon\" has the fleet's total `--mem-max` and `--disk-max`; the shared Redis is one redis-server over loopback TCP with `maxmemory` = the fleet's total memory, `allkeys-lru`, no persistence. ")
	p("The fleet with peer fill replays the trace twice, on fresh daemons each time: GET then SET, and with `LEASE.GET key %d WAIT %d` instead of GET (a hit is done; a lease granted, a wait that ran out or a refusal runs the encoder and SETs, which completes the lease at the key's owner and wakes its waiters on every daemon). ",
		fleetLeaseTTL.Milliseconds(), fleetLeaseWait.Milliseconds())
	p("Each worker takes the next request of the trace and sends it to its daemon, so %d requests are in flight over the daemons at once. ", c.BudgetConns)
	p("Encoder runs per prompt = SETs ÷ distinct prompts that missed at least once, over the whole replay. The runs beyond each prompt's first are split: *overlapping* began while another run of the same prompt was in flight on any daemon (from its miss or lease to its SET's reply): duplicate computation; *later* are the others: the value had been evicted, or was not (yet) where the request looked (a SET forwarded to the owner arrives after its reply). ")
	p("Since the encoder is accounted, not slept, a run lasts one SET round trip and overlaps are rare: the replay's runs per prompt are mostly recomputation after eviction, which one daemon of the fleet's size also does and leases cannot remove. GET p99 is LEASE.GET's p99 in the lease row (waits included).\n\n")
	if hasPlot("fleet_hit_ratio.png") {
		p("![fleet](fleet_hit_ratio.png)\n\n")
	}
	if len(r.Fleet) > 0 {
		p("| daemons | system | setting | hit ratio (hits/requests) | peer fill ÷ this | encoder runs per prompt (SETs/prompts) | beyond the first, per prompt: overlapping / later | encoder s per 1k requests | peer hits | leases granted / waits ran out | GET p99 ms | s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, f := range r.Fleet {
			pf := f.row(FleetPeerFill)
			for _, x := range f.Rows {
				ratio := "—"
				if pf != nil && x.System != FleetPeerFill {
					ratio = ratioCell(pf.HitRatio, x.HitRatio)
				}
				leases := "—"
				if x.Leases {
					leases = fmt.Sprintf("%d / %d", x.LeasesGranted, x.LeaseMisses)
					if x.LeaseRefused > 0 {
						leases += fmt.Sprintf(" (%d refused)", x.LeaseRefused)
					}
				}
				p("| %d | %s | %s | %.3f (%d/%d) | %s | %.3f (%d/%d) | %.3f / %.3f | %.1f | %d | %s | %s | %.1f |\n", f.Daemons, x.System, x.Setting, x.HitRatio, x.Hits, x.Requests,
					ratio, x.EncoderRunsPerPrompt, x.Sets, x.PromptsMissed, perPrompt(x.Overlapping, x.PromptsMissed), perPrompt(x.Later, x.PromptsMissed),
					x.EncoderSecondsSpentPer1k, x.PeerHits, leases, ms(x.Get.P99), x.Seconds)
			}
		}
		p("\n")
		writeFleetStampede(b, r)
	}
	if len(r.FleetPeerGet) > 0 {
		p("Peer-served GET: daemons A, B and C with peer fill; keys owned by B (rendezvous hashing, as the daemons compute it) are SET on B and each read once through A, which has never seen them, so every read is served by B (checked with A's `peer_hits`); then the same keys again through A, from the near copy in its L1 (the local GET). ")
		p("CPU is A's and B's together, per GET, from `/proc/PID/task/*/schedstat` (nanoseconds; `/proc/PID/stat` counts 10 ms ticks) read before and after each pass, and so are their page faults (`/proc/PID/stat`); each pass starts once both daemons are quiet (no write pending for L2, under 2%% of a core for two 100 ms windows). Throughput: 16 clients on a second set of keys, first read (peer) then again (local).\n\n")
		p("| size | keys | peer p50 / p99 ms | local p50 / p99 ms | CPU per GET peer / local µs | CPU ratio | page faults per GET peer / local | one client MB/s (peer) | 16 clients GET/s peer / local | throughput ratio | misses peer / local |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, g := range r.FleetPeerGet {
			p("| %s | %d | %s / %s | %s / %s | %.0f / %.0f | %.2f× | %.1f / %.1f | %.0f | %.0f / %.0f | %.2f× | %d / %d |\n", fmtBytes(int64(g.Size)), g.Keys, ms(g.Peer.P50), ms(g.Peer.P99), ms(g.Local.P50), ms(g.Local.P99),
				g.PeerCPUMicros, g.LocalCPUMicros, g.CPURatio, g.PeerFaults, g.LocalFaults, g.PeerMBPerSec, g.PeerOpsPerSec16, g.LocalOpsPerSec16, g.ThroughputRatio, g.PeerMisses, g.LocalMisses)
		}
		p("\nAt steady state: the same first reads through a third daemon C whose L1 (an eighth of A's, written through) is full of its own keys, so every near copy evicts an entry; local GETs are of the last keys read, which C still holds. CPU is C's and B's.\n\n")
		p("| size | peer p50 / p99 ms | CPU per GET peer / local µs | CPU ratio | page faults per GET (peer) | misses |\n|---|---|---|---|---|---|\n")
		for _, g := range r.FleetPeerGet {
			p("| %s | %s / %s | %.0f / %.0f | %.2f× | %.1f | %d |\n", fmtBytes(int64(g.Size)), ms(g.SteadyPeer.P50), ms(g.SteadyPeer.P99),
				g.SteadyPeerCPUMicros, g.SteadyLocalCPUMicros, g.SteadyCPURatio, g.SteadyPeerFaults, g.SteadyMisses)
		}
		p("\n")
	}
	if l := r.FleetLoss; l != nil {
		p("Member loss: %d daemons with peer fill replay a trace of %d requests after the warm-up; daemon B is SIGKILLed at %.1f s, taken out of the rotation, and started again (same data directory and node id) %.1f s later, at %.1f s. ",
			l.Daemons, c.FleetLossRequests, l.KillSeconds, l.ReturnSeconds-l.KillSeconds, l.ReturnSeconds)
		p("Hit ratio before the kill (the windows in the half of the time before it closest to it): %.3f. ", l.Baseline)
		if l.Recovered {
			p("Back within 2 points %.1f s after B's return. ", l.RecoverySeconds)
		} else {
			p("**Not** back within 2 points before the replay ended. ")
		}
		p("%d requests met the killed daemon and were retried on the next one. Hit ratio per %.1f s window:", l.Errors, l.WindowSeconds)
		for i, w := range l.Windows {
			if i%20 == 0 {
				p("\n")
			}
			p(" %.2f", w)
		}
		p("\n\n")
		if hasPlot("fleet_loss.png") {
			p("![member loss](fleet_loss.png)\n\n")
		}
	}
}

// plotFleet draws each system's hit ratio against the fleet size.
func plotFleet(dir string, r *Results) (string, error) {
	if len(r.Fleet) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = "Fleet: budget trace round-robin over N daemons"
	p.X.Label.Text = "daemons"
	p.Y.Label.Text = "hit ratio"
	p.Y.Min, p.Y.Max = 0, 1
	var vs []any
	for _, s := range []string{FleetPeerFill, FleetLeases, FleetPrivate, FleetOne, FleetRedis} {
		var xys plotter.XYs
		for _, f := range r.Fleet {
			if x := f.row(s); x != nil {
				xys = append(xys, plotter.XY{X: float64(f.Daemons), Y: x.HitRatio})
			}
		}
		if len(xys) > 0 {
			vs = append(vs, s, xys)
		}
	}
	if err := plotutil.AddLinePoints(p, vs...); err != nil {
		return "", err
	}
	p.Legend.Top = true
	const name = "fleet_hit_ratio.png"
	return name, p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, name))
}

// plotFleetLoss draws the hit ratio per window through a member's loss.
func plotFleetLoss(dir string, r *Results) (string, error) {
	l := r.FleetLoss
	if l == nil || len(l.Windows) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Member loss: 1 of %d daemons SIGKILLed at %.1fs, back at %.1fs", l.Daemons, l.KillSeconds, l.ReturnSeconds)
	p.X.Label.Text = "seconds since the replay started"
	p.Y.Label.Text = "hit ratio per window"
	p.Y.Min, p.Y.Max = 0, 1
	var xys plotter.XYs
	for i, w := range l.Windows {
		xys = append(xys, plotter.XY{X: l.WindowEnds[i], Y: w})
	}
	base := plotter.XYs{{X: 0, Y: l.Baseline - 0.02}, {X: l.WindowEnds[len(l.WindowEnds)-1], Y: l.Baseline - 0.02}}
	if err := plotutil.AddLines(p, "hit ratio", xys, "before the kill − 2 points", base); err != nil {
		return "", err
	}
	p.Legend.Top = true
	const name = "fleet_loss.png"
	return name, p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, name))
}

// evaluateFleetTargets checks the fleet workload's results against issue
// 21's benchmark targets.
func evaluateFleetTargets(r *Results) []Target {
	var ts []Target
	for _, f := range r.Fleet {
		pf := f.row(FleetPeerFill)
		if pf == nil {
			continue
		}
		for _, c := range []struct {
			other string
			min   float64
		}{{FleetPrivate, 1.10}, {FleetOne, 0.95}, {FleetRedis, 1.5}} {
			t := Target{Name: fmt.Sprintf("Fleet of %d: peer fill hit ratio ≥ %.2f× %s", f.Daemons, c.min, c.other)}
			if o := f.row(c.other); o != nil && o.HitRatio > 0 {
				ratio := pf.HitRatio / o.HitRatio
				t.Known, t.Met = true, ratio >= c.min
				t.Detail = fmt.Sprintf("%.3f vs %.3f: %.3f×", pf.HitRatio, o.HitRatio, ratio)
			} else {
				t.Detail = "not measured"
			}
			ts = append(ts, t)
		}
		ts = append(ts, leaseTarget(&f))
	}
	for _, g := range r.FleetPeerGet {
		if g.Size > 1*MiB {
			continue
		}
		ts = append(ts,
			Target{Name: fmt.Sprintf("Peer-served GET %s: p99 ≤ 2 ms, one client", fmtBytes(int64(g.Size))), Known: true, Met: g.Peer.P99 <= 2000,
				Detail: fmt.Sprintf("%s ms", ms(g.Peer.P99))},
			Target{Name: fmt.Sprintf("Peer-served GET %s: CPU ≤ 2.5× a local L1 GET's", fmtBytes(int64(g.Size))), Known: g.LocalCPUMicros > 0, Met: g.CPURatio <= 2.5,
				Detail: fmt.Sprintf("%.0f µs vs %.0f µs: %.2f× (at steady state, L1 full: %.0f µs vs %.0f µs: %.2f×)", g.PeerCPUMicros, g.LocalCPUMicros, g.CPURatio,
					g.SteadyPeerCPUMicros, g.SteadyLocalCPUMicros, g.SteadyCPURatio)})
	}
	if l := r.FleetLoss; l != nil {
		t := Target{Name: "Member loss: back within 2 points ≤ 60 s after the daemon's return", Known: l.ReturnSeconds > 0}
		t.Met = l.Recovered && l.RecoverySeconds <= 60
		t.Detail = fmt.Sprintf("%.1f s (recovered %v, before %.3f)", l.RecoverySeconds, l.Recovered, l.Baseline)
		ts = append(ts, t)
	}
	return ts
}

// leaseTarget judges "encoder runs per prompt ≤ 1.05 with leases" on
// duplicate computation, the fleet stampede's runs per prompt with
// fleet-wide leases: the replay's figure is mostly recomputation after
// eviction, which leases cannot remove; its detail gives both.
func leaseTarget(f *FleetResult) Target {
	t := Target{Name: fmt.Sprintf("Fleet of %d: encoder runs per prompt ≤ 1.05 with leases (duplicate computation: the fleet stampede)", f.Daemons)}
	st := f.stampede(true, true)
	if st == nil {
		t.Detail = "no fleet stampede with leases"
		return t
	}
	t.Known, t.Met = true, st.RunsPerPrompt <= 1.05
	t.Detail = fmt.Sprintf("stampede, %d clients on %d daemons: %.3f with fleet-wide leases, %.3f GET then SET, %.3f with each daemon's own leases (peer fill off)",
		st.Clients, f.Daemons, st.RunsPerPrompt, stampedeRuns(f.stampede(true, false)), stampedeRuns(f.stampede(false, true)))
	if l, g := f.row(FleetLeases), f.row(FleetPeerFill); l != nil && g != nil {
		t.Detail += fmt.Sprintf("; budget trace (eviction included): %.3f with LEASE.GET vs %.3f GET then SET, overlapping runs %.4f vs %.4f per prompt",
			l.EncoderRunsPerPrompt, g.EncoderRunsPerPrompt, perPrompt(l.Overlapping, l.PromptsMissed), perPrompt(g.Overlapping, g.PromptsMissed))
	}
	return t
}

// writeFleetStampede renders the fleet stampede of every fleet size.
func writeFleetStampede(b *bytes.Buffer, r *Results) {
	has := false
	for _, f := range r.Fleet {
		has = has || len(f.Stampede) > 0
	}
	if !has {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	c := r.Config
	p("Fleet stampede: duplicate computation alone. After the replay, on the daemons of the LEASE.GET row and on those without peer fill, %d clients per daemon ask for the same new prompt at once, for %d prompts one after the other (%s values: they fit in the fleet's memory, nothing is evicted). ",
		c.FleetStampedeClients, c.FleetStampedePrompts, fmtBytes(int64(c.BudgetValue)))
	p("A client that must compute (a miss, a lease, a wait that ran out) finishes only once every client of the round has asked, as a %g ms encoder outlasts clients that ask within it: \"asked\" is a GET answered (it does not wait) or a LEASE.GET sent (it waits for the holder by design). ", c.EncoderDelayMs)
	p("So with GET then SET every client computes, exactly; with leases, one client per lease granted: once for the fleet with fleet-wide leases, once per daemon when each daemon leases alone, whatever the timing.\n\n")
	p("| daemons | peer fill | protocol | clients | prompts | encoder runs per prompt (runs/prompts) | hits | lease waits ran out | s |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, f := range r.Fleet {
		for _, s := range f.Stampede {
			mode := "GET then SET"
			if s.Leases {
				mode = "LEASE.GET"
			}
			fill := "on"
			if !s.PeerFill {
				fill = "off"
			}
			p("| %d | %s | %s | %d | %d | %.3f (%d/%d) | %d | %d | %.1f |\n", f.Daemons, fill, mode, s.Clients, s.Prompts, s.RunsPerPrompt, s.Runs, s.Prompts, s.Hits, s.LeaseMisses, s.Seconds)
		}
	}
	p("\n")
}

// perPrompt is n ÷ prompts (0 without prompts).
func perPrompt(n, prompts int64) float64 {
	if prompts == 0 {
		return 0
	}
	return float64(n) / float64(prompts)
}

func stampedeRuns(s *FleetStampede) float64 {
	if s == nil {
		return 0
	}
	return s.RunsPerPrompt
}
