package harness

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The fleet stampede measures duplicate computation alone. The replay's
// encoder runs per prompt mix two things: recomputation after eviction
// (which a capacity-bounded cache makes whatever the protocol) and
// duplicate computation (two clients computing the same prompt at once,
// on one host or on two). Its encoder is accounted, not slept, so a
// miss's computation lasts one SET round trip, and overlaps are rare
// there. Here every client of every daemon asks for the same new prompt
// at once, and a client that must compute it finishes only once every
// client of the round has asked: the encoder outlasts the arrivals, as a
// 50 ms encoder does for clients that ask within it. The prompts fit in
// the fleet's memory, so every run beyond one per prompt is a duplicate.
//
// "Asked" is, for GET, its answer received (a GET does not wait), and
// for LEASE.GET, the request sent (it waits for the holder by design).
// So with GET then SET every client misses: runs per prompt = clients,
// exactly. With leases the count is the leases granted per prompt: one
// with fleet-wide leases, one per daemon when each daemon leases alone
// (peer fill off), whatever the timing.

// Lease TTL and WAIT of the stampede: long enough that neither runs out
// in a round.
const (
	stampedeLeaseTTL  = 10 * time.Second
	stampedeLeaseWait = 10 * time.Second
)

// fleetStampede runs the stampede on ps with FleetStampedeClients clients
// per daemon, with GET then SET or with LEASE.GET.
func (h *runner) fleetStampede(ctx context.Context, ps []*proc, peerFill, leases bool, value []byte) (FleetStampede, error) {
	res := FleetStampede{PeerFill: peerFill, Leases: leases, Prompts: h.cfg.FleetStampedePrompts}
	var cs []*respConn
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range h.cfg.FleetStampedeClients {
		for _, p := range ps {
			c, err := p.resp()
			if err != nil {
				return res, err
			}
			cs = append(cs, c)
		}
	}
	res.Clients = len(cs)
	// Keys no replay asks for, new in each mode.
	prefix := "{clip@v1}stampede:get:"
	if leases {
		prefix = "{clip@v1}stampede:lease:"
	}
	var runs, hits, misses atomic.Int64
	start := time.Now()
	for r := range res.Prompts {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		key := []byte(prefix + strconv.Itoa(r))
		var asked, wg sync.WaitGroup
		asked.Add(len(cs))
		errs := make(chan error, len(cs))
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var once sync.Once
				ask := func() { once.Do(asked.Done) }
				defer ask() // on every path, or the round's computing clients would wait forever
				kind, err := stampedeAsk(c, key, leases, ask)
				if err != nil {
					errs <- err
					return
				}
				switch kind {
				case leaseHit:
					hits.Add(1)
					return
				case leaseMiss:
					misses.Add(1)
				case leaseRefused:
					errs <- fmt.Errorf("LEASE.GET %s refused at --max-leases", key)
					return
				}
				asked.Wait() // the encoder runs until every client has asked
				runs.Add(1)
				if err := store(c, key, value, ""); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return res, fmt.Errorf("prompt %d: %w", r, err)
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.Runs, res.Hits, res.LeaseMisses = runs.Load(), hits.Load(), misses.Load()
	if res.Prompts > 0 {
		res.RunsPerPrompt = float64(res.Runs) / float64(res.Prompts)
	}
	return res, nil
}

// stampedeAsk is lookup with "asked" reported as the stampede defines it:
// a LEASE.GET once sent, a GET once answered.
func stampedeAsk(c *respConn, key []byte, leases bool, ask func()) (byte, error) {
	if !leases {
		kind, _, err := lookup(c, key, false, 0, 0)
		ask()
		return kind, err
	}
	c.sendLeaseGet(key, stampedeLeaseTTL, stampedeLeaseWait)
	if err := c.flush(); err != nil {
		return 0, err
	}
	ask()
	kind, _, err := c.recvLease()
	switch {
	case isServerError(err):
		return leaseRefused, nil
	case err != nil:
		return 0, fmt.Errorf("LEASE.GET: %w", err)
	}
	return kind, nil
}
