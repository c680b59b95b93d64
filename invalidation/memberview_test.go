package invalidation

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/internal/testutil"
)

// render writes members as "node=peer" words, in their order.
func render(ms []Member) string {
	words := make([]string, len(ms))
	for i, m := range ms {
		words[i] = m.Node + "=" + m.Peer
	}
	return strings.Join(words, " ")
}

// wantView waits until d's members view is want (see render).
func wantView(t testing.TB, d *daemon, want string, within time.Duration) {
	t.Helper()
	testutil.CheckFor(t, within, func() error {
		if got := render(d.c.LiveMembers()); got != want {
			return fmt.Errorf("%s sees %q, want %q", d.name, got, want)
		}
		return nil
	})
}

// peerDaemon starts a daemon that serves peers at addr (so it keeps the
// members view).
func peerDaemon(t testing.TB, name, addr string, opts Options) *daemon {
	t.Helper()
	opts.PeerAddr = addr
	return newDaemon(t, name, opts)
}

// calls records the calls of an OnMembersChange callback.
type calls struct {
	mu  sync.Mutex // guards got
	got []string   // each call's members, rendered
}

func (c *calls) record(ms []Member) {
	c.mu.Lock()
	c.got = append(c.got, render(ms))
	c.mu.Unlock()
}

func (c *calls) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// bucketEvents records every entry a plain watch of a bucket delivers, as
// "op key" (PUT, DEL, PURGE), the way any other client would see them.
type bucketEvents struct {
	mu     sync.Mutex // guards events
	events []string
}

func watchBucket(t testing.TB, js jetstream.JetStream, bucket string) *bucketEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ev := &bucketEvents{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			ev.mu.Lock()
			ev.events = append(ev.events, e.Operation().String()+" "+e.Key())
			ev.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		stopWatcher(w)
		<-done
	})
	return ev
}

// has reports whether event ("KeyValuePurgeOp b") was delivered.
func (ev *bucketEvents) has(event string) bool {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return slices.Contains(ev.events, event)
}

func (ev *bucketEvents) all() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return slices.Clone(ev.events)
}

// TestMembersView: daemons that serve peers see each other with their
// peer addresses, and a daemon that does not with an empty one; a daemon
// that joins appears, one that closes leaves at once (its entry is
// deleted, long before its TTL), and OnMembersChange follows joins and
// leaves but not heartbeats.
func TestMembersView(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	opts := testOptions(t, srv.ClientURL(), "models")
	opts.MemberTTL = 30 * time.Second // a drop within seconds is not an expiry
	seen := &calls{}
	oa := opts
	oa.OnMembersChange = seen.record
	a := peerDaemon(t, "a", "127.0.0.1:7001", oa)
	b := peerDaemon(t, "b", "127.0.0.1:7002", opts)
	c := newDaemon(t, "c", opts) // serves no peers
	const all = "a=127.0.0.1:7001 b=127.0.0.1:7002 c="
	wantView(t, a, all, 10*time.Second)
	wantView(t, b, all, 10*time.Second)
	if ms := c.c.LiveMembers(); ms != nil {
		t.Fatalf("c keeps no view, yet LiveMembers = %+v", ms)
	}
	testutil.WaitFor(t, 5*time.Second, "OnMembersChange with every member", func() bool {
		got := seen.list()
		return len(got) > 0 && got[len(got)-1] == all
	})

	// LiveMembers is a copy: changing it changes nothing.
	ms := a.c.LiveMembers()
	ms[0].Peer = "elsewhere:1"
	if got := render(a.c.LiveMembers()); got != all {
		t.Fatalf("a's view changed with the caller's copy: %q", got)
	}

	// Heartbeats refresh Applied and Time without a call: wait for three
	// of b's, as a sees them.
	calls := len(seen.list())
	bTime := func() time.Time {
		for _, m := range a.c.LiveMembers() {
			if m.Node == "b" {
				return m.Time
			}
		}
		return time.Time{}
	}
	since := bTime()
	testutil.WaitFor(t, 10*time.Second, "three heartbeats of b in a's view", func() bool {
		return bTime().Sub(since) >= 3*opts.HeartbeatInterval
	})
	if got := seen.list(); len(got) != calls {
		t.Fatalf("OnMembersChange called for heartbeats: %q", got[calls:])
	}
	// The applied revision moves with a rollout.
	rev := a.rollout("clip", "v1")
	testutil.CheckFor(t, 10*time.Second, func() error {
		for _, m := range a.c.LiveMembers() {
			if m.Applied < rev {
				return fmt.Errorf("a sees %s at revision %d, want %d", m.Node, m.Applied, rev)
			}
		}
		return nil
	})

	// A daemon joins.
	d := peerDaemon(t, "d", "127.0.0.1:7004", opts)
	const withD = all + " d=127.0.0.1:7004"
	wantView(t, a, withD, 10*time.Second)
	wantView(t, b, withD, 10*time.Second)
	wantView(t, d, withD, 10*time.Second)

	// One closes: it leaves every view at once, not after its 30s TTL.
	start := time.Now()
	c.stop()
	const withoutC = "a=127.0.0.1:7001 b=127.0.0.1:7002 d=127.0.0.1:7004"
	for _, x := range []*daemon{a, b, d} {
		wantView(t, x, withoutC, 5*time.Second)
	}
	t.Logf("a closed daemon left the views in %v", time.Since(start).Round(time.Millisecond))
	testutil.WaitFor(t, 5*time.Second, "OnMembersChange without c", func() bool {
		got := seen.list()
		return got[len(got)-1] == withoutC
	})
	got := seen.list()
	if !slices.Contains(got, withD) {
		t.Fatalf("OnMembersChange calls %q lack the one with d", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("OnMembersChange called twice with the same members: %q", got)
		}
	}
}

