package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs to 2 min, 3 significant digits, in nanoseconds.
const (
	histMin = 1_000
	histMax = 120_000_000_000
	histSig = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSig) }

func record(h *hdrhistogram.Histogram, d time.Duration) {
	v := d.Nanoseconds()
	if v < histMin {
		v = histMin
	}
	if v > histMax {
		v = histMax
	}
	_ = h.RecordValue(v)
}

// Operation of a load.
type opKind int

const (
	opGet opKind = iota
	opSet
)

func (o opKind) String() string {
	if o == opSet {
		return "SET"
	}
	return "GET"
}

// load describes one closed-loop load: conns connections, each sending
// pipeline requests at once and waiting for their replies before the next
// batch. A request's latency runs from the batch's write to the reading of
// its own reply, so it includes the wait behind earlier replies of its
// batch, as with redis-benchmark -P.
type load struct {
	dial     func() (kvConn, error)
	conns    int
	pipeline int
	op       opKind
	keys     int    // keys are prefix+0 … prefix+(keys-1), picked uniformly
	prefix   string // key prefix
	value    []byte // SET value
	duration time.Duration
	requests int64 // stop after this many requests in all, if > 0
	seed     uint64
	// window, if > 0, makes the load call onWindow with the number of
	// requests completed in each window of that length, until it returns
	// false (which ends the load).
	window   time.Duration
	onWindow func(at time.Duration, n int64) bool
}

// loadResult is what a load measured.
type loadResult struct {
	Requests int64
	Hits     int64
	Errors   int64
	Bytes    int64 // value bytes moved (read or written)
	Elapsed  time.Duration
	Hist     *hdrhistogram.Histogram
	FirstErr error // the first server error reply, for notes
}

// run drives the load and merges the connections' histograms.
func (l load) run(ctx context.Context) (loadResult, error) {
	if l.pipeline < 1 {
		l.pipeline = 1
	}
	conns := make([]kvConn, l.conns)
	for i := range conns {
		c, err := l.dial()
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return loadResult{}, fmt.Errorf("dial: %w", err)
		}
		conns[i] = c
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		stop      atomic.Bool
		completed atomic.Int64 // requests completed, for windows
		issued    atomic.Int64 // requests claimed, for l.requests
		wg        sync.WaitGroup
		mu        sync.Mutex // guards res
		res       = loadResult{Hist: newHist()}
		firstErr  error
	)
	start := time.Now()
	if l.duration > 0 {
		t := time.AfterFunc(l.duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	go func() { <-ctx.Done(); stop.Store(true) }()
	if l.window > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(l.window)
			defer tk.Stop()
			var prev int64
			for !stop.Load() {
				select {
				case <-ctx.Done():
					return
				case now := <-tk.C:
					n := completed.Load()
					if !l.onWindow(now.Sub(start), n-prev) {
						stop.Store(true)
						return
					}
					prev = n
				}
			}
		}()
	}
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHist()
			rng := rand.New(rand.NewPCG(l.seed, uint64(i)))
			key := make([]byte, 0, len(l.prefix)+20)
			var reqs, hits, errs, bytes int64
			var cerr error
			for !stop.Load() {
				n := l.pipeline
				if l.requests > 0 {
					got := issued.Add(int64(n))
					if over := got - l.requests; over > 0 {
						n -= int(over)
						stop.Store(true)
						if n <= 0 {
							break
						}
					}
				}
				// The clock starts before the first byte is written: for
				// large values the writes block until the server reads.
				t0 := time.Now()
				for range n {
					key = strconv.AppendInt(append(key[:0], l.prefix...), int64(rng.IntN(l.keys)), 10)
					if l.op == opSet {
						c.sendSet(key, l.value)
					} else {
						c.sendGet(key)
					}
				}
				if err := c.flush(); err != nil {
					cerr = err
					break
				}
				for range n {
					var err error
					if l.op == opSet {
						if err = c.recvSet(); err == nil {
							bytes += int64(len(l.value))
						}
					} else {
						var hit bool
						var sz int
						if hit, sz, err = c.recvGet(); hit {
							hits++
							bytes += int64(sz)
						}
					}
					if err != nil {
						if !isServerError(err) {
							cerr = err
							break
						}
						errs++
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
					record(h, time.Since(t0))
					reqs++
				}
				if cerr != nil {
					break
				}
				completed.Add(int64(n))
			}
			mu.Lock()
			defer mu.Unlock()
			res.Requests += reqs
			res.Hits += hits
			res.Errors += errs
			res.Bytes += bytes
			res.Hist.Merge(h)
			if cerr != nil {
				stop.Store(true)
				if res.FirstErr == nil {
					res.FirstErr = cerr
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if res.FirstErr != nil {
		return res, fmt.Errorf("load: %w", res.FirstErr)
	}
	res.FirstErr = firstErr
	return res, nil
}

// fill writes keys prefix0 … prefix(keys-1) once each with value, over
// conns pipelined connections.
func fill(ctx context.Context, dial func() (kvConn, error), conns, pipeline int, prefix string, keys int, value []byte) (time.Duration, error) {
	start := time.Now()
	var next atomic.Int64
	errc := make(chan error, conns)
	for range conns {
		go func() {
			errc <- func() error {
				c, err := dial()
				if err != nil {
					return err
				}
				defer c.Close()
				key := make([]byte, 0, len(prefix)+20)
				for ctx.Err() == nil {
					first := next.Add(int64(pipeline)) - int64(pipeline)
					if first >= int64(keys) {
						return nil
					}
					n := min(int64(pipeline), int64(keys)-first)
					for i := range n {
						key = strconv.AppendInt(append(key[:0], prefix...), first+i, 10)
						c.sendSet(key, value)
					}
					if err := c.flush(); err != nil {
						return err
					}
					for range n {
						if err := c.recvSet(); err != nil {
							return fmt.Errorf("fill SET: %w", err)
						}
					}
				}
				return ctx.Err()
			}()
		}()
	}
	var first error
	for range conns {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return time.Since(start), first
}

// randomValue is n bytes that do not compress (like embeddings), the same
// for a given seed.
func randomValue(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}
