package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// FullError is Get's refusal at the table's bound: it carries the bound,
// which the RESP reply names (--max-leases N). It is ErrFull.
type FullError struct {
	Max int
}

func (e *FullError) Error() string {
	return fmt.Sprintf("lease: max number of leases reached (%d)", e.Max)
}

// Is makes a FullError match ErrFull.
func (e *FullError) Is(target error) bool { return target == ErrFull }

// Answer is one key's answer to Get.
type Answer struct {
	// State is Hit, Granted or Miss; Unreachable only in a fleet's
	// answer from an owner that did not answer (see Unreachable).
	State State
	// Record is the record lookup found (Hit); nil when the value came
	// from a completion instead: then only Value is set.
	Record tier.Record
	// Value is the key's value (Hit).
	Value []byte
	// Token holds the lease (Granted).
	Token string
}

// Lookup returns key's live record, or an error wrapping
// tier.ErrNotFound when it has none. tier.Hybrid.Get (the RESP server's)
// and tier.Hybrid.PeerGet (the fleet owner's) are lookups. Get copies a
// record before it waits, so it may live in a recycled buffer until then.
type Lookup func(key []byte) (tier.Record, error)

// Get answers keys as LEASE.GET and LEASE.MGET do, from lookup and the
// table: each key is a Hit when lookup finds it; else its lease is
// Granted to the caller when no one holds it; else, with wait > 0, the
// caller waits, up to wait, for the holder's SET (Hit, with the Value
// only), a hand-over (Granted) or nothing (Miss). A key granted is looked
// up again, so that no one computes a value a SET stored meanwhile (the
// lease is then completed with it).
//
// Before it waits, Get copies the records found and calls pause, if not
// nil: the caller may let go of what lookup's records lived in. An error
// from pause, or ctx done during the wait, means the caller is gone:
// Get leaves the queues with abandon, passes on the leases it holds and
// returns that error (ctx.Err()). An error from lookup other than a miss
// and a refusal at the bound (a *FullError) grant and queue nothing
// either: what was taken is given back.
func (t *Table) Get(ctx context.Context, keys [][]byte, ttl, wait time.Duration, lookup Lookup, pause func() error) ([]Answer, error) {
	ans := make([]Answer, len(keys))
	ws := make([]*Waiter, len(keys))
	var notify chan struct{}
	queued := 0
	for i, k := range keys {
		a := &ans[i]
		rec, err := lookup(k)
		if err == nil {
			a.State, a.Record, a.Value = Hit, rec, rec.Value()
			continue
		}
		if !errors.Is(err, tier.ErrNotFound) {
			t.giveBack(keys[:i], ans[:i], ws[:i])
			return nil, err
		}
		var w *Waiter
		if wait > 0 {
			if notify == nil {
				notify = make(chan struct{}, len(keys))
			}
			w = NewWaiter(notify, ttl)
		}
		tok, q, err := t.Acquire(k, ttl, w)
		if err != nil {
			t.giveBack(keys[:i], ans[:i], ws[:i])
			return nil, &FullError{Max: t.Max()}
		}
		switch {
		case q:
			ws[i] = w
			queued++
		case tok == "":
			a.State = Miss
		default:
			// A SET may have landed between the miss and the grant: look
			// again, so that no one computes a value that is there.
			if rec, err := lookup(k); err == nil {
				a.State, a.Record, a.Value = Hit, rec, rec.Value()
				t.Complete(k, a.Value)
				continue
			}
			a.State, a.Token = Granted, tok
		}
	}
	if queued == 0 {
		return ans, nil
	}
	for i := range ans {
		if ans[i].State == Hit {
			ans[i].Record = slices.Clone(ans[i].Record)
			ans[i].Value = ans[i].Record.Value()
		}
	}
	var gone error
	if pause != nil {
		gone = pause()
	}
	if gone == nil {
		timer := time.NewTimer(wait)
		defer timer.Stop()
	wait:
		for queued > 0 {
			select {
			case <-notify:
				queued--
			case <-timer.C:
				break wait
			case <-ctx.Done():
				gone = ctx.Err()
				break wait
			}
		}
	}
	for i, k := range keys {
		if w := ws[i]; w != nil {
			t.Leave(k, w, gone != nil)
			ans[i].State, ans[i].Value, ans[i].Token = w.Outcome()
		}
	}
	if gone != nil {
		t.giveBack(keys, ans, nil)
		return nil, gone
	}
	return ans, nil
}

// giveBack takes the keys queued (ws) out of their queues and passes on
// the leases granted in ans, for a Get that will not be answered.
func (t *Table) giveBack(keys [][]byte, ans []Answer, ws []*Waiter) {
	for i, w := range ws {
		if w != nil {
			t.Leave(keys[i], w, true)
		}
	}
	for i, a := range ans {
		if a.State == Granted {
			t.Release(keys[i], a.Token)
		}
	}
}