// TestMembersViewExpiry: a daemon cut off from NATS stops heartbeating and
// leaves the others' views once its entry expires; the bucket tells
// watches of the expiry with a marker (a purge), which the view applies.
// The cut-off daemon keeps its view meanwhile; back, it rebuilds it with
// what happened while it was away, and the others see it again. After a
// restart of the NATS server (the memory-backed members bucket is gone)
// the views are rebuilt too.
func TestMembersViewExpiry(t *testing.T) {
	storeDir := t.TempDir()
	srv := natstest.RunServer(t, &natsserver.Options{StoreDir: storeDir})
	url := srv.ClientURL()
	p := natstest.Proxy(t, url)
	opts := testOptions(t, url, "models") // MemberTTL 2s, heartbeats 200ms
	a := peerDaemon(t, "a", "127.0.0.1:7001", opts)
	ob := opts
	ob.URLs = p.URL()
	b := peerDaemon(t, "b", "127.0.0.1:7002", ob)
	c := newDaemon(t, "c", opts)
	const all = "a=127.0.0.1:7001 b=127.0.0.1:7002 c="
	wantView(t, a, all, 10*time.Second)
	wantView(t, b, all, 10*time.Second)

	js := connect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, "models-members")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != opts.MemberTTL || st.LimitMarkerTTL() != opts.MemberTTL {
		t.Fatalf("members bucket TTL %v, marker TTL %v; want %v and %v", st.TTL(), st.LimitMarkerTTL(), opts.MemberTTL, opts.MemberTTL)
	}
	events := watchBucket(t, js, "models-members")

	p.Cut()
	start := time.Now()
	wantView(t, a, "a=127.0.0.1:7001 c=", 3*opts.MemberTTL+5*time.Second)
	t.Logf("a cut-off daemon left the view %v after the cut (MemberTTL %v)", time.Since(start).Round(time.Millisecond), opts.MemberTTL)
	// The server replaced b's expired entry with a marker: a purge to a
	// watch. Nobody deleted it (b did not close).
	testutil.WaitFor(t, 5*time.Second, "the expiry marker of b", func() bool { return events.has("KeyValuePurgeOp b") })
	if events.has("KeyValueDeleteOp b") {
		t.Fatalf("b's entry was deleted, not expired: %q", events.all())
	}
	// Cut off, b serves with the view it had.
	if got := render(b.c.LiveMembers()); got != all {
		t.Fatalf("cut-off b sees %q, want %q", got, all)
	}

	// While b is away, c leaves and d joins.
	c.stop()
	d := peerDaemon(t, "d", "127.0.0.1:7004", opts)
	const now = "a=127.0.0.1:7001 d=127.0.0.1:7004"
	wantView(t, a, now, 10*time.Second)
	if got := render(b.c.LiveMembers()); got != all {
		t.Fatalf("cut-off b sees %q, want %q", got, all)
	}

	p.Restore()
	const back = "a=127.0.0.1:7001 b=127.0.0.1:7002 d=127.0.0.1:7004"
	for _, x := range []*daemon{a, b, d} {
		wantView(t, x, back, 15*time.Second)
	}

	// The NATS server restarts on its port and store: the memory-backed
	// members bucket is gone, and recreated by the daemons.
	port := srv.Addr().(*net.TCPAddr).Port
	srv.Shutdown()
	srv.WaitForShutdown()
	natstest.RunServer(t, &natsserver.Options{Port: port, StoreDir: storeDir})
	// The views follow the new bucket: e joins, d leaves.
	e := peerDaemon(t, "e", "127.0.0.1:7005", opts)
	const withE = back + " e=127.0.0.1:7005"
	for _, x := range []*daemon{a, b, d, e} {
		wantView(t, x, withE, 30*time.Second)
	}
	d.stop()
	const after = "a=127.0.0.1:7001 b=127.0.0.1:7002 e=127.0.0.1:7005"
	for _, x := range []*daemon{a, b, e} {
		wantView(t, x, after, 10*time.Second)
	}
}

