package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/testutil"
)

// TestLeaseStampedeDaemon: against the real daemon, 20 go-redis clients
// miss one key at once; one is granted the lease, and the other 19 are
// answered with the value when it is SET (a WAIT running out would answer
// "miss": their WAIT is longer than the test's deadline).
func TestLeaseStampedeDaemon(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const clients = 20
	type answer struct {
		status string
		value  any
	}
	answers := make(chan answer, clients)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range clients {
		c := redis.NewClient(&redis.Options{Network: "unix", Addr: n.socket, Protocol: 2, PoolSize: 1, ReadTimeout: 5 * time.Minute})
		defer c.Close()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, err := c.Do(ctx, "LEASE.GET", "{clip@v1}a cat", 30_000, "WAIT", 300_000).Slice()
			if err != nil {
				t.Error(err)
				return
			}
			answers <- answer{v[0].(string), v[1]}
		}()
	}
	close(start)
	first := <-answers
	if first.status != "lease" {
		t.Fatalf("first answer %v, want a lease", first)
	}
	c := n.client(t, "")
	testutil.WaitFor(t, time.Minute, "19 waiters", func() bool {
		info, err := c.Info(ctx, "stats").Result()
		return err == nil && strings.Contains(info, "lease_waiters:19\r\n")
	})
	if err := c.Set(ctx, "{clip@v1}a cat", "embedding", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(answers)
	hits := 0
	for a := range answers {
		if a.status != "hit" || a.value != "embedding" {
			t.Errorf("waiter answered %v, want the value", a)
		}
		hits++
	}
	if hits != clients-1 {
		t.Errorf("%d waiters answered, want %d", hits, clients-1)
	}
	info, err := c.Info(ctx, "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"leases_granted:1\r\n", "lease_wakeups:19\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO stats lacks %q:\n%s", want, info)
		}
	}
}
