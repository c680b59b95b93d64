package drill

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/peer"
)

// Fleet drills: daemons that serve each other's keys (--peer-listen) while
// rollouts happen and while a member dies.
//
// fleetLoad runs, on every daemon of a fleet, writers and readers of
// {clip}kI keys. A writer owns a share of the keys (each key has one
// writer, on one daemon; a key's owner is another daemon two times out of
// three, so most writes are forwarded) and writes them with values whose
// sequence number carries the version MODEL.GET answered it (N<<32 |
// counter). It holds its daemon's gate shared meanwhile, and a rollout
// takes the gates of all live daemons exclusively until each has applied
// it (as modelLoad does), so a value's version is exactly the one it was
// stored under. A reader reads random keys of every writer, most of them
// written on another daemon, so its misses ask their owner. Around each
// GET it sends MODEL.GET on the same connection: a value of a version
// older than the one answered before the GET is a read of an older
// version than the daemon had applied (a violation); one newer than the
// version answered after the GET was stored under a version the daemon
// did not have yet (also counted).

// fleetDaemon starts a daemon of a fleet cache on the NATS server at url,
// serving its peers on a free loopback port.
func fleetDaemon(t testing.TB, name, url string, extra ...string) *daemon {
	t.Helper()
	return modelDaemon(t, name, url, append([]string{"--peer-listen", "127.0.0.1:0"}, extra...)...)
}

// waitPeersLive waits until every daemon of ds counts live other members
// (INFO peers_live: members whose breaker is closed).
func waitPeersLive(t testing.TB, live int64, ds ...*daemon) {
	t.Helper()
	waitPeersField(t, "peers_live", live, ds...)
}

// waitPeersField waits until INFO field (peers or peers_live) is n on
// every daemon of ds.
func waitPeersField(t testing.TB, field string, n int64, ds ...*daemon) {
	t.Helper()
	for _, d := range ds {
		waitFor(t, time.Minute, fmt.Sprintf("%s to count %s %d", d.name, field, n), func() bool {
			return d.infoInt(field) == n
		})
	}
}

// sumInfo adds up one INFO field of ds.
func sumInfo(t testing.TB, field string, ds ...*daemon) int64 {
	t.Helper()
	var n int64
	for _, d := range ds {
		n += d.infoInt(field)
	}
	return n
}

// fleetRing is the ring of owners of the daemons ds: ownership hashes node
// ids only, so the drill computes it as the daemons do.
func fleetRing(ds ...*daemon) *peer.Ring {
	ms := make([]peer.Member, len(ds))
	for i, d := range ds {
		ms[i] = peer.Member{ID: d.name, Addr: "unused:1"}
	}
	return peer.NewRing(ms)
}

// fleetStats are one daemon's figures.
type fleetStats struct {
	written    atomic.Int64
	reads      atomic.Int64 // GETs answered
	hits       atomic.Int64
	straddled  atomic.Int64 // GETs during which MODEL.GET changed
	violations atomic.Int64 // values older than the version reported before the GET
	future     atomic.Int64 // values newer than the version reported after the GET
}

type fleetLoad struct {
	t       testing.TB
	keys    int
	writers int // per daemon
	readers int // per daemon
	order   []string
	writerGates
	stats map[string]*fleetStats

	wg sync.WaitGroup

	// since is when GET latencies start being recorded (UnixNano, 0:
	// not yet); a GET that began before it is not recorded.
	since atomic.Int64

	mu      sync.Mutex // guards the fields below
	errs    []error
	dying   map[string]bool // daemons whose clients' errors are expected
	cancels map[string]context.CancelFunc
	lats    []time.Duration // GET latencies since since
}

func newFleetLoad(t testing.TB, keys, writers, readers int, ds ...*daemon) *fleetLoad {
	l := &fleetLoad{
		t: t, keys: keys, writers: writers, readers: readers,
		writerGates: writerGates{gates: gatesOf(ds)}, stats: map[string]*fleetStats{},
		dying: map[string]bool{}, cancels: map[string]context.CancelFunc{},
	}
	for _, d := range ds {
		l.order = append(l.order, d.name)
		l.stats[d.name] = &fleetStats{}
	}
	for _, d := range ds {
		l.run(d)
	}
	t.Cleanup(l.stop)
	return l
}

// run starts d's writers and readers.
func (l *fleetLoad) run(d *daemon) {
	ctx, cancel := context.WithCancel(context.Background())
	l.mu.Lock()
	l.cancels[d.name] = cancel
	l.dying[d.name] = false
	l.mu.Unlock()
	di := slices.Index(l.order, d.name)
	for w := range l.writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.writer(ctx, d, di*l.writers+w)
		}()
	}
	for r := range l.readers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.reader(ctx, d, uint64(di*100+r))
		}()
	}
}

