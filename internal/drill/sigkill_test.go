package drill

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Drill 1: SIGKILL of the daemon process under mixed load.
//
// Several go-redis clients SET, GET and DEL their own keys (each key has
// one writer, so its history is a sequence the drill records with the
// client-side time each write was acknowledged); a checker reads every
// client's keys and verifies each value against its key. The daemon runs
// write-through with --flush-interval 200ms and is killed with SIGKILL at
// a random point; after the restart every key must hold the result of its
// last write acknowledged more than --flush-interval before the kill, or
// of a later write (acknowledged or in flight), never anything older: no
// acknowledged write lost, no acknowledged delete undone, nothing corrupt.

const (
	killFlush         = 200 * time.Millisecond
	killWorkers       = 4
	killKeysPerWorker = 400
)

// killOp is one write of a key: a SET of value seq, or a DEL (seq 0).
type killOp struct {
	seq   uint64
	size  int
	acked time.Time // when the reply arrived; zero if none did (in flight at the kill)
}

// killKey is what the drill knows about a key.
type killKey struct {
	name string
	// base is the key's value (seq, 0 for none) when the cycle began, as
	// read back after the last restart: durable.
	base uint64
	ops  []killOp // this cycle's writes, in order (one writer per key)
}

// current is what the key holds after its writes so far, as its writer
// knows it: the result of its last write, or base.
func (k *killKey) current() uint64 {
	if n := len(k.ops); n > 0 {
		return k.ops[n-1].seq
	}
	return k.base
}

// allowed reports whether seq may be found after a crash at killedAt:
// the result of the last write acknowledged before killedAt-flush, or of
// any later write. It returns the write that had to survive, if any.
func (k *killKey) allowed(seq uint64, killedAt time.Time, flush time.Duration) (ok bool, required *killOp) {
	deadline := killedAt.Add(-flush)
	from := -1
	for i, op := range k.ops {
		if !op.acked.IsZero() && op.acked.Before(deadline) {
			from = i
		}
	}
	if from >= 0 {
		required = &k.ops[from]
	} else if seq == k.base {
		return true, nil
	}
	for _, op := range k.ops[max(from, 0):] {
		if op.seq == seq {
			return true, required
		}
	}
	return false, required
}

// lostAge returns how long before killedAt the oldest acknowledged write
// newer than what was found (seq) was acknowledged, if one was.
func (k *killKey) lostAge(seq uint64, killedAt time.Time) (time.Duration, bool) {
	found := -1 // the write found (the last match: deletes all have seq 0); -1 for base
	for i, op := range k.ops {
		if op.seq == seq {
			found = i
		}
	}
	for _, op := range k.ops[found+1:] {
		if !op.acked.IsZero() {
			return killedAt.Sub(op.acked), true
		}
	}
	return 0, false
}

// killValueSize is the size of value seq: mostly small, one in sixteen
// the size of a CLIP embedding or larger.
func killValueSize(seq uint64) int {
	r := rand.New(rand.NewPCG(seq, 0x5eed))
	if r.IntN(16) == 0 {
		return 32<<10 + r.IntN(128<<10)
	}
	return 64 + r.IntN(8<<10)
}

// killStats are the figures of the drill.
type killStats struct {
	cycles        int
	checked       atomic.Int64 // values read and verified
	writes        atomic.Int64 // writes acknowledged
	required      int          // keys whose value after a kill was prescribed by a durable write
	lostBytes     int64
	lostWrites    int
	undoneDeletes int
	phantoms      int
	inWindow      int           // keys whose writes acknowledged within the last flush interval before a kill were gone: allowed
	oldestGone    time.Duration // the longest before a kill that an acknowledged write that was gone had been acknowledged
}

// TestDrillSIGKILL runs the drill twice: alone (--nats off), and as the
// only member of a fleet cache (NATS and --peer-listen on; fewer cycles),
// so that peer fill's wiring (its port, its member entry, which outlives
// the kill) is killed and restarted with it.
func TestDrillSIGKILL(t *testing.T) {
	t.Run("peer=off", func(t *testing.T) { drillSIGKILL(t, size(5, 50), "--nats", "off") })
	t.Run("peer=on", func(t *testing.T) {
		ns := newNATSServer(t, nil)
		drillSIGKILL(t, size(2, 20), "--nats", ns.url(), "--peer-listen", "127.0.0.1:0")
	})
}

