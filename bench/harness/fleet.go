package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/internal/zipf"
	"github.com/tiercache/tiercache/peer"
)

// fleetPassword is the peer password of the fleet workload's daemons (all
// on loopback; protected mode would not ask for one).
const fleetPassword = "bench-fleet"

// fleet runs the fleet workload: for each fleet size, the budget trace
// spread round-robin over the daemons with peer fill on, with it off, on
// one daemon holding the fleet's memory and disk, and on one shared Redis
// over TCP; then the peer-served GET costs on two daemons and the loss of
// a member mid-replay.
func (h *runner) fleet(ctx context.Context) error {
	if h.natsBin == "" {
		return errors.New("no nats-server: the fleet runs on a standalone one")
	}
	tr := h.trace()
	value := randomValue(h.cfg.BudgetValue, h.cfg.Seed+1)
	for _, n := range h.cfg.FleetDaemons {
		r, err := h.fleetRun(ctx, n, tr, value)
		if err != nil {
			return fmt.Errorf("%d daemons: %w", n, err)
		}
		h.res.Fleet = append(h.res.Fleet, r)
	}
	// The two measurements below are independent: one failing does not
	// stop the other.
	var errs []error
	if !h.cfg.has(WorkloadPeerGet) { // else it runs on its own
		if err := h.fleetPeerGet(ctx); err != nil {
			errs = append(errs, fmt.Errorf("peer-served GET: %w", err))
		}
	}
	if err := h.fleetLoss(ctx, value); err != nil {
		errs = append(errs, fmt.Errorf("member loss: %w", err))
	}
	return errors.Join(errs...)
}

// peerGet runs the peerget workload: the fleet's peer-served GET
// measurement alone.
func (h *runner) peerGet(ctx context.Context) error {
	if h.natsBin == "" {
		return errors.New("no nats-server: the peer-served GET runs on a standalone one")
	}
	return h.fleetPeerGet(ctx)
}

// fleetMember is how a fleet daemon is started (again, after a kill).
func (h *runner) fleetMember(ctx context.Context, i int, url string, peerFill bool, dataDir string) (*proc, error) {
	mem := h.cfg.FleetMemMax
	o := tcOpts{memMax: mem, diskMax: int64(h.cfg.BudgetDiskFactor * float64(mem)), policy: h.cfg.BudgetPolicy,
		nats: url, nodeID: string(rune('A' + i)), dataDir: dataDir}
	if peerFill {
		o.peerListen, o.peerPassword = "127.0.0.1:0", fleetPassword
	}
	name := "tiercached-" + o.nodeID
	return h.track(h.startTiercache(ctx, name, o))
}

// startFleet starts n daemons on url and, with peer fill, waits until each
// sees the n-1 others live.
func (h *runner) startFleet(ctx context.Context, n int, url string, peerFill bool) ([]*proc, []string, error) {
	ps := make([]*proc, n)
	dirs := make([]string, n)
	for i := range n {
		dirs[i] = h.tempDir(fmt.Sprintf("fleet-%c", 'A'+i))
		var err error
		if ps[i], err = h.fleetMember(ctx, i, url, peerFill, dirs[i]); err != nil {
			return nil, nil, err
		}
	}
	if peerFill {
		if err := waitPeersLive(ctx, ps, n-1, 30*time.Second); err != nil {
			return nil, nil, err
		}
	}
	return ps, dirs, nil
}