// dies tells the load that d's clients are about to fail.
func (l *fleetLoad) dies(d *daemon) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dying[d.name] = true
}

// halt stops d's writers and readers and waits for nothing: they end with
// their next command.
func (l *fleetLoad) halt(d *daemon) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cancels[d.name]()
}

func (l *fleetLoad) fail(d *daemon, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dying[d.name] {
		return
	}
	if len(l.errs) < 20 {
		l.errs = append(l.errs, fmt.Errorf("%s: %w", d.name, err))
	}
}

func (l *fleetLoad) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.errs) > 0
}

// stop stops the load and reports its errors. Idempotent.
func (l *fleetLoad) stop() {
	l.mu.Lock()
	for _, c := range l.cancels {
		c()
	}
	l.mu.Unlock()
	l.unlockAll()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		l.t.Error(err)
	}
	l.errs = nil
}

// rollout rolls clip out to vN through via and waits until every daemon
// of live applied it, the writers of live held meanwhile.
func (l *fleetLoad) rollout(n int, via *daemon, live ...*daemon) {
	l.t.Helper()
	l.lockAll(live...)
	defer l.unlock(live...)
	if err := via.admin.Do(context.Background(), "MODEL.ROLLOUT", "clip", fmt.Sprintf("v%d", n)).Err(); err != nil {
		l.t.Fatalf("MODEL.ROLLOUT clip v%d on %s: %v", n, via.name, err)
	}
	waitVersion(l.t, n, live...)
}

func (l *fleetLoad) total(f func(*fleetStats) int64) int64 {
	var n int64
	for _, st := range l.stats {
		n += f(st)
	}
	return n
}

// waitFor waits until f of the figures grew by n (or the load failed).
func (l *fleetLoad) waitGrow(what string, n int64, f func(*fleetStats) int64) {
	l.t.Helper()
	base := l.total(f)
	waitFor(l.t, time.Minute, fmt.Sprintf("%d more %s", n, what), func() bool {
		return l.failed() || l.total(f)-base >= n
	})
}

func keyOf(i int) string { return fmt.Sprintf("{clip}k%d", i) }

func (l *fleetLoad) writer(ctx context.Context, d *daemon, id int) {
	c := d.client(1)
	defer c.Close()
	st := l.stats[d.name]
	gate := l.gates[d.name]
	all := len(l.order) * l.writers
	var mine []int
	for i := id; i < l.keys; i += all {
		mine = append(mine, i)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(id)))
	var n uint64
	for ctx.Err() == nil {
		gate.RLock()
		err := func() error {
			ver, err := modelVersion(ctx, c)
			if err != nil {
				return err
			}
			k := keyOf(mine[rng.IntN(len(mine))])
			n++
			if err := c.Set(ctx, k, NewValue([]byte(k), uint64(ver)<<32|n, 64+rng.IntN(2048)), 0).Err(); err != nil {
				return fmt.Errorf("SET %s at v%d: %w", k, ver, err)
			}
			st.written.Add(1)
			return nil
		}()
		gate.RUnlock()
		if err != nil && ctx.Err() == nil {
			l.fail(d, fmt.Errorf("writer %d: %w", id, err))
			return
		}
	}
}

func (l *fleetLoad) reader(ctx context.Context, d *daemon, id uint64) {
	c := d.client(1)
	defer c.Close()
	st := l.stats[d.name]
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), id))
	var lats []time.Duration
	defer func() {
		l.mu.Lock()
		l.lats = append(l.lats, lats...)
		l.mu.Unlock()
	}()
	for ctx.Err() == nil {
		err := func() error {
			before, err := modelVersion(ctx, c)
			if err != nil {
				return err
			}
			k := keyOf(rng.IntN(l.keys))
			start := time.Now()
			v, err := c.Get(ctx, k).Bytes()
			took := time.Since(start)
			if since := l.since.Load(); since != 0 && start.UnixNano() >= since && (err == nil || errors.Is(err, redis.Nil)) {
				lats = append(lats, took)
			}
			if errors.Is(err, redis.Nil) {
				st.reads.Add(1)
				return nil
			}
			if err != nil {
				return fmt.Errorf("GET %s: %w", k, err)
			}
			seq, err := CheckValue([]byte(k), v)
			if err != nil {
				return fmt.Errorf("GET %s: %w", k, err)
			}
			after, err := modelVersion(ctx, c)
			if err != nil {
				return err
			}
			st.reads.Add(1)
			st.hits.Add(1)
			if before != after {
				st.straddled.Add(1)
			}
			switch ver := int(seq >> 32); {
			case ver < before:
				st.violations.Add(1)
				return fmt.Errorf("%w: GET %s served a value of v%d after the daemon reported v%d (v%d after the GET)", errStaleRead, k, ver, before, after)
			case ver > after:
				st.future.Add(1)
				return fmt.Errorf("%w: GET %s served a value of v%d, the daemon reported v%d before the GET and v%d after", errStaleRead, k, ver, before, after)
			}
			return nil
		}()
		if err != nil && ctx.Err() == nil {
			l.fail(d, fmt.Errorf("reader %d: %w", id, err))
			if !errors.Is(err, errStaleRead) {
				return
			}
		}
	}
}

