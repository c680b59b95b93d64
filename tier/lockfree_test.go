package tier_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// stallingDisk is an L2 whose reads of keys ending in "slow" wait until
// release is closed.
type stallingDisk struct {
	tier.Disk
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (d *stallingDisk) Get(key []byte) (tier.Record, error) {
	if strings.HasSuffix(string(key), "slow") {
		d.once.Do(func() { close(d.entered) })
		<-d.release
	}
	return d.Disk.Get(key)
}

// TestReadModifyWriteHoldsNoLockAcrossL2 stalls the L2 read of one key's
// SET NX: conditional SETs, SET GET, EXPIRE and DEL of thousands of other
// keys (some of them share the stalled key's lock stripe) complete meanwhile,
// and the stalled SET NX completes once the read returns.
func TestReadModifyWriteHoldsNoLockAcrossL2(t *testing.T) {
	d := &stallingDisk{entered: make(chan struct{}), release: make(chan struct{})}
	h := openHybrid(t, hcfg{wrapL2: func(l2 tier.Disk) tier.Disk { d.Disk = l2; return d }})
	defer h.Close()

	slow := make(chan tier.SetResult, 1)
	go func() {
		res, err := h.SetWith([]byte("key-slow"), []byte("v"), tier.SetArgs{Cond: tier.IfAbsent})
		if err != nil {
			t.Error(err)
		}
		slow <- res
	}()
	<-d.entered

	others := make(chan error, 1)
	go func() {
		for i := range 4096 { // 256 stripes: some share key-slow's
			k := []byte(fmt.Sprint("other-", i))
			if res, err := h.SetWith(k, []byte("x"), tier.SetArgs{Cond: tier.IfAbsent}); err != nil || !res.Stored {
				others <- fmt.Errorf("SET NX %s: %+v, %v", k, res, err)
				return
			}
			if res, err := h.SetWith(k, []byte("y"), tier.SetArgs{GetOld: true}); err != nil || string(res.Old.Value()) != "x" {
				others <- fmt.Errorf("SET GET %s: %v", k, err)
				return
			}
			if ok, err := h.Expire(k, time.Now().Add(time.Hour).UnixMilli(), tier.ExpireAlways); err != nil || !ok {
				others <- fmt.Errorf("EXPIRE %s: %v %v", k, ok, err)
				return
			}
			if ok, err := h.Remove(k); err != nil || !ok {
				others <- fmt.Errorf("DEL %s: %v %v", k, ok, err)
				return
			}
		}
		others <- nil
	}()
	// A deadlock detector, not a timing assertion: with the stripe lock held
	// across the stalled read, the loop above never finishes.
	select {
	case err := <-others:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("writes of other keys waited for the stalled L2 read")
	}
	select {
	case <-slow:
		t.Fatal("the stalled SET NX returned before its L2 read did")
	default:
	}
	close(d.release)
	if res := <-slow; !res.Stored {
		t.Fatalf("stalled SET NX: %+v, want stored", res)
	}
	if got, err := getValue(h, "key-slow"); err != nil || string(got) != "v" {
		t.Fatalf("key-slow = %q, %v", got, err)
	}
}

// TestSetNXRace has many writers SET NX one key at once, with L2 reads in
// between: exactly one stores, and its value is the one read back.
func TestSetNXRace(t *testing.T) {
	h := openHybrid(t, hcfg{memMax: 1 << 20}) // a tiny L1: lookups go to the write queue and L2
	defer h.Close()
	for round := range 50 {
		key := []byte(fmt.Sprint("race-", round))
		var stored atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := []byte(fmt.Sprint("writer-", w))
				res, err := h.SetWith(key, v, tier.SetArgs{Cond: tier.IfAbsent})
				if err != nil {
					t.Error(err)
					return
				}
				if res.Stored {
					stored.Add(1)
					winner.Store(string(v))
				}
			}()
		}
		wg.Wait()
		if n := stored.Load(); n != 1 {
			t.Fatalf("round %d: %d writers stored", round, n)
		}
		if got, err := getValue(h, string(key)); err != nil || string(got) != winner.Load().(string) {
			t.Fatalf("round %d: read %q, %v; the winner wrote %q", round, got, err, winner.Load())
		}
	}
}