// waitPeersLive polls INFO peers until every daemon of ps reports want
// live peers.
func waitPeersLive(ctx context.Context, ps []*proc, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, p := range ps {
		for {
			m, err := info(p, "peers")
			if err != nil {
				return err
			}
			if n, _ := strconv.Atoi(m["peers_live"]); n >= want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s sees %s live peers after %v, want %d", p.name, m["peers_live"], timeout, want)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// sumInfo adds up an INFO field over daemons.
func sumInfo(ps []*proc, section, field string) int64 {
	var s int64
	for _, p := range ps {
		if m, err := info(p, section); err == nil {
			v, _ := strconv.ParseInt(m[field], 10, 64)
			s += v
		}
	}
	return s
}

func (h *runner) stopAllOf(ps []*proc, setting string, budget int64) error {
	var first error
	for _, p := range ps {
		if err := h.stopProc(p, WorkloadFleet, setting, budget); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// fleetRun measures one fleet size: the four systems on the same trace,
// the fleet with peer fill twice (GET then SET, and LEASE.GET), and the
// fleet stampede on the daemons with leases and on those without peer
// fill (whose leases are each daemon's own).
func (h *runner) fleetRun(ctx context.Context, n int, tr []int32, value []byte) (FleetResult, error) {
	mem := h.cfg.FleetMemMax
	disk := int64(h.cfg.BudgetDiskFactor * float64(mem))
	res := FleetResult{Daemons: n, MemMax: mem, DiskMax: disk}
	ns, url, err := h.startNATS(ctx, h.natsBin)
	if err != nil {
		return res, err
	}
	defer func() { _ = ns.stop(30 * time.Second) }()

	for _, m := range []struct{ peerFill, leases bool }{{true, false}, {true, true}, {false, false}} {
		ps, _, err := h.startFleet(ctx, n, url, m.peerFill)
		if err != nil {
			return res, err
		}
		name, setting := FleetPeerFill, fmt.Sprintf("%d daemons, peer fill, --mem-max %s --disk-max %s each", n, fmtBytes(mem), fmtBytes(disk))
		switch {
		case m.leases:
			name = FleetLeases
			setting = fmt.Sprintf("%d daemons, peer fill, LEASE.GET ttl %v WAIT %v, --mem-max %s --disk-max %s each", n, fleetLeaseTTL, fleetLeaseWait, fmtBytes(mem), fmtBytes(disk))
		case !m.peerFill:
			name, setting = FleetPrivate, fmt.Sprintf("%d daemons, peer fill off, --mem-max %s --disk-max %s each", n, fmtBytes(mem), fmtBytes(disk))
		}
		row, err := h.fleetReplay(ctx, &fleetTargets{procs: ps}, tr, value, nil, m.leases)
		if err != nil {
			return res, fmt.Errorf("%s: %w", name, err)
		}
		row.System, row.Setting = name, setting
		if m.peerFill {
			row.PeerHits = sumInfo(ps, "peers", "peer_hits")
			row.PeerSetsDropped = sumInfo(ps, "peers", "peer_sets_dropped")
		}
		if m.leases {
			row.LeasesGranted = sumInfo(ps, "stats", "leases_granted")
		}
		res.Rows = append(res.Rows, row)
		h.logFleetRow(n, row)
		if m.leases || !m.peerFill {
			for _, leases := range []bool{false, true} {
				st, err := h.fleetStampede(ctx, ps, m.peerFill, leases, value)
				if err != nil {
					return res, fmt.Errorf("%s: stampede: %w", name, err)
				}
				res.Stampede = append(res.Stampede, st)
				h.logf("fleet %d: stampede, peer fill %v, leases %v: %d clients, %d prompts: %.3f encoder runs per prompt (%d runs, %d hits, %d lease waits ran out), %.1fs",
					n, st.PeerFill, st.Leases, st.Clients, st.Prompts, st.RunsPerPrompt, st.Runs, st.Hits, st.LeaseMisses, st.Seconds)
			}
		}
		if err := h.stopAllOf(ps, setting, mem); err != nil {
			return res, err
		}
	}

	// One daemon holding the fleet's memory and disk.
	one, err := h.start(ctx, kindTiercache, "tiercached-one", tcOpts{memMax: int64(n) * mem, diskMax: int64(n) * disk,
		policy: h.cfg.BudgetPolicy}, redisOpts{}, mcOpts{})
	if err != nil {
		return res, err
	}
	row, err := h.fleetReplay(ctx, &fleetTargets{procs: []*proc{one}}, tr, value, nil, false)
	if err != nil {
		return res, fmt.Errorf("one daemon: %w", err)
	}
	row.System, row.Setting = FleetOne, fmt.Sprintf("1 daemon, --mem-max %s --disk-max %s", fmtBytes(int64(n)*mem), fmtBytes(int64(n)*disk))
	res.Rows = append(res.Rows, row)
	h.logFleetRow(n, row)
	if err := h.stopProc(one, WorkloadFleet, row.Setting, int64(n)*mem); err != nil {
		return res, err
	}

	// One shared Redis over loopback TCP.
	if h.peers[kindRedis] != "" {
		rd, err := h.track(h.startRedis(ctx, "redis-shared", redisOpts{maxMemory: int64(n) * mem, tcp: true}))
		if err != nil {
			return res, err
		}
		row, err := h.fleetReplay(ctx, &fleetTargets{procs: []*proc{rd}}, tr, value, nil, false)
		if err != nil {
			return res, fmt.Errorf("shared Redis: %w", err)
		}
		row.System, row.Setting = FleetRedis, fmt.Sprintf("1 Redis over TCP, maxmemory %s allkeys-lru, no persistence", fmtBytes(int64(n)*mem))
		res.Rows = append(res.Rows, row)
		h.logFleetRow(n, row)
		if err := h.stopProc(rd, WorkloadFleet, row.Setting, int64(n)*mem); err != nil {
			return res, err
		}
	}
	pf := res.row(FleetPeerFill)
	for _, x := range []struct {
		name string
		dst  *float64
	}{{FleetPrivate, &res.VsPrivate}, {FleetOne, &res.VsOne}, {FleetRedis, &res.VsRedis}} {
		if o := res.row(x.name); pf != nil && o != nil && o.HitRatio > 0 {
			*x.dst = pf.HitRatio / o.HitRatio
		}
	}
	h.logf("fleet %d daemons: peer fill hit ratio %.2f× peer fill off, %.2f× one daemon, %.2f× shared Redis", n, res.VsPrivate, res.VsOne, res.VsRedis)
	return res, nil
}

func (h *runner) logFleetRow(n int, r FleetRow) {
	h.logf("fleet %d: %s: hit %.3f (%d/%d), encoder runs per prompt %.3f (%d SETs, %d prompts missed; beyond the first: %d overlapping, %d later), peer hits %d, leases granted %d, lease waits ran out %d, refused %d, %d errors, %.1fs",
		n, r.System, r.HitRatio, r.Hits, r.Requests, r.EncoderRunsPerPrompt, r.Sets, r.PromptsMissed, r.Overlapping, r.Later,
		r.PeerHits, r.LeasesGranted, r.LeaseMisses, r.LeaseRefused, r.Errors, r.Seconds)
}

// fleetTargets are the daemons a replay spreads its requests over. A
// member may leave the rotation (down) and come back as a new process.
type fleetTargets struct {
	mu    sync.Mutex // guards procs, gen and down
	procs []*proc
	gen   []int // per daemon, bumped when it is replaced
	down  int   // 1 + the index of the daemon out of the rotation; 0: none
}

// pick is the daemon request i goes to: round-robin, skipping one that is
// down, as a load balancer's health check would.
func (t *fleetTargets) pick(i int64) (int, *proc, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen == nil {
		t.gen = make([]int, len(t.procs))
	}
	d := int(i % int64(len(t.procs)))
	if t.down == d+1 {
		d = (d + 1) % len(t.procs)
	}
	return d, t.procs[d], t.gen[d]
}

// fleetLossPlan is the member loss driven during a replay.
type fleetLossPlan struct {
	killAt int64         // request index at which a daemon is killed
	victim int           // its index
	after  time.Duration // how long it stays down
	// restart starts the victim again.
	restart func(ctx context.Context) (*proc, error)
	window  time.Duration

	killed, returned time.Time // set by the replay
}

// The lease of a fleet replay's LEASE.GET, and how long a waiter waits
// for its holder: the encoder is accounted, not slept, so a holder SETs
// within a round trip; the TTL only matters when a forwarded SET is
// dropped, and then a waiter takes the lease over after it.
const (
	fleetLeaseTTL  = 2 * time.Second
	fleetLeaseWait = 2 * time.Second
)

// fleetReplay replays tr cache-aside over t's daemons with BudgetConns
// workers, request i to daemon i mod n: the workers' requests are in
// flight on every daemon at once. A miss "encodes" (accounted, not
// slept) and SETs. With leases the request is LEASE.GET instead of GET:
// a hit is done; a lease granted, a wait that ran out or a refusal
// encodes and SETs. With a loss plan, a request that fails because its
// daemon was killed is retried on the next one and counted in Errors.
func (h *runner) fleetReplay(ctx context.Context, t *fleetTargets, tr []int32, value []byte, loss *fleetLossPlan, leases bool) (FleetRow, error) {
	var (
		next          atomic.Int64
		hits, reqs    atomic.Int64 // measured part
		sets, failed  atomic.Int64
		overlapping   atomic.Int64
		leaseMisses   atomic.Int64
		refused       atomic.Int64
		missed        = make([]atomic.Bool, h.cfg.BudgetKeys)
		inflight      = make([]atomic.Int32, h.cfg.BudgetKeys) // runs of each prompt between its miss and its SET's reply
		wg            sync.WaitGroup
		errs          = make(chan error, h.cfg.BudgetConns+1)
		warm          = int64(h.cfg.BudgetWarmup)
		getMu         sync.Mutex // guards getH
		getH          = newHist()
		start         = time.Now()
		windows       []float64 // hit ratio per window (loss plan only)
		windowEnds    []float64 // seconds from start to each window's end
		done          = make(chan struct{})
		samplerExited = make(chan struct{})
	)
	if loss != nil {
		warm = 0
		go func() { // the hit ratio per window, and the kill and restart
			defer close(samplerExited)
			tick := time.NewTicker(loss.window)
			defer tick.Stop()
			var lh, lr int64
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				hh, rr := hits.Load(), reqs.Load()
				w := 0.0
				if rr > lr {
					w = float64(hh-lh) / float64(rr-lr)
				}
				windows = append(windows, w)
				windowEnds = append(windowEnds, time.Since(start).Seconds())
				lh, lr = hh, rr
				if loss.killed.IsZero() && next.Load() >= loss.killAt {
					t.mu.Lock()
					t.down = loss.victim + 1
					victim := t.procs[loss.victim]
					t.mu.Unlock()
					victim.kill() // SIGKILL
					loss.killed = time.Now()
				}
				if !loss.killed.IsZero() && loss.returned.IsZero() && time.Since(loss.killed) >= loss.after {
					p, err := loss.restart(ctx)
					if err != nil {
						errs <- fmt.Errorf("restart: %w", err)
						return
					}
					t.mu.Lock()
					t.procs[loss.victim] = p
					if t.gen == nil {
						t.gen = make([]int, len(t.procs))
					}
					t.gen[loss.victim]++
					t.down = 0
					t.mu.Unlock()
					loss.returned = time.Now()
				}
			}
		}()
	} else {
		close(samplerExited)
	}
	for range h.cfg.BudgetConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns := map[int]*respConn{}
			gens := map[int]int{}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			gh := newHist()
			defer func() {
				getMu.Lock()
				getH.Merge(gh)
				getMu.Unlock()
			}()
			key := make([]byte, 0, 32)
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(tr)) {
					return
				}
				key = strconv.AppendInt(append(key[:0], "{clip@v1}p"...), int64(tr[i]), 10)
				for attempt := 0; ; attempt++ {
					d, p, g := t.pick(i + int64(attempt))
					kind, err := fleetRequest(conns, gens, d, p, g, key, value, leases, fleetCalls{
						lookup: func(d time.Duration) {
							if i >= warm {
								record(gh, d)
							}
						},
						encode: func() {
							if inflight[tr[i]].Add(1) > 1 {
								overlapping.Add(1)
							}
						},
						stored: func() { inflight[tr[i]].Add(-1) },
					})
					if err != nil {
						if c := conns[d]; c != nil {
							c.Close()
							delete(conns, d)
						}
						if loss == nil || attempt >= 2*len(t.procs) {
							errs <- err
							return
						}
						failed.Add(1)
						continue
					}
					hit := kind == leaseHit
					if i >= warm {
						reqs.Add(1)
						if hit {
							hits.Add(1)
						}
					}
					switch kind {
					case leaseMiss:
						leaseMisses.Add(1)
					case leaseRefused:
						refused.Add(1)
					}
					if !hit {
						sets.Add(1)
						missed[tr[i]].Store(true)
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	<-samplerExited
	close(errs)
	if err := <-errs; err != nil {
		return FleetRow{}, err
	}
	if err := ctx.Err(); err != nil {
		return FleetRow{}, err
	}
	r := FleetRow{Leases: leases, Requests: reqs.Load(), Hits: hits.Load(), Sets: sets.Load(), Errors: failed.Load(),
		Overlapping: overlapping.Load(), LeaseMisses: leaseMisses.Load(), LeaseRefused: refused.Load(),
		Get: summarize(getH), Seconds: time.Since(start).Seconds(), windows: windows, windowEnds: windowEnds}
	for i := range missed {
		if missed[i].Load() {
			r.PromptsMissed++
		}
	}
	r.Later = r.Sets - r.PromptsMissed - r.Overlapping
	if r.Requests > 0 {
		r.HitRatio = float64(r.Hits) / float64(r.Requests)
	}
	if r.PromptsMissed > 0 {
		r.EncoderRunsPerPrompt = float64(r.Sets) / float64(r.PromptsMissed)
	}
	r.EncoderSecondsSpentPer1k = 1000 * (1 - r.HitRatio) * h.cfg.EncoderDelay.Seconds()
	return r, nil
}

// leaseRefused is what fleetRequest reports for a LEASE.GET refused at
// --max-leases (the encoder runs, as for a miss).
const leaseRefused = 'r'

// fleetCalls are what fleetRequest tells its replay: lookup the GET's (or
// LEASE.GET's) latency, encode that the encoder runs (a miss, a lease),
// and stored that its SET was answered.
type fleetCalls struct {
	lookup         func(time.Duration)
	encode, stored func()
}

// fleetRequest asks daemon d for key (dialing it if its connection is
// missing or from an older process): GET, or with leases LEASE.GET. On
// anything but a hit it runs the encoder (accounted, not slept) and SETs
// value, which completes a lease granted; a lease it could not complete
// (the SET refused) is released. It reports leaseHit, leaseGranted (a
// GET's miss too), leaseMiss or leaseRefused.
func fleetRequest(conns map[int]*respConn, gens map[int]int, d int, p *proc, g int, key, value []byte, leases bool, calls fleetCalls) (byte, error) {
	c := conns[d]
	if c != nil && gens[d] != g {
		c.Close()
		c = nil
	}
	if c == nil {
		var err error
		if c, err = p.resp(); err != nil {
			return 0, err
		}
		conns[d], gens[d] = c, g
	}
	t0 := time.Now()
	kind, token, err := lookup(c, key, leases, fleetLeaseTTL, fleetLeaseWait)
	if err != nil {
		return 0, err
	}
	calls.lookup(time.Since(t0))
	if kind == leaseHit {
		return kind, nil
	}
	calls.encode()
	defer calls.stored()
	return kind, store(c, key, value, token)
}

// lookup asks c for key with GET, or with leases with LEASE.GET key ttl
// WAIT wait, and reports leaseHit, leaseGranted (with its token; a GET's
// miss is leaseGranted without one), leaseMiss or leaseRefused.
func lookup(c *respConn, key []byte, leases bool, ttl, wait time.Duration) (kind byte, token string, err error) {
	if leases {
		c.sendLeaseGet(key, ttl, wait)
	} else {
		c.sendGet(key)
	}
	if err := c.flush(); err != nil {
		return 0, "", err
	}
	if !leases {
		hit, _, err := c.recvGet()
		if err != nil {
			return 0, "", fmt.Errorf("GET: %w", err)
		}
		if hit {
			return leaseHit, "", nil
		}
		return leaseGranted, "", nil
	}
	kind, token, err = c.recvLease()
	switch {
	case isServerError(err):
		return leaseRefused, "", nil
	case err != nil:
		return 0, "", fmt.Errorf("LEASE.GET: %w", err)
	}
	return kind, token, nil
}

// store SETs key to value on c; a SET the server refuses is not an error,
// but the lease token held, if any, is then released.
func store(c *respConn, key, value []byte, token string) error {
	c.sendSet(key, value)
	if err := c.flush(); err != nil {
		return err
	}
	err := c.recvSet()
	switch {
	case err == nil:
		return nil
	case !isServerError(err):
		return fmt.Errorf("SET: %w", err)
	case token == "":
		return nil
	}
	if _, err := c.do("LEASE.RELEASE", string(key), token); err != nil && !isServerError(err) {
		return fmt.Errorf("LEASE.RELEASE: %w", err)
	}
	return nil
}

// fleetLoss replays a trace of FleetLossRequests over 3 daemons with peer
// fill, SIGKILLs one after FleetLossKillShare of it, restarts it (same
// data directory and node id) FleetLossDown later, and reports the hit
// ratio per window and how long after the return it is back within 2
// points of its level before the kill.
func (h *runner) fleetLoss(ctx context.Context, value []byte) error {
	const n, victim = 3, 1
	ns, url, err := h.startNATS(ctx, h.natsBin)
	if err != nil {
		return err
	}
	defer func() { _ = ns.stop(30 * time.Second) }()
	ps, dirs, err := h.startFleet(ctx, n, url, true)
	if err != nil {
		return err
	}
	tr := h.traceN(h.cfg.BudgetWarmup+h.cfg.FleetLossRequests, 0x10f5)
	plan := &fleetLossPlan{
		killAt: int64(h.cfg.BudgetWarmup) + int64(float64(h.cfg.FleetLossRequests)*h.cfg.FleetLossKillShare),
		victim: victim, after: h.cfg.FleetLossDown, window: h.cfg.FleetLossWindow,
		restart: func(ctx context.Context) (*proc, error) {
			return h.fleetMember(ctx, victim, url, true, dirs[victim])
		},
	}
	t := &fleetTargets{procs: ps}
	start := time.Now()
	row, err := h.fleetReplay(ctx, t, tr, value, plan, false)
	if err != nil {
		return err
	}
	res := FleetLoss{Daemons: n, WindowSeconds: h.cfg.FleetLossWindow.Seconds(), Windows: row.windows, WindowEnds: row.windowEnds,
		HitRatio: row.HitRatio, Errors: row.Errors}
	if plan.killed.IsZero() || plan.returned.IsZero() {
		h.note("fleet member loss: the replay ended before the kill and the return (make FleetLossRequests larger)")
	} else {
		res.KillSeconds = plan.killed.Sub(start).Seconds()
		res.ReturnSeconds = plan.returned.Sub(start).Seconds()
		res.Baseline, res.RecoverySeconds, res.Recovered = lossRecovery(res.Windows, res.WindowEnds, res.KillSeconds, res.ReturnSeconds)
	}
	h.res.FleetLoss = &res
	h.logf("fleet member loss: killed at %.1fs, back at %.1fs; hit ratio before %.3f; within 2 points %.1fs after the return (recovered %v); %d requests retried",
		res.KillSeconds, res.ReturnSeconds, res.Baseline, res.RecoverySeconds, res.Recovered, res.Errors)
	t.mu.Lock()
	ps = append([]*proc(nil), t.procs...)
	t.mu.Unlock()
	return h.stopAllOf(ps, "member loss, 3 daemons, peer fill", h.cfg.FleetMemMax)
}

// lossRecovery is the mean hit ratio of the windows that end in the half
// of the time before the kill closest to it (the first half warms the
// caches), and the time from the return to the end of the first window
// that starts after it at or above that level minus 2 points.
func lossRecovery(ws, ends []float64, kill, ret float64) (base, secs float64, ok bool) {
	var sum float64
	var cnt int
	for i, e := range ends {
		if e > kill/2 && e <= kill {
			sum += ws[i]
			cnt++
		}
	}
	if cnt == 0 {
		return 0, 0, false
	}
	base = sum / float64(cnt)
	for i := 1; i < len(ends); i++ {
		if ends[i-1] < ret {
			continue
		}
		if ws[i] >= base-0.02 {
			return base, ends[i] - ret, true
		}
	}
	return base, 0, false
}

// traceN is a trace of n requests drawn like the budget trace from
// another stream.
func (h *runner) traceN(n int, stream uint64) []int32 {
	return zipf.New(h.cfg.BudgetKeys, h.cfg.BudgetZipfS).Trace(n, h.cfg.Seed, stream)
}

// ownedBy returns n keys "prefix<i>" that the ring of members ids gives
// to owner.
func ownedBy(ids []string, owner, prefix string, n int) [][]byte {
	ms := make([]peer.Member, len(ids))
	for i, id := range ids {
		ms[i] = peer.Member{ID: id, Addr: id + ":1"}
	}
	ring := peer.NewRing(ms)
	var keys [][]byte
	for i := 0; len(keys) < n; i++ {
		k := []byte(prefix + strconv.Itoa(i))
		if m, ok := ring.Owner(k); ok && m.ID == owner {
			keys = append(keys, k)
		}
	}
	return keys
}

// fleetPeerGet measures GETs served through daemon A from daemon B (the
// keys' owner, which A has never read: every first read goes to the
// peer) against local GETs of the same keys (A's near copies in L1), for
// each size of FleetPeerSizes.
func (h *runner) fleetPeerGet(ctx context.Context) error {
	ns, url, err := h.startNATS(ctx, h.natsBin)
	if err != nil {
		return err
	}
	defer func() { _ = ns.stop(30 * time.Second) }()
	// A reads into an L1 with room for every near copy (its memory
	// grows), C into a full one (--mem-max an eighth of the others',
	// filled first: every near copy evicts an entry, as at steady state).
	// C writes through, so that what it evicts is in L2 already and
	// costs no write during a pass.
	var ps []*proc
	for i := range 3 {
		o := tcOpts{memMax: h.cfg.FleetPeerMemMax, diskMax: 2 * h.cfg.FleetPeerMemMax, policy: "back", nats: url,
			nodeID: string(rune('A' + i)), peerListen: "127.0.0.1:0", peerPassword: fleetPassword}
		if i == 2 {
			o.memMax, o.policy = h.cfg.FleetPeerMemMax/8, "through"
		}
		p, err := h.track(h.startTiercache(ctx, fmt.Sprintf("tiercached-%c", 'A'+i), o))
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	if err := waitPeersLive(ctx, ps, 2, 30*time.Second); err != nil {
		return err
	}
	a, b, c := ps[0], ps[1], ps[2]
	ids := []string{"A", "B", "C"}
	cMem := h.cfg.FleetPeerMemMax / 8
	for si, size := range h.cfg.FleetPeerSizes {
		count := h.cfg.FleetPeerKeys
		if size >= 1*MiB {
			count = h.cfg.FleetPeerKeysLarge
		}
		value := randomValue(size, h.cfg.Seed+3)
		one := ownedBy(ids, "B", fmt.Sprintf("peerget:%d:1:", si), count)
		many := ownedBy(ids, "B", fmt.Sprintf("peerget:%d:16:", si), count)
		steady := ownedBy(ids, "B", fmt.Sprintf("peerget:%d:steady:", si), count)
		for _, ks := range [][][]byte{one, many, steady} {
			if err := setAll(b, ks, value); err != nil {
				return err
			}
		}
		r := FleetPeerGet{Size: size, Keys: count}
		// Each pass starts with the daemons it measures quiet, so that no
		// work left over from the SETs (or the pass before) is billed to
		// its GETs.
		passOn := func(via *proc, keys [][]byte, conns int) (gets, error) {
			both := []*proc{via, b}
			if err := h.waitQuiet(ctx, both); err != nil {
				return gets{}, err
			}
			return timedGets(ctx, via, both, keys, conns)
		}
		pass := func(keys [][]byte, conns int) (gets, error) { return passOn(a, keys, conns) }
		hits0 := sumInfo([]*proc{a}, "peers", "peer_hits")
		peer, err := pass(one, 1)
		if err != nil {
			return err
		}
		r.PeerHits = sumInfo([]*proc{a}, "peers", "peer_hits") - hits0
		local, err := pass(one, 1)
		if err != nil {
			return err
		}
		r.Peer, r.Local = peer.lat, local.lat
		r.PeerCPUMicros = float64(peer.cpu.Microseconds()) / float64(count)
		r.LocalCPUMicros = float64(local.cpu.Microseconds()) / float64(count)
		r.CPURatio = ratioOf(r.PeerCPUMicros, r.LocalCPUMicros)
		r.PeerFaults = float64(peer.faults) / float64(count)
		r.LocalFaults = float64(local.faults) / float64(count)
		r.PeerMBPerSec = float64(size) * float64(count) / peer.secs / 1e6
		peer16, err := pass(many, 16)
		if err != nil {
			return err
		}
		local16, err := pass(many, 16)
		if err != nil {
			return err
		}
		r.PeerMisses, r.LocalMisses = peer.misses+peer16.misses, local.misses+local16.misses
		r.PeerOpsPerSec16 = float64(count) / peer16.secs
		r.LocalOpsPerSec16 = float64(count) / local16.secs
		r.ThroughputRatio = ratioOf(r.PeerOpsPerSec16, r.LocalOpsPerSec16)

		// Steady state: C's L1 full of its own keys (written through), then
		// the same first reads through C, then local GETs of the last of
		// them, which its L1 still holds.
		fill := ownedBy(ids, "C", fmt.Sprintf("peerget:%d:fill:", si), int(5*cMem/4/int64(size))+1)
		if err := setAll(c, fill, value); err != nil {
			return err
		}
		sp, err := passOn(c, steady, 1)
		if err != nil {
			return err
		}
		recent := steady[count-max(1, min(count, int(cMem/4/int64(size)))):]
		sl, err := passOn(c, recent, 1)
		if err != nil {
			return err
		}
		r.SteadyPeerCPUMicros = float64(sp.cpu.Microseconds()) / float64(len(steady))
		r.SteadyLocalCPUMicros = float64(sl.cpu.Microseconds()) / float64(len(recent))
		r.SteadyCPURatio = ratioOf(r.SteadyPeerCPUMicros, r.SteadyLocalCPUMicros)
		r.SteadyPeerFaults = float64(sp.faults) / float64(len(steady))
		r.SteadyPeer = sp.lat
		r.SteadyMisses = sp.misses + sl.misses
		// Room on B and C for the next size.
		for _, d := range []struct {
			p    *proc
			keys [][][]byte
		}{{b, [][][]byte{one, many, steady}}, {c, [][][]byte{fill, steady}}} {
			for _, ks := range d.keys {
				if err := delAll(d.p, ks); err != nil {
					return err
				}
			}
		}
		h.res.FleetPeerGet = append(h.res.FleetPeerGet, r)
		h.logf("peer-served GET %s: p50 %.0fµs p99 %.0fµs (local p99 %.0fµs), CPU %.0fµs vs local %.0fµs (%.2f×), page faults %.1f vs local %.1f, 16 clients %.0f/s vs local %.0f/s (%.2f×), %.0f MB/s one client, %d peer hits of %d (one client)",
			fmtBytes(int64(size)), r.Peer.P50, r.Peer.P99, r.Local.P99, r.PeerCPUMicros, r.LocalCPUMicros, r.CPURatio, r.PeerFaults, r.LocalFaults,
			r.PeerOpsPerSec16, r.LocalOpsPerSec16, r.ThroughputRatio, r.PeerMBPerSec, r.PeerHits, count)
		h.logf("peer-served GET %s at steady state (L1 full): CPU %.0fµs vs local %.0fµs (%.2f×), page faults %.1f, p99 %.0fµs, %d misses",
			fmtBytes(int64(size)), r.SteadyPeerCPUMicros, r.SteadyLocalCPUMicros, r.SteadyCPURatio, r.SteadyPeerFaults, r.SteadyPeer.P99, r.SteadyMisses)
		if r.PeerMisses+r.LocalMisses+r.SteadyMisses > 0 {
			h.note("peer-served GET %s: %d of the peer-served GETs and %d of the local ones missed, %d at steady state (a peer request past --peer-timeout, or an eviction)", fmtBytes(int64(size)), r.PeerMisses, r.LocalMisses, r.SteadyMisses)
		}
	}
	return h.stopAllOf(ps, "peer-served GET, 3 daemons (C: an eighth of this)", h.cfg.FleetPeerMemMax)
}

// delAll deletes keys on p, 64 to a DEL.
func delAll(p *proc, keys [][]byte) error {
	c, err := p.resp()
	if err != nil {
		return err
	}
	defer c.Close()
	for i := 0; i < len(keys); i += 64 {
		args := []string{"DEL"}
		for _, k := range keys[i:min(i+64, len(keys))] {
			args = append(args, string(k))
		}
		if _, err := c.do(args...); err != nil {
			return err
		}
	}
	return nil
}

// setAll SETs every key to value on p, 8 in flight.
func setAll(p *proc, keys [][]byte, value []byte) error {
	c, err := p.resp()
	if err != nil {
		return err
	}
	defer c.Close()
	for i := 0; i < len(keys); i += 8 {
		j := min(i+8, len(keys))
		for _, k := range keys[i:j] {
			c.sendSet(k, value)
		}
		if err := c.flush(); err != nil {
			return err
		}
		for range keys[i:j] {
			if err := c.recvSet(); err != nil {
				return err
			}
		}
	}
	return nil
}

// gets is what one pass of timedGets measured.
type gets struct {
	lat    Latency
	cpu    time.Duration // CPU time of the processes watched
	faults int64         // their page faults (minor and major)
	secs   float64       // elapsed
	misses int64
}

// timedGets GETs every key once through p with conns clients (key i by
// client i mod conns), and returns the latency, the CPU time the cpu
// processes used meanwhile (per-thread schedstat: nanoseconds, where
// /proc/PID/stat counts 10 ms ticks) and their page faults, the elapsed
// seconds and the misses (every key is there: a miss is a peer request
// that timed out or failed).
func timedGets(ctx context.Context, p *proc, cpu []*proc, keys [][]byte, conns int) (gets, error) {
	cpuNow := func() (ns, faults int64) {
		for _, q := range cpu {
			n, _ := cpuNanos(q.pid())
			ns += n
			faults += pageFaults(q.pid())
		}
		return ns, faults
	}
	cs := make([]*respConn, conns)
	for i := range cs {
		var err error
		if cs[i], err = p.resp(); err != nil {
			return gets{}, err
		}
		defer cs[i].Close()
	}
	hist := newHist()
	var (
		misses atomic.Int64
		mu     sync.Mutex // guards hist
		wg     sync.WaitGroup
		errs   = make(chan error, conns)
	)
	c0, f0 := cpuNow()
	t0 := time.Now()
	for w, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lh := newHist()
			defer func() { mu.Lock(); hist.Merge(lh); mu.Unlock() }()
			for i := w; i < len(keys) && ctx.Err() == nil; i += conns {
				s := time.Now()
				c.sendGet(keys[i])
				if err := c.flush(); err != nil {
					errs <- err
					return
				}
				hit, _, err := c.recvGet()
				if err != nil {
					errs <- err
					return
				}
				record(lh, time.Since(s))
				if !hit {
					misses.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	c1, f1 := cpuNow()
	close(errs)
	if err := <-errs; err != nil {
		return gets{}, err
	}
	return gets{lat: summarize(hist), cpu: time.Duration(c1 - c0), faults: f1 - f0, secs: secs, misses: misses.Load()}, ctx.Err()
}

// Quiet daemons: at most quietCPU of one core over quietWindow, twice in
// a row, with no write waiting for L2.
const (
	quietCPU     = 0.02
	quietWindow  = 100 * time.Millisecond
	quietTimeout = 60 * time.Second
)

// waitQuiet waits until the daemons ps are quiet: no write pending for L2
// (INFO pending_write_bytes) and their CPU idle. After quietTimeout it
// goes on with a note: the pass that follows may bill leftover work.
func (h *runner) waitQuiet(ctx context.Context, ps []*proc) error {
	deadline := time.Now().Add(quietTimeout)
	cpu := func() int64 {
		var s int64
		for _, p := range ps {
			n, _ := cpuNanos(p.pid())
			s += n
		}
		return s
	}
	calm := 0
	for calm < 2 {
		c0, t0 := cpu(), time.Now()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quietWindow):
		}
		share := float64(cpu()-c0) / float64(time.Since(t0).Nanoseconds())
		if share <= quietCPU && sumInfo(ps, "tiers", "pending_write_bytes") == 0 {
			calm++
		} else {
			calm = 0
		}
		if calm < 2 && time.Now().After(deadline) {
			h.note("peer-served GET: the daemons were still busy (%.0f%% of a core) after %v; measured anyway", 100*share, quietTimeout)
			return nil
		}
	}
	return nil
}

// pageFaults returns the page faults (minor and major) of process pid
// so far, from /proc/PID/stat; 0 if it cannot be read.
func pageFaults(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count the
	// fields after its closing parenthesis (state is field 3).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 10 {
		return 0
	}
	minflt, _ := strconv.ParseInt(f[7], 10, 64) // field 10
	majflt, _ := strconv.ParseInt(f[9], 10, 64) // field 12
	return minflt + majflt
}
