package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/natstest"
)

// TestFleetLeaseStampede: three daemons × 8 workers call LEASE.GET, then
// SET when granted the lease, on the same 100 new keys at once, each
// worker in its own order. Each key is computed exactly once across the
// fleet (one lease granted per key), and every other worker is answered
// with the value.
func TestFleetLeaseStampede(t *testing.T) {
	ns := natstest.RunServer(t, nil)
	ids := []string{"a", "b", "c"}
	nodes := make([]*fleetNode, len(ids))
	for i, id := range ids {
		nodes[i] = startFleetNode(t, ns.ClientURL(), id, "--peer-timeout", "500ms")
	}
	for _, n := range nodes {
		waitPeers(t, n.client(t, ""), 2)
	}
	const workers, nkeys = 8, 100
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("stampede:%d", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var computed [nkeys]atomic.Int32
	var hits atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range nodes {
		for w := range workers {
			c := redis.NewClient(&redis.Options{Network: "unix", Addr: n.socket, Protocol: 2, PoolSize: 1, ReadTimeout: time.Minute})
			defer c.Close()
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			order := rand.New(rand.NewPCG(uint64(w), uint64(len(n.id)))).Perm(nkeys)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for _, i := range order {
					k := keys[i]
					v, err := c.Do(ctx, "LEASE.GET", k, 30_000, "WAIT", 30_000).Slice()
					if err != nil {
						t.Errorf("%s: LEASE.GET %s: %v", n.id, k, err)
						return
					}
					switch v[0] {
					case "lease":
						computed[i].Add(1)
						if err := c.Set(ctx, k, "value of "+k, 0).Err(); err != nil {
							t.Errorf("%s: SET %s: %v", n.id, k, err)
							return
						}
					case "hit":
						if v[1] != "value of "+k {
							t.Errorf("%s: LEASE.GET %s = %q", n.id, k, v[1])
						}
						hits.Add(1)
					default:
						t.Errorf("%s: LEASE.GET %s = %v, want a lease or a hit", n.id, k, v)
					}
				}
			}()
		}
	}
	began := time.Now()
	close(start)
	wg.Wait()
	total := 0
	for i := range computed {
		if n := computed[i].Load(); n != 1 {
			t.Errorf("%s computed %d times, want once", keys[i], n)
		}
		total += int(computed[i].Load())
	}
	t.Logf("%d computations, %d hits in %v", total, hits.Load(), time.Since(began))
	if want := int64(len(nodes)*workers*nkeys - nkeys); hits.Load() != want {
		t.Errorf("%d hits, want %d", hits.Load(), want)
	}
}
