package invalidation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/tier"
)

// trio starts daemons a, b and c, each connected to a different node of
// the cluster, on bucket (3 replicas), and waits until they are synced.
func trio(t *testing.T, cl *natstest.Cluster, bucket string, tweak func(*Options)) []*daemon {
	t.Helper()
	var ds []*daemon
	for i, name := range []string{"a", "b", "c"} {
		o := testOptions(t, cl.URL(i), bucket)
		o.Replicas = 3
		if tweak != nil {
			tweak(&o)
		}
		ds = append(ds, newDaemon(t, name, o))
	}
	for _, d := range ds {
		d.waitSynced()
	}
	return ds
}

// TestThreeNodes runs three daemons on a three-node NATS cluster, each
// connected to its own node; the subtests share the cluster (it takes
// seconds to form) but not the buckets or the daemons. The fault subtest
// runs last: it stops a node for good.
func TestThreeNodes(t *testing.T) {
	cl := natstest.RunCluster(t, 3)

	t.Run("Rollout", func(t *testing.T) {
		ds := trio(t, cl, "rollout", nil)
		a, b, c := ds[0], ds[1], ds[2]
		r1 := a.rollout("clip", "v1")
		for _, d := range ds {
			d.waitModel("clip", "v1")
		}
		writeUnder(t, "v1", ds...)

		r2 := a.rollout("clip", "v2")
		if r2 <= r1 {
			t.Fatalf("revisions %d then %d", r1, r2)
		}
		// A answers right as soon as Rollout returned; B and C soon.
		if err := a.freshAt("v1", "v2"); err != nil {
			t.Fatal(err)
		}
		for _, d := range []*daemon{b, c} {
			testutil.CheckFor(t, 10*time.Second, func() error { return d.freshAt("v1", "v2") })
		}
		for _, d := range ds {
			testutil.CheckFor(t, 5*time.Second, func() error {
				st, hs := d.c.Status(), d.cache.Stats()
				if !st.NATSConnected || hs.ModelsRevision != r2 || hs.ModelsKnown != 1 || hs.RolloutsApplied != 2 {
					return fmt.Errorf("%s: Status = %+v, registry revision %d, known %d, applied %d",
						d.name, st, hs.ModelsRevision, hs.ModelsKnown, hs.RolloutsApplied)
				}
				if !slices.Contains(st.Fields(), [2]string{"models_bucket_revision", strconv.FormatUint(r2, 10)}) {
					return fmt.Errorf("%s: Status.Fields = %v", d.name, st.Fields())
				}
				return nil
			})
		}
	})

	t.Run("RevisionsPurgeWaitApplied", func(t *testing.T) {
		// A TTL long enough that a frozen member stays live while a loaded
		// machine answers WaitApplied.
		ds := trio(t, cl, "purge", func(o *Options) { o.MemberTTL = 5 * time.Second })
		a, b, c := ds[0], ds[1], ds[2]
		ctx := context.Background()

		revs := []uint64{
			a.rollout("clip", "v1"),
			b.rollout("clip", "v2"),
			c.rollout("other", "v1"),
		}
		for _, d := range ds {
			d.waitModel("clip", "v2")
			d.mustSet("{clip}k", "old")
			d.mustSet("{clip@v2}k", "old")
		}
		revs = append(revs, a.purge("clip"))
		if !slices.IsSorted(revs) || revs[0] == revs[len(revs)-1] {
			t.Fatalf("revisions do not increase: %v", revs)
		}
		for _, d := range ds {
			testutil.CheckFor(t, 10*time.Second, func() error {
				if err := d.hasModel("clip", ""); err != nil {
					return err
				}
				if err := d.wantMissing("{clip}k"); err != nil {
					return err
				}
				return d.wantMissing("{clip@v2}k")
			})
			if err := d.hasModel("other", "v1"); err != nil {
				t.Fatal(err)
			}
		}
		// After a purge, any version may be written again.
		a.mustSet("{clip@v5}k", "new")

		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if missing, err := a.c.WaitApplied(wctx, revs[3]); err != nil || missing != nil {
			t.Fatalf("WaitApplied = %v, %v; want all applied", missing, err)
		}
		// Every daemon announces itself within a heartbeat or two.
		testutil.CheckFor(t, 10*time.Second, func() error {
			members, err := a.c.Members(ctx)
			if err != nil || len(members) != 3 {
				return fmt.Errorf("members = %+v, %v", members, err)
			}
			for i, m := range members {
				if m.Node != ds[i].name || !m.NATSConnected || m.Version != "dev" || m.Applied < revs[3] || time.Since(m.Time) > time.Minute {
					return fmt.Errorf("member %d = %+v", i, m)
				}
			}
			return nil
		})

		// C freezes: its member entry lives on until MemberTTL, but it
		// applies nothing.
		c.c.stopLoops()
		r := a.rollout("clip", "v3")
		wctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		missing, err := a.c.WaitApplied(wctx, r)
		if !errors.Is(err, context.DeadlineExceeded) || !slices.Equal(missing, []string{"c"}) {
			t.Fatalf("WaitApplied with c frozen = %v, %v; want [c]", missing, err)
		}
		// Past the TTL, c is no longer a live member.
		wctx, cancel = context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if missing, err := a.c.WaitApplied(wctx, r); err != nil || missing != nil {
			t.Fatalf("WaitApplied after c's TTL = %v, %v", missing, err)
		}
		// A daemon that closes leaves at once.
		b.stop()
		testutil.CheckFor(t, 5*time.Second, func() error {
			ms, err := a.c.Members(ctx)
			if err != nil {
				return err
			}
			if len(ms) != 1 || ms[0].Node != "a" {
				return fmt.Errorf("members %+v, want only a", ms)
			}
			return nil
		})
	})

	t.Run("Propagation", func(t *testing.T) {
		ds := trio(t, cl, "propagation", nil)
		a := ds[0]
		const n = 50
		var lat []time.Duration
		prev := ""
		for i := range n {
			v := fmt.Sprintf("v%d", i)
			a.rollout("clip", v)
			start := time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, d := range ds[1:] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					deadline := start.Add(10 * time.Second)
					for time.Now().Before(deadline) {
						// The first stale-free answer: the old version's
						// entries are gone and the new one is accepted.
						var se *tier.StaleError
						if cur, _ := d.cache.Model("clip"); cur == v && (prev == "" || errors.As(d.cache.CheckWrite([]byte("{clip@"+prev+"}x")), &se)) {
							mu.Lock()
							lat = append(lat, time.Since(start))
							mu.Unlock()
							return
						}
						time.Sleep(50 * time.Microsecond)
					}
				}()
			}
			wg.Wait()
			prev = v
		}
		if len(lat) != 2*n {
			t.Fatalf("%d of %d propagations observed", len(lat), 2*n)
		}
		slices.Sort(lat)
		t.Logf("rollout propagation to the other daemons over %d rollouts: p50 %v, p99 %v, max %v",
			n, lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	})

	t.Run("Faults", func(t *testing.T) {
		ds := trio(t, cl, "faults", nil)
		a, b, c := ds[0], ds[1], ds[2]
		seq := 0
		next := func() string { seq++; return fmt.Sprintf("v%04d", seq) }
		allAt := func(v string) {
			t.Helper()
			for _, d := range ds {
				d.waitModel("clip", v)
			}
		}
		v := next()
		a.rollout("clip", v)
		allAt(v)

		stop := make(chan struct{})
		var checks atomic.Int64
		var wg sync.WaitGroup
		violations := make(chan string, 100)
		for _, d := range ds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				staleChecker(d, stop, &checks, violations)
			}()
		}

		// 1. The node a is connected to restarts.
		phase := time.Now()
		b.rolloutEventually("clip", next())
		cl.Restart(0)
		t.Logf("node 1 restarted and the cluster ready in %v", time.Since(phase))
		v = next()
		a.rolloutEventually("clip", v)
		allAt(v)
		t.Logf("phase 1 (restart) done in %v", time.Since(phase))

		// 2. The node c is connected to dies for good: c moves to another
		// node it learnt of.
		phase = time.Now()
		cl.Stop(2)
		v = next()
		a.rolloutEventually("clip", v)
		allAt(v)
		v = next()
		c.rolloutEventually("clip", v)
		allAt(v)
		t.Logf("phase 2 (node down) done in %v", time.Since(phase))

		close(stop)
		wg.Wait()
		close(violations)
		for msg := range violations {
			t.Error(msg)
		}
		if n := checks.Load(); n < 100 {
			t.Fatalf("only %d checks ran", n)
		}
		t.Logf("%d reads checked during the faults, no stale answer", checks.Load())
	})
}