func drillSIGKILL(t *testing.T, cycles int, mode ...string) {
	d := newDaemon(t, "kill", "", append(mode,
		"--write-policy", "through", "--flush-interval", killFlush.String(),
		"--mem-max", "32MiB", "--disk-max", "4GiB", "--max-value", "1MiB")...)
	keys := make([][]*killKey, killWorkers)
	for w := range keys {
		for i := range killKeysPerWorker {
			keys[w] = append(keys[w], &killKey{name: fmt.Sprintf("kill:%d:%d", w, i)})
		}
	}
	var st killStats
	var seq atomic.Uint64
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start := time.Now()
	var killedAt time.Time
	for c := range cycles {
		d.start()
		if c > 0 {
			verifyAfterKill(t, d, keys, killedAt, &st)
			if t.Failed() {
				break
			}
		}
		// Kill after a random amount of acknowledged work, but never
		// sooner than a few flush intervals, so that every cycle has
		// writes whose durability is prescribed.
		target := int64(200 + rng.IntN(1500))
		minRun := time.Duration(2+rng.IntN(6)) * killFlush
		killedAt = runUntilKill(t, d, keys, &seq, &st, target, minRun)
		st.cycles++
		if t.Failed() {
			break
		}
	}
	if !t.Failed() {
		d.start()
		verifyAfterKill(t, d, keys, killedAt, &st)
		d.stop()
	}
	t.Logf("SIGKILL drill: %d/%d cycles survived in %v, %d values checked, %d writes acknowledged, %d keys with a prescribed durable value after a kill, bytes lost %d (%d writes), deletes undone %d, phantom values %d; %d keys lost writes acknowledged within the last flush interval (allowed; the oldest %v before the kill)",
		st.cycles, cycles, time.Since(start).Round(time.Second), st.checked.Load(), st.writes.Load(), st.required,
		st.lostBytes, st.lostWrites, st.undoneDeletes, st.phantoms, st.inWindow, st.oldestGone.Round(time.Millisecond))
	if st.lostBytes != 0 || st.undoneDeletes != 0 || st.phantoms != 0 {
		t.Errorf("durability broken: %d bytes lost, %d deletes undone, %d phantom values", st.lostBytes, st.undoneDeletes, st.phantoms)
	}
}

// runUntilKill runs the mixed load until target writes were acknowledged
// (and at least minRun passed), kills the daemon and returns when the kill
// was sent.
func runUntilKill(t *testing.T, d *daemon, keys [][]*killKey, seq *atomic.Uint64, st *killStats, target int64, minRun time.Duration) time.Time {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var killed atomic.Bool
	var acked atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, killWorkers+1)
	for w := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := killWorker(ctx, d, keys[w], seq, &acked, st, uint64(w)); err != nil && !killed.Load() {
				errs <- fmt.Errorf("worker %d: %w", w, err)
				cancel()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := killChecker(ctx, d, keys, st); err != nil && !killed.Load() {
			errs <- fmt.Errorf("checker: %w", err)
			cancel()
		}
	}()
	begun := time.Now()
	waitFor(t, 2*time.Minute, "the load before the kill", func() bool {
		return ctx.Err() != nil || acked.Load() >= target && time.Since(begun) >= minRun
	})
	// The L2 evictions would make keys disappear legitimately and spoil
	// the accounting: the drill's sizes must not cause any.
	if ev := d.infoInt("l2_evictions"); ev != 0 {
		t.Errorf("the disk tier evicted %d entries: the drill's key space must fit in --disk-max", ev)
	}
	killed.Store(true)
	at := d.kill()
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return at
}

