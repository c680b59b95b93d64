package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/lease"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/goleak"
)

// leaseGet runs LEASE.GET and returns its status and value (nil for a
// miss's nil).
func leaseGet(t testing.TB, c *redis.Client, key string, ttlMs, waitMs int) (string, any) {
	t.Helper()
	args := []any{"LEASE.GET", key, ttlMs}
	if waitMs >= 0 {
		args = append(args, "WAIT", waitMs)
	}
	v, err := c.Do(context.Background(), args...).Slice()
	if err != nil {
		t.Fatalf("LEASE.GET %s: %v", key, err)
	}
	if len(v) != 2 {
		t.Fatalf("LEASE.GET %s: %d elements, want 2: %v", key, len(v), v)
	}
	return v[0].(string), v[1]
}

// leaseInfo reads the INFO lease counters.
func leaseInfo(t testing.TB, c *redis.Client) map[string]string {
	t.Helper()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, f := range []string{"leases_granted", "lease_waits", "lease_wakeups", "leases_expired", "leases_active", "lease_waiters"} {
		v, ok := infoField(info, f)
		if !ok {
			t.Fatalf("INFO stats has no %s:\n%s", f, info)
		}
		m[f] = v
	}
	return m
}

// TestLeaseStampede: 20 clients miss one key at once; one gets the lease,
// and the 19 others get the value when it is SET, long before their WAIT.
func TestLeaseStampede(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	const n = 20
	const wait = 60_000 // ms: the test would time out long before
	type answer struct {
		status string
		value  any
		err    error
	}
	answers := make(chan answer, n)
	start := make(chan struct{})
	for range n {
		c := ts.client(t, &redis.Options{Protocol: 2, ReadTimeout: 2 * time.Minute})
		if err := c.Ping(ctx).Err(); err != nil { // connected before the start
			t.Fatal(err)
		}
		go func() {
			<-start
			v, err := c.Do(ctx, "LEASE.GET", "{clip@v1}prompt", 30_000, "WAIT", wait).Slice()
			a := answer{err: err}
			if err == nil {
				a.status, a.value = v[0].(string), v[1]
			}
			answers <- a
		}()
	}
	close(start)
	// The holder's answer comes first: the others are waiting.
	first := <-answers
	if first.err != nil || first.status != "lease" {
		t.Fatalf("first answer %+v, want a lease", first)
	}
	token := first.value.(string)
	obs := ts.client(t, &redis.Options{Protocol: 2})
	testutil.WaitFor(t, 30*time.Second, "19 waiters", func() bool {
		return leaseInfo(t, obs)["lease_waiters"] == "19"
	})
	// A wrong token is refused; the holder's is not used: the SET wakes all.
	if n, err := obs.Do(ctx, "LEASE.RELEASE", "{clip@v1}prompt", "not-"+token).Int(); err != nil || n != 0 {
		t.Fatalf("LEASE.RELEASE with a wrong token = %d, %v; want 0", n, err)
	}
	if err := obs.Set(ctx, "{clip@v1}prompt", "embedding", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for range n - 1 {
		a := <-answers
		if a.err != nil || a.status != "hit" || a.value != "embedding" {
			t.Fatalf("waiter got %+v, want hit embedding", a)
		}
	}
	m := leaseInfo(t, obs)
	if m["leases_granted"] != "1" || m["lease_waits"] != "19" || m["lease_wakeups"] != "19" || m["leases_active"] != "0" || m["lease_waiters"] != "0" {
		t.Errorf("INFO lease counters %v", m)
	}
	// A completed lease is gone: its token no longer releases anything,
	// and the next LEASE.GET is a hit.
	if n, _ := obs.Do(ctx, "LEASE.RELEASE", "{clip@v1}prompt", token).Int(); n != 0 {
		t.Errorf("LEASE.RELEASE after SET = %d, want 0", n)
	}
	if st, v := leaseGet(t, obs, "{clip@v1}prompt", 1000, -1); st != "hit" || v != "embedding" {
		t.Errorf("LEASE.GET after SET = %s %v", st, v)
	}
}

// TestLeaseHandOver: an expired lease passes to the first waiter; RELEASE
// passes it at once; WAIT running out answers ["miss", nil].
func TestLeaseHandOver(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	a := ts.client(t, &redis.Options{Protocol: 2})
	b := ts.client(t, &redis.Options{Protocol: 2, ReadTimeout: time.Minute})
	obs := ts.client(t, &redis.Options{Protocol: 2})

	// Expiry: A holds a 200 ms lease and never SETs; B, waiting, takes it over.
	st, tokA := leaseGet(t, a, "k1", 200, -1)
	if st != "lease" {
		t.Fatalf("first LEASE.GET: %s", st)
	}
	if st, v := leaseGet(t, obs, "k1", 1000, -1); st != "miss" || v != nil {
		t.Fatalf("LEASE.GET without WAIT while held = %s %v, want miss nil", st, v)
	}
	st, tokB := leaseGet(t, b, "k1", 60_000, 30_000)
	if st != "lease" || tokB == tokA {
		t.Fatalf("waiter after expiry: %s %v (holder had %v)", st, tokB, tokA)
	}
	if m := leaseInfo(t, obs); m["leases_expired"] != "1" || m["leases_granted"] != "2" {
		t.Errorf("after expiry: %v", m)
	}
	if n, _ := obs.Do(ctx, "LEASE.RELEASE", "k1", tokA).Int(); n != 0 {
		t.Error("the expired token still releases")
	}

	// Release: C waits behind B; B releases; C holds the lease at once.
	c := ts.client(t, &redis.Options{Protocol: 2, ReadTimeout: time.Minute})
	got := make(chan []any, 1)
	go func() {
		v, _ := c.Do(ctx, "LEASE.GET", "k1", 60_000, "WAIT", 60_000).Slice()
		got <- v
	}()
	testutil.WaitFor(t, 30*time.Second, "C waiting", func() bool { return leaseInfo(t, obs)["lease_waiters"] == "1" })
	if n, err := b.Do(ctx, "LEASE.RELEASE", "k1", tokB).Int(); err != nil || n != 1 {
		t.Fatalf("LEASE.RELEASE by the holder = %d, %v; want 1", n, err)
	}
	v := <-got
	if len(v) != 2 || v[0] != "lease" || v[1] == tokB {
		t.Fatalf("C after release: %v", v)
	}
	tokC := v[1].(string)

	// WAIT running out: D waits 50 ms behind C and gets a miss.
	if st, v := leaseGet(t, obs, "k1", 1000, 50); st != "miss" || v != nil {
		t.Errorf("WAIT ran out: %s %v, want miss nil", st, v)
	}
	// C's SET completes its lease.
	if err := c.Set(ctx, "k1", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _ := obs.Do(ctx, "LEASE.RELEASE", "k1", tokC).Int(); n != 0 {
		t.Error("a completed lease still releases")
	}
}

// TestLeaseMget: hits and leases mixed in one reply; a key leased by
// another client is waited for and answered when it is SET.
func TestLeaseMget(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	a := ts.client(t, &redis.Options{Protocol: 2})
	b := ts.client(t, &redis.Options{Protocol: 2, ReadTimeout: time.Minute})
	if err := a.Set(ctx, "hit1", "one", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if st, _ := leaseGet(t, a, "held", 60_000, -1); st != "lease" {
		t.Fatal("no lease on held")
	}
	// No wait: hit, lease granted, miss (held by a).
	v, err := b.Do(ctx, "LEASE.MGET", 60_000, "WAIT", 0, "hit1", "fresh", "held").Slice()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"hit one", "lease", "miss <nil>"}
	for i, p := range v {
		pair := p.([]any)
		got := fmt.Sprint(pair[0])
		if pair[0] != "lease" {
			got += " " + fmt.Sprint(pair[1])
		}
		if got != want[i] {
			t.Errorf("LEASE.MGET[%d] = %v, want %s", i, pair, want[i])
		}
	}
	// With a wait: "held" is answered by a's SET.
	got := make(chan []any, 1)
	go func() {
		v, _ := b.Do(ctx, "LEASE.MGET", 60_000, "WAIT", 60_000, "hit1", "held").Slice()
		got <- v
	}()
	testutil.WaitFor(t, 30*time.Second, "b waiting", func() bool { return leaseInfo(t, a)["lease_waiters"] == "1" })
	if err := a.MSet(ctx, "held", "two").Err(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if fmt.Sprint(r) != "[[hit one] [hit two]]" {
		t.Errorf("LEASE.MGET with WAIT = %v", r)
	}
}

// TestLeaseErrors: bad arguments, and -STALE for a key of an old version.
func TestLeaseErrors(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	for _, tc := range []struct{ cmd, want string }{
		{"LEASE.GET k 0", "-ERR invalid ttl-ms"},
		{"LEASE.GET k -5", "-ERR invalid ttl-ms"},
		{"LEASE.GET k x", "-ERR invalid ttl-ms"},
		{"LEASE.GET k 100 WAIT -1", "-ERR invalid WAIT"},
		{"LEASE.GET k 100 WAITS 5", "-ERR syntax error"},
		{"LEASE.GET k 100 WAIT", "-ERR syntax error"},
		{"LEASE.GET k", "-ERR wrong number of arguments for 'lease.get' command"},
		{"LEASE.MGET 100 WAIT 0", "-ERR wrong number of arguments for 'lease.mget' command"},
		{"LEASE.MGET 100 NOWAIT 0 k", "-ERR syntax error"},
		{"LEASE.RELEASE k", "-ERR wrong number of arguments for 'lease.release' command"},
		{"MODEL.ROLLOUT clip v2", ":"},
		{"LEASE.GET {clip@v1}p 100", "-STALE clip is at v2"},
		{"LEASE.MGET 100 WAIT 0 {clip@v2}p {clip@v1}p", "-STALE clip is at v2"},
	} {
		if got := c.do(strings.Fields(tc.cmd)...); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s = %q, want %q…", tc.cmd, got, tc.want)
		}
	}
	// The refused MGET granted nothing: the current version's key is free.
	if got := c.do("LEASE.GET", "{clip@v2}p", "100"); !strings.Contains(got, "lease") {
		t.Errorf("LEASE.GET {clip@v2}p after the refused MGET = %q, want a lease", got)
	}
}

// TestLeaseWaitersHangUp: 1,000 clients waiting for a lease that are
// disconnected leave no waiter, goroutine or lease behind, long before
// their WAIT would have run out.
func TestLeaseWaitersHangUp(t *testing.T) {
	ts := startServer(t, nil)
	obs := ts.client(t, &redis.Options{Protocol: 2})
	st, tok := leaseGet(t, obs, "hot", 600_000, -1)
	if st != "lease" {
		t.Fatal("no lease")
	}
	running := goleak.IgnoreCurrent() // the server, its cache and obs
	const n = 1000
	conns := make([]net.Conn, 0, n)
	cmd := encodeCommand("LEASE.GET", "hot", "600000", "WAIT", "600000")
	for range n {
		nc, err := net.Dial("unix", ts.sock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		if _, err := nc.Write([]byte(cmd)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, time.Minute, "1,000 waiters", func() bool { return leaseInfo(t, obs)["lease_waiters"] == fmt.Sprint(n) })
	var wg sync.WaitGroup
	for _, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc.Close()
		}()
	}
	wg.Wait()
	testutil.WaitFor(t, time.Minute, "no waiters", func() bool { return leaseInfo(t, obs)["lease_waiters"] == "0" })
	testutil.WaitFor(t, time.Minute, "connections to close", func() bool { return ts.s.Stats().ConnectedClients == 1 })
	if err := goleak.Find(running); err != nil {
		t.Errorf("goroutines left by the waiters: %v", err)
	}
	// The lease itself is still held by obs, and releases normally.
	if n, _ := obs.Do(context.Background(), "LEASE.RELEASE", "hot", tok).Int(); n != 1 {
		t.Error("the holder's lease was lost")
	}
	if m := leaseInfo(t, obs); m["leases_active"] != "0" {
		t.Errorf("after release: %v", m)
	}
}

// TestLeaseHolderHangsUpWhileWaiting: a client handed a lease while it
// waits, but gone, passes it on at once to the next waiter.
func TestLeaseHolderHangsUpWhileWaiting(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	obs := ts.client(t, &redis.Options{Protocol: 2})
	// obs holds "a"; a raw client waits for "a" and "b" in one MGET (it is
	// granted "b" at once, and waits for "a"), then hangs up.
	if st, _ := leaseGet(t, obs, "a", 600_000, -1); st != "lease" {
		t.Fatal("no lease")
	}
	nc, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write([]byte(encodeCommand("LEASE.MGET", "600000", "WAIT", "600000", "a", "b"))); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the MGET waiting", func() bool { return leaseInfo(t, obs)["lease_waiters"] == "1" })
	nc.Close()
	// Its lease on "b" was released: another client gets it.
	testutil.WaitFor(t, 30*time.Second, "b released", func() bool {
		st, _ := leaseGet(t, obs, "b", 600_000, -1)
		return st == "lease"
	})
	if err := obs.Set(ctx, "b", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseMax: past MaxLeases leases and waiters together, LEASE.GET and
// LEASE.MGET that would take a lease or wait answer an error and grant
// nothing; hits, and misses that hold nothing, are still answered.
func TestLeaseMax(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxLeases = 3 })
	ctx := context.Background()
	obs := ts.client(t, &redis.Options{Protocol: 2})
	c := ts.dial(t)
	const full = "-ERR max number of leases reached (--max-leases 3)"
	if err := obs.Set(ctx, "h", "there", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, tokA := leaseGet(t, obs, "a", 600_000, -1)
	_, tokB := leaseGet(t, obs, "b", 600_000, -1)
	// A waiter counts: 2 leases and 1 waiter fill the table.
	w := ts.client(t, &redis.Options{Protocol: 2, ReadTimeout: time.Minute})
	got := make(chan []any, 1)
	go func() {
		v, _ := w.Do(ctx, "LEASE.GET", "a", 600_000, "WAIT", 60_000).Slice()
		got <- v
	}()
	testutil.WaitFor(t, 30*time.Second, "the waiter", func() bool { return leaseInfo(t, obs)["lease_waiters"] == "1" })
	for _, cmd := range []string{
		"LEASE.GET c 1000",
		"LEASE.GET a 1000 WAIT 100", // would wait
		"LEASE.MGET 1000 WAIT 0 h c",
	} {
		if got := c.do(strings.Fields(cmd)...); got != full {
			t.Errorf("%s at the bound = %q, want %q", cmd, got, full)
		}
	}
	// Nothing held, nothing refused: a hit, and a miss without a wait.
	if st, v := leaseGet(t, obs, "h", 1000, -1); st != "hit" || v != "there" {
		t.Errorf("LEASE.GET of a hit at the bound = %s %v", st, v)
	}
	if st, _ := leaseGet(t, obs, "a", 1000, -1); st != "miss" {
		t.Errorf("LEASE.GET of a held key without WAIT at the bound = %s, want miss", st)
	}
	m := leaseInfo(t, obs)
	if m["leases_active"] != "2" || m["lease_waiters"] != "1" || m["leases_granted"] != "2" {
		t.Errorf("refusals granted something: %v", m)
	}
	info, _ := obs.Info(ctx, "stats").Result()
	for _, f := range []string{"leases_max:3", "leases_refused:3"} {
		if !strings.Contains(info, f+"\r\n") {
			t.Errorf("INFO stats lacks %s", f)
		}
	}

	// With room for one more: an MGET that would take "c", wait for "a"
	// and take "d" is refused at "d", and leaves neither "c" leased nor a
	// second waiter on "a".
	if n, _ := obs.Do(ctx, "LEASE.RELEASE", "b", tokB).Int(); n != 1 {
		t.Fatal("release of b")
	}
	if got := c.do("LEASE.MGET", "1000", "WAIT", "60000", "c", "a", "d"); got != full {
		t.Errorf("LEASE.MGET past the bound = %q, want %q", got, full)
	}
	if m := leaseInfo(t, obs); m["leases_active"] != "1" || m["lease_waiters"] != "1" {
		t.Errorf("the refused LEASE.MGET left something held: %v", m)
	}
	if st, _ := leaseGet(t, obs, "c", 1000, -1); st != "lease" {
		t.Errorf("LEASE.GET c after the refused LEASE.MGET = %s, want lease", st)
	}
	// The waiter queued before the bound was reached is answered as ever.
	if err := obs.Set(ctx, "a", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v := <-got; fmt.Sprint(v) != "[hit v]" {
		t.Errorf("the waiter got %v, want [hit v]", v)
	}
	if n, _ := obs.Do(ctx, "LEASE.RELEASE", "a", tokA).Int(); n != 0 {
		t.Error("a completed lease still releases")
	}
}

// TestLeaseSharedTable: with Options.Leases the server grants from the
// table it is given (the one the daemon's peer server completes), whose
// Max is MaxLeases.
func TestLeaseSharedTable(t *testing.T) {
	table := lease.New(lease.Options{Max: 7})
	ts := startServer(t, func(o *Options) { o.Leases = table })
	obs := ts.client(t, &redis.Options{Protocol: 2})
	st, tok := leaseGet(t, obs, "k", 600_000, -1)
	if st != "lease" {
		t.Fatalf("LEASE.GET = %s", st)
	}
	if !table.Release([]byte("k"), tok.(string)) {
		t.Error("the lease was not granted from the given table")
	}
	if info, _ := obs.Info(context.Background(), "stats").Result(); !strings.Contains(info, "leases_max:7\r\n") {
		t.Errorf("INFO leases_max is not the table's Max:\n%s", info)
	}
	o := Options{Cache: ts.h, Models: tier.NewLocalRegistry(ts.h.Registry), Leases: table, MaxLeases: 8}
	o.EnsureDefaults()
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "max leases 8 is not the lease table's 7") {
		t.Errorf("Validate with a MaxLeases other than the table's: %v", err)
	}
}