// TestMembersViewWithoutMarkers: a members bucket without limit markers
// (created by an older daemon, or on a NATS server before 2.11) removes an
// expired entry without telling watches; the view drops a member it has
// not seen refreshed for the bucket's TTL.
func TestMembersViewWithoutMarkers(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	p := natstest.Proxy(t, srv.ClientURL())
	js := connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := testOptions(t, srv.ClientURL(), "models")
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "models-members", History: 1,
		TTL: opts.MemberTTL, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	events := watchBucket(t, js, "models-members")
	a := peerDaemon(t, "a", "127.0.0.1:7001", opts)
	ob := opts
	ob.URLs = p.URL()
	b := peerDaemon(t, "b", "127.0.0.1:7002", ob)
	const all = "a=127.0.0.1:7001 b=127.0.0.1:7002"
	wantView(t, a, all, 10*time.Second)
	wantView(t, b, all, 10*time.Second)

	p.Cut()
	start := time.Now()
	// The server forgets b's entry once it expires...
	testutil.CheckFor(t, 3*opts.MemberTTL+5*time.Second, func() error {
		ms, err := MembersIn(ctx, js, "models-members")
		if err != nil {
			return err
		}
		if got := render(ms); got != "a=127.0.0.1:7001" {
			return fmt.Errorf("members %q", got)
		}
		return nil
	})
	gone := time.Since(start)
	// ... and so does a's view, by itself.
	wantView(t, a, "a=127.0.0.1:7001", 3*opts.MemberTTL)
	t.Logf("without markers: b's entry expired %v after the cut, and left a's view %v after it",
		gone.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	// A watch was told nothing of the expiry.
	for _, e := range events.all() {
		if strings.HasSuffix(e, " b") && !strings.HasPrefix(e, "KeyValuePutOp") {
			t.Fatalf("a bucket without markers delivered %q: %q", e, events.all())
		}
	}

	p.Restore()
	wantView(t, a, all, 15*time.Second)
	wantView(t, b, all, 15*time.Second)
}

// TestMembersViewBucketDeleted: the members bucket is deleted under
// connected daemons (nats kv del); they recreate it, and their views
// follow the new one.
func TestMembersViewBucketDeleted(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	opts := testOptions(t, srv.ClientURL(), "models")
	a := peerDaemon(t, "a", "127.0.0.1:7001", opts)
	b := peerDaemon(t, "b", "127.0.0.1:7002", opts)
	c := peerDaemon(t, "c", "127.0.0.1:7003", opts)
	const all = "a=127.0.0.1:7001 b=127.0.0.1:7002 c=127.0.0.1:7003"
	for _, x := range []*daemon{a, b, c} {
		wantView(t, x, all, 10*time.Second)
	}
	js := connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := js.DeleteKeyValue(ctx, "models-members"); err != nil {
		t.Fatal(err)
	}
	c.stop() // its delete finds no bucket, or the new one
	d := peerDaemon(t, "d", "127.0.0.1:7004", opts)
	const now = "a=127.0.0.1:7001 b=127.0.0.1:7002 d=127.0.0.1:7004"
	for _, x := range []*daemon{a, b, d} {
		wantView(t, x, now, 30*time.Second)
	}
	t.Logf("views caught up with the recreated bucket in %v", time.Since(start).Round(time.Millisecond))
}