// errStaleRead marks a read of the wrong version: the reader reports it
// and goes on, so that the drill counts them all; it stops at any other
// error.
var errStaleRead = errors.New("wrong version read")

// summary is the load's figures in one line.
func (l *fleetLoad) summary() string {
	return fmt.Sprintf("%d values written, %d GETs (%d hits, %d during a rollout on their daemon), %d stale reads, %d reads of a version not yet applied",
		l.total(func(s *fleetStats) int64 { return s.written.Load() }),
		l.total(func(s *fleetStats) int64 { return s.reads.Load() }),
		l.total(func(s *fleetStats) int64 { return s.hits.Load() }),
		l.total(func(s *fleetStats) int64 { return s.straddled.Load() }),
		l.total(func(s *fleetStats) int64 { return s.violations.Load() }),
		l.total(func(s *fleetStats) int64 { return s.future.Load() }))
}

// fleetRollouts is how many rollouts the fencing drill makes.
const fleetRollouts = 200

// TestDrillFleetFencing: three daemons serve peer-filled GETs and SETs of
// {clip}kI keys under load while clip is rolled out 200 times (v1..v200),
// through each daemon in turn. No reader ever gets a value of a version
// older than its daemon reported before the GET, and the readers' misses
// were filled by peers (peer_hits > 0). Without the version check on peer
// replies (tier.Hybrid.Fill's tag comparison) readers see old versions:
// a daemon that applied a rollout asks an owner that has not yet.
func TestDrillFleetFencing(t *testing.T) {
	ns := newNATSServer(t, nil)
	a := fleetDaemon(t, "node-a", ns.url())
	b := fleetDaemon(t, "node-b", ns.url())
	c := fleetDaemon(t, "node-c", ns.url())
	all := []*daemon{a, b, c}
	waitPeersLive(t, 2, all...)
	start := time.Now()
	const keys = 60
	l := newFleetLoad(t, keys, 2, 3, all...)
	l.rollout(1, a, all...)
	done := 1
	for n := 2; n <= fleetRollouts && !l.failed(); n++ {
		l.waitGrow("values written", keys/6, func(s *fleetStats) int64 { return s.written.Load() })
		l.rollout(n, all[n%len(all)], all...)
		done = n
	}
	l.waitGrow("GETs", 200, func(s *fleetStats) int64 { return s.reads.Load() })
	l.stop()
	hits, fenced := sumInfo(t, "peer_hits", all...), sumInfo(t, "peer_fenced", all...)
	t.Logf("fleet fencing drill: %d rollouts in %v; %s; peer_hits %d, peer_fenced %d, peer_sets_forwarded %d",
		done, time.Since(start).Round(time.Millisecond), l.summary(), hits, fenced, sumInfo(t, "peer_sets_forwarded", all...))
	if hits == 0 {
		t.Errorf("no peer hits: the drill did not exercise peer fill")
	}
}

// ownedKey returns a key made of prefix that ring gives to id.
func ownedKey(t testing.TB, ring *peer.Ring, id, prefix string) string {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprintf("%s:%d", prefix, i)
		if m, _ := ring.Owner([]byte(k)); m.ID == id {
			return k
		}
	}
	t.Fatalf("no key of %s", id)
	return ""
}