// staleChecker reads and writes {clip}… keys on d until stop is closed. A
// read is stale if it returns a record written under version X after the
// daemon had observed the registry at a later version Y (versions increase
// with each rollout of the test: v0001, v0002, …). Versions are compared
// by their sequence number.
func staleChecker(d *daemon, stop chan struct{}, checks *atomic.Int64, violations chan<- string) {
	num := func(v string) int { n, _ := strconv.Atoi(v[1:]); return n }
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		key := []byte(fmt.Sprintf("{clip}k%d", i%16))
		observed, ok := d.cache.Model("clip")
		if !ok {
			continue
		}
		r, err := d.cache.Get(key)
		switch {
		case errors.Is(err, tier.ErrNotFound):
		case err != nil:
			violations <- fmt.Sprintf("%s: GET %s: %v", d.name, key, err)
			return
		default:
			h, err := r.Header()
			if err != nil {
				violations <- fmt.Sprintf("%s: GET %s: bad record: %v", d.name, key, err)
				return
			}
			if num(h.Tag) < num(observed) {
				violations <- fmt.Sprintf("%s: GET %s returned a record written under %s after observing %s", d.name, key, h.Tag, observed)
				return
			}
		}
		checks.Add(1)
		_ = d.cache.SetValue(key, []byte(observed), 0)
		time.Sleep(100 * time.Microsecond) // leave the CPUs to NATS
	}
}