// killWorker does SET/GET/DEL on its keys until ctx ends or a command
// fails (the daemon was killed). Each of its reads must see its own last
// write.
func killWorker(ctx context.Context, d *daemon, keys []*killKey, seq *atomic.Uint64, acked *atomic.Int64, st *killStats, id uint64) error {
	c := d.client(1)
	defer c.Close()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), id))
	for ctx.Err() == nil {
		k := keys[rng.IntN(len(keys))]
		switch r := rng.IntN(100); {
		case r < 50: // SET
			s := seq.Add(1)
			n := killValueSize(s)
			k.ops = append(k.ops, killOp{seq: s, size: n})
			if err := c.Set(ctx, k.name, NewValue([]byte(k.name), s, n), 0).Err(); err != nil {
				return fmt.Errorf("SET %s: %w", k.name, err)
			}
			k.ops[len(k.ops)-1].acked = time.Now()
		case r < 85: // GET: read your own writes
			v, err := c.Get(ctx, k.name).Bytes()
			var got uint64
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return fmt.Errorf("GET %s: %w", k.name, err)
			default:
				if got, err = CheckValue([]byte(k.name), v); err != nil {
					return fmt.Errorf("GET %s: %w", k.name, err)
				}
			}
			st.checked.Add(1)
			if want := k.current(); got != want {
				return fmt.Errorf("GET %s answered write %d, the last acknowledged write is %d (0: none or a delete)", k.name, got, want)
			}
			continue
		default: // DEL
			k.ops = append(k.ops, killOp{})
			if err := c.Del(ctx, k.name).Err(); err != nil {
				return fmt.Errorf("DEL %s: %w", k.name, err)
			}
			k.ops[len(k.ops)-1].acked = time.Now()
		}
		acked.Add(1)
		st.writes.Add(1)
	}
	return nil
}

// killChecker reads random keys of every worker and verifies each value
// against its key: nothing torn or misplaced is ever served.
func killChecker(ctx context.Context, d *daemon, keys [][]*killKey, st *killStats) error {
	c := d.client(1)
	defer c.Close()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 99))
	for ctx.Err() == nil {
		name := fmt.Sprintf("kill:%d:%d", rng.IntN(len(keys)), rng.IntN(killKeysPerWorker))
		v, err := c.Get(ctx, name).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return fmt.Errorf("GET %s: %w", name, err)
		default:
			if _, err := CheckValue([]byte(name), v); err != nil {
				return fmt.Errorf("GET %s: %w", name, err)
			}
		}
		st.checked.Add(1)
	}
	return nil
}

// verifyAfterKill reads every key from the restarted daemon and checks it
// against its history; what it finds becomes the key's durable base.
func verifyAfterKill(t *testing.T, d *daemon, keys [][]*killKey, killedAt time.Time, st *killStats) {
	t.Helper()
	ctx := context.Background()
	c := d.client(1)
	defer c.Close()
	for _, ws := range keys {
		for _, k := range ws {
			v, err := c.Get(ctx, k.name).Bytes()
			var got uint64
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				t.Fatalf("after restart: GET %s: %v", k.name, err)
			default:
				if got, err = CheckValue([]byte(k.name), v); err != nil {
					t.Fatalf("after restart: GET %s: corrupt value served: %v", k.name, err)
				}
			}
			st.checked.Add(1)
			ok, required := k.allowed(got, killedAt, killFlush)
			if required != nil {
				st.required++
			}
			switch {
			case ok:
				if age, gone := k.lostAge(got, killedAt); gone {
					st.inWindow++ // a write of the last flush interval did not survive
					st.oldestGone = max(st.oldestGone, age)
				}
			case required == nil:
				st.phantoms++
				t.Errorf("after restart: %s holds write %d, which is neither its value before the cycle (%d) nor a write of it since", k.name, got, k.base)
			case required.seq == 0:
				st.undoneDeletes++
				t.Errorf("after restart: %s holds write %d although its delete was acknowledged %v before the kill", k.name, got, killedAt.Sub(required.acked).Round(time.Millisecond))
			default:
				st.lostWrites++
				st.lostBytes += int64(required.size)
				t.Errorf("after restart: %s holds write %d (0: nothing), but write %d (%d bytes) was acknowledged %v before the kill", k.name, got, required.seq, required.size, killedAt.Sub(required.acked).Round(time.Millisecond))
			}
			k.base, k.ops = got, k.ops[:0]
		}
	}
	if n := d.infoInt("l2_corrupt_entries"); n != 0 {
		t.Errorf("after restart: l2_corrupt_entries %d", n)
	}
}