// TestDrillFleetOwnerKill: three daemons (--peer-timeout 200ms) under the
// fleet load, a third of whose keys each owns; one is killed with
// SIGKILL. The others' clients get no error (a miss is fine) and no stale
// read, and no GET that starts after the kill takes longer than
// --peer-timeout + 5 ms (the bound is after the breaker opens;
// the drill holds every GET from the kill on to it, the one that opens
// the breaker included). A rollout happens while the daemon is dead. The
// daemon restarted on its data directory rejoins (the others count two
// live peers again) and serves from its L2 a key it owned and stored
// before the kill, which no other daemon ever read.
func TestDrillFleetOwnerKill(t *testing.T) {
	const timeout = 200 * time.Millisecond
	bound := timeout + 5*time.Millisecond
	ns := newNATSServer(t, nil)
	extra := []string{"--peer-timeout", timeout.String(), "--write-policy", "through", "--flush-interval", "100ms"}
	a := fleetDaemon(t, "node-a", ns.url(), extra...)
	b := fleetDaemon(t, "node-b", ns.url(), extra...)
	c := fleetDaemon(t, "node-c", ns.url(), extra...)
	all := []*daemon{a, b, c}
	waitPeersLive(t, 2, all...)
	ctx := context.Background()
	reads := func(s *fleetStats) int64 { return s.reads.Load() }
	start := time.Now()

	l := newFleetLoad(t, 90, 2, 3, all...)
	l.rollout(1, a, all...)
	l.waitGrow("GETs", 300, reads)

	// The witness: a key node-c owns, written there only, never read
	// before the kill, and on disk (write-through) when it happens.
	witness := ownedKey(t, fleetRing(all...), c.name, "witness")
	want := NewValue([]byte(witness), 1, 4096)
	if err := c.admin.Set(ctx, witness, want, 0).Err(); err != nil {
		t.Fatalf("SET %s on %s: %v", witness, c.name, err)
	}
	l.rollout(2, b, all...)
	l.waitGrow("GETs", 300, reads)
	waitFor(t, 30*time.Second, c.name+"'s writes to reach its L2", func() bool { return c.infoInt("pending_write_bytes") == 0 })

	failures := func() int64 { return sumInfo(t, "peer_errors", a, b) + sumInfo(t, "peer_timeouts", a, b) }
	failedBefore := failures()
	l.dies(c)
	killed := c.kill()
	l.since.Store(killed.UnixNano())
	l.halt(c)
	waitPeersLive(t, 1, a, b) // their breakers opened
	breaker := time.Since(killed)
	waitPeersField(t, "peers", 1, a, b) // its member entry expired: its keys moved
	gone := time.Since(killed)
	l.waitGrow("GETs", 300, reads)
	l.rollout(3, a, a, b)
	l.waitGrow("GETs", 300, reads)
	l.since.Store(1 << 62) // the restart is not part of the measure
	failed := failures() - failedBefore
	down := time.Since(killed)

	c.start()
	waitPeersField(t, "peers", 2, all...)
	waitPeersLive(t, 2, all...)
	rejoined := time.Since(killed) - down
	got, err := a.admin.Get(ctx, witness).Bytes()
	if err != nil {
		t.Errorf("GET %s on %s after %s's restart: %v; want the value %s stored before the kill", witness, a.name, c.name, err, c.name)
	} else if seq, err := CheckValue([]byte(witness), got); err != nil || seq != 1 {
		t.Errorf("GET %s on %s after %s's restart: write %d, %v; want write 1", witness, a.name, c.name, seq, err)
	}
	l.run(c)
	l.rollout(4, c, all...)
	l.waitGrow("GETs", 300, reads)
	l.stop()

	lats := l.lats
	slices.Sort(lats)
	var slow int
	for _, d := range lats {
		if d > bound {
			slow++
		}
	}
	var p99, slowest time.Duration
	if n := len(lats); n > 0 {
		p99, slowest = lats[n*99/100], lats[n-1]
	}
	t.Logf("fleet owner-kill drill in %v: %s killed after %v, the others' breakers open %v later, its member entry gone %v later, restarted after %v (rejoined in %v); %d peer failures (errors and timeouts) on the others; %d GETs started after the kill while it was down: p99 %v, slowest %v, %d slower than %v; the witness key was served from its L2; %s; peer_hits %d",
		time.Since(start).Round(time.Millisecond), c.name, killed.Sub(start).Round(time.Millisecond), breaker.Round(time.Millisecond), gone.Round(time.Millisecond),
		down.Round(time.Millisecond), rejoined.Round(time.Millisecond), failed, len(lats), p99, slowest, slow, bound, l.summary(), sumInfo(t, "peer_hits", all...))
	if slow > 0 {
		t.Errorf("%d GETs after the kill took longer than --peer-timeout + 5ms (%v); the slowest %v", slow, bound, slowest)
	}
	if len(lats) == 0 {
		t.Errorf("no GET measured after the kill")
	}
}
