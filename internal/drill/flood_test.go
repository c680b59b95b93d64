package drill

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/tiercache/tiercache/lease"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Drill 4: a client flood against the daemon process.
//
// 5,000 connections open at once (each says PING), then, with those still
// open, many clients each send one large value at once (streamed by raw
// RESP writers: 40 × 16 MiB, or 200 × 64 MiB in the long run), while a
// probe client keeps doing SET and GET of small keys. The daemon's resident
// memory (VmRSS sampled every 20 ms, and VmHWM, the kernel's high-water
// mark) must stay under the bound documented in the README (Operations,
// "Memory"):
//
//	in-flight budget + 1.15 × --mem-max + write queue + Pebble + 64 MiB
//
// where the in-flight budget is max(4 × --max-value, 256 MiB) + 32 MiB
// (the server's default MaxInflight and its small-command lane; records
// are built in the request buffers), the write queue is --mem-max/4 (8 to
// 64 MiB), and Pebble is its block cache (min(256 MiB, --disk-max/8)), two
// memtables (--disk-max/16, 1 to 64 MiB each) and four of the largest
// batch it is given (max(--max-value, 4 MiB)): a batch larger than half a
// memtable is queued whole as a memtable of its own, Pebble queues up to
// two before it stalls writes, one more is being committed, and the flush
// copies a value once more on its way to a blob file. The probe must keep
// being served (no error, commands completed during the flood), the
// daemon must not crash, and every large value must afterwards be either
// stored intact or refused with an error (a stored one may since have
// been evicted from L2 when the flood is larger than --disk-max; INFO
// l2_evictions says so).
//
// The daemon under test is built without -race even in a -race run: the
// race detector multiplies its memory.

const (
	floodMemMax   = 256 << 20
	floodDiskMax  = 2 << 30
	floodMaxValue = 64 << 20
)

// floodBound is the documented RSS bound for the flags the drill passes.
func floodBound(memMax, diskMax, maxValue int64) int64 {
	budget := max(4*maxValue, 256<<20) + 32<<20
	queue := max(8<<20, min(64<<20, memMax/4))
	memtable := max(1<<20, min(64<<20, diskMax/32))
	cache := min(256<<20, diskMax/8)
	pebble := cache + 2*memtable + 4*max(maxValue, 4<<20)
	recycled := max(8<<20, min(64<<20, memMax/8))
	leases := int64(lease.DefaultMax * lease.Bytes) // --max-leases' default, 512 B each
	// S3-FIFO's ghost (the default --eviction): 72 B per 16 KiB of
	// --mem-max + --disk-max, 1 Ki to 4 Mi entries.
	ghost := min(max((memMax+diskMax)/(16<<10), 1024), 4<<20) * 72
	// L2's marks of entries read since written: 48 B per 16 KiB of
	// --disk-max, 1 Ki to 4 Mi.
	marks := min(max(diskMax/(16<<10), 1024), 4<<20) * 48
	return budget + memMax*115/100 + queue + recycled + pebble + leases + ghost + marks + 64<<20
}

func TestDrillFlood(t *testing.T) {
	nConns := 5000
	nBig, bigSize := size(40, 200), int64(size(16<<20, 64<<20))
	raiseNoFile(t, uint64(nConns+1024))
	d := newDaemon(t, "flood", bins["tiercached-norace"], "--nats", "off",
		"--mem-max", "256MiB", "--disk-max", "2GiB", "--max-value", "64MiB")
	d.start()
	bound := floodBound(floodMemMax, floodDiskMax, floodMaxValue)
	if got := d.infoInt("memory_bound"); got != bound {
		t.Errorf("INFO memory_bound %d, but the documented formula gives %d for these flags", got, bound)
	}
	rss := SampleRSS(d.pid(), 20*time.Millisecond)
	defer rss.Stop()
	idle := rss.Max()

	pr := startProbe(d)
	defer pr.stop()
	ins := watchInfo(d)
	defer ins.stop()

	// Phase 1: the connections.
	start := time.Now()
	conns, retries := openConns(t, d.socket, nConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	opened := time.Since(start)
	if n := d.infoInt("connected_clients"); n < int64(nConns) {
		t.Fatalf("connected_clients %d with %d connections open", n, nConns)
	}
	pr.waitOps(t, 20)
	afterConns := rss.Max()

	// Phase 2: the large values, with the connections still open.
	start = time.Now()
	cpu0 := procCPU(d.pid())
	ops0 := pr.ops()
	results := floodValues(t, d.socket, nBig, bigSize)
	flooded := time.Since(start)
	floodCPU := procCPU(d.pid()) - cpu0
	opsDuring := pr.ops() - ops0
	pr.waitOps(t, 20)
	d.checkAlive()
	waitFor(t, 5*time.Minute, "the write queue to drain", func() bool { return d.infoInt("pending_write_bytes") == 0 })
	probeStats := pr.stop()
	mem, samples, rerr := rss.Stop()
	peaks := ins.stop()
	if rerr != nil {
		t.Errorf("reading the daemon's memory: %v", rerr)
	}

	// Every value: stored intact, or refused with an error.
	info := d.info()
	evictions, _ := strconv.ParseInt(info["l2_evictions"], 10, 64)
	var stored, refused, evicted, intact int
	var refusals []string
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("value %d: %v (neither stored nor refused)", i, r.err)
		case strings.HasPrefix(r.reply, "-"):
			refused++
			if len(refusals) < 3 {
				refusals = append(refusals, r.reply)
			}
		case r.reply == "+OK":
			stored++
		default:
			t.Errorf("value %d: SET answered %q", i, r.reply)
		}
	}
	for i, r := range results {
		if r.err != nil || r.reply != "+OK" {
			continue
		}
		found, err := getStreamed(d.socket, floodKey(i))
		switch {
		case err != nil:
			t.Errorf("GET %s: %v", floodKey(i), err)
		case !found && evictions == 0:
			t.Errorf("GET %s: missing, and l2_evictions is 0", floodKey(i))
		case !found:
			evicted++
		default:
			intact++
		}
	}
	peak := max(mem.RSS, mem.Peak)
	t.Logf("flood drill: %d connections open at once in %v (%d dials retried on EAGAIN), RSS %s idle, %s with them; %d × %s values at once in %v (daemon CPU %v): %d stored (%d read back intact, %d evicted since: l2_evictions %d), %d refused %q; probe: %v; peak RSS %s (VmHWM %s, %d samples) vs bound %s; peaks seen by INFO: Go heap %s, pending_write_bytes %s",
		nConns, opened.Round(time.Millisecond), retries, mib(idle.RSS), mib(afterConns.RSS),
		nBig, mib(bigSize), flooded.Round(time.Millisecond), floodCPU.Round(10*time.Millisecond), stored, intact, evicted, evictions, refused, refusals,
		probeStats, mib(mem.RSS), mib(mem.Peak), samples, mib(bound), mib(peaks.heap), mib(peaks.pending))
	if probeStats.errors > 0 {
		t.Errorf("the probe saw %d errors: %v", probeStats.errors, probeStats.firstErr)
	}
	if opsDuring == 0 {
		t.Errorf("the probe completed no command during the %v flood", flooded.Round(time.Millisecond))
	}
	if peak > bound {
		t.Errorf("the daemon's RSS peaked at %s, over the documented bound %s (Go heap peaked at %s)", mib(peak), mib(bound), mib(peaks.heap))
	}
	d.stop()
}

// raiseNoFile makes sure the test process may open n files (the daemon,
// a Go program, raises its own soft limit to its hard limit, which it
// inherits), and skips the test if it cannot.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur >= n && lim.Max >= n {
		return
	}
	want := syscall.Rlimit{Cur: max(lim.Cur, n), Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		t.Skipf("cannot raise RLIMIT_NOFILE from %d/%d to %d (%v): the drill needs that many connections", lim.Cur, lim.Max, n, err)
	}
}

// openConns opens n connections to the daemon at once (256 dialers), each
// answering PING, and returns them and how many dials had to be retried
// because the listen queue was full (EAGAIN on a Unix socket).
func openConns(t *testing.T, socket string, n int) ([]net.Conn, int64) {
	t.Helper()
	conns := make([]net.Conn, n)
	var next, retries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := dialRetry(socket, &retries)
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(time.Minute))
					if _, err = io.WriteString(c, "PING\r\n"); err == nil {
						var line string
						if line, err = bufio.NewReader(c).ReadString('\n'); err == nil && line != "+PONG\r\n" {
							err = fmt.Errorf("PING answered %q", line)
						}
					}
					_ = c.SetDeadline(time.Time{})
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		t.FailNow()
	}
	return conns, retries.Load()
}

// dialRetry dials the socket, retrying while its listen queue is full.
func dialRetry(socket string, retries *atomic.Int64) (net.Conn, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.Dial("unix", socket)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			return c, err
		}
		retries.Add(1)
		time.Sleep(time.Millisecond) // back off, as a client library would
	}
}

func floodKey(i int) string { return "flood:" + strconv.Itoa(i) }

// floodResult is what one large SET got: the reply line, or an error.
type floodResult struct {
	reply string
	err   error
}

// floodValues connects n clients, then has each stream one value of size
// bytes at once, and returns each one's reply.
func floodValues(t *testing.T, socket string, n int, size int64) []floodResult {
	t.Helper()
	results := make([]floodResult, n)
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := dialRetry(socket, new(atomic.Int64))
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer c.Close()
		conns[i] = c
	}
	go_ := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go_
			_ = c.SetDeadline(time.Now().Add(15 * time.Minute))
			key := floodKey(i)
			w := bufio.NewWriterSize(c, 256<<10)
			fmt.Fprintf(w, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", len(key), key, size)
			err := WriteValue(w, []byte(key), uint64(i), size)
			if err == nil {
				_, err = w.WriteString("\r\n")
			}
			if err == nil {
				err = w.Flush()
			}
			// A server that refuses a value may answer before reading it
			// all; read the reply even if the write failed.
			line, rerr := bufio.NewReader(c).ReadString('\n')
			switch {
			case rerr == nil:
				results[i] = floodResult{reply: strings.TrimRight(line, "\r\n")}
			case err != nil:
				results[i] = floodResult{err: fmt.Errorf("writing: %w (reading the reply: %v)", err, rerr)}
			default:
				results[i] = floodResult{err: fmt.Errorf("reading the reply: %w", rerr)}
			}
		}()
	}
	close(go_)
	wg.Wait()
	return results
}

// getStreamed GETs key over a raw connection and verifies the value as it
// streams in; found is false for a nil reply.
func getStreamed(socket, key string) (found bool, err error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	if _, err := fmt.Fprintf(c, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key); err != nil {
		return false, err
	}
	br := bufio.NewReaderSize(c, 64<<10)
	line, err := br.ReadString('\n')
	if err != nil {
		return false, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "$-1" {
		return false, nil
	}
	if !strings.HasPrefix(line, "$") {
		return false, fmt.Errorf("GET answered %q", line)
	}
	n, err := strconv.ParseInt(line[1:], 10, 64)
	if err != nil {
		return false, fmt.Errorf("GET answered %q", line)
	}
	if _, err := CheckValueReader([]byte(key), br, n); err != nil {
		return false, err
	}
	return true, nil
}

// probe is a client that keeps doing SET and GET of small keys and records
// each command's latency.
type probe struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex         // guards the fields below
	latencies [2][]time.Duration // SET, GET
	errors    int
	firstErr  error
}

type probeStats struct {
	ops, errors    int
	p99, max       time.Duration // all commands
	setMax, getMax time.Duration
	firstErr       error
}

func (s probeStats) String() string {
	return fmt.Sprintf("%d ops, p99 %v, max %v (SET %v, GET %v), %d errors", s.ops, s.p99, s.max, s.setMax, s.getMax, s.errors)
}

func startProbe(d *daemon) *probe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{cancel: cancel, done: make(chan struct{})}
	c := d.client(1)
	go func() {
		defer close(p.done)
		defer c.Close()
		for i := 0; ctx.Err() == nil; i++ {
			k := fmt.Sprintf("probe:%d", i%100)
			v := NewValue([]byte(k), uint64(i), 100)
			start := time.Now()
			err := c.Set(ctx, k, v, 0).Err()
			p.record(0, time.Since(start), err, ctx)
			start = time.Now()
			got, err := c.Get(ctx, k).Bytes()
			if err == nil {
				if seq, cerr := CheckValue([]byte(k), got); cerr != nil || seq != uint64(i) {
					err = fmt.Errorf("GET %s after SET: write %d, %v", k, seq, cerr)
				}
			}
			p.record(1, time.Since(start), err, ctx)
		}
	}()
	return p
}

func (p *probe) record(cmd int, d time.Duration, err error, ctx context.Context) {
	if ctx.Err() != nil {
		return // stopping: the command was cut short
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latencies[cmd] = append(p.latencies[cmd], d)
	if err != nil {
		p.errors++
		if p.firstErr == nil {
			p.firstErr = err
		}
	}
}

func (p *probe) ops() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.latencies[0]) + len(p.latencies[1])
}

// waitOps waits until the probe completed n more commands.
func (p *probe) waitOps(t *testing.T, n int) {
	t.Helper()
	base := p.ops()
	waitFor(t, 2*time.Minute, "the probe to be served", func() bool { return p.ops()-base >= n })
}

// stop stops the probe and returns its figures. Idempotent.
func (p *probe) stop() probeStats {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	s := probeStats{errors: p.errors, firstErr: p.firstErr}
	l := slices.Concat(p.latencies[0], p.latencies[1])
	if s.ops = len(l); s.ops > 0 {
		slices.Sort(l)
		s.p99 = l[len(l)*99/100].Round(10 * time.Microsecond)
		s.max = l[len(l)-1].Round(time.Millisecond)
	}
	if len(p.latencies[0]) > 0 {
		s.setMax = slices.Max(p.latencies[0]).Round(time.Millisecond)
	}
	if len(p.latencies[1]) > 0 {
		s.getMax = slices.Max(p.latencies[1]).Round(time.Millisecond)
	}
	return s
}

// procCPU returns the CPU time (user and system) pid has used, or 0 if it
// cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// infoWatcher polls the daemon's INFO for the peaks of its Go heap and of
// its write queue, which tell where the memory of a peak RSS goes.
type infoWatcher struct {
	cancel context.CancelFunc
	done   chan struct{}
	peaks  infoPeaks // written by the watcher until done is closed
}

type infoPeaks struct{ heap, pending int64 }

func watchInfo(d *daemon) *infoWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &infoWatcher{cancel: cancel, done: make(chan struct{})}
	c := d.client(1)
	go func() {
		defer close(w.done)
		defer c.Close()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if txt, err := c.Info(ctx, "memory", "tiers").Result(); err == nil {
				for _, l := range strings.Split(txt, "\r\n") {
					k, v, _ := strings.Cut(l, ":")
					n, _ := strconv.ParseInt(v, 10, 64)
					switch k {
					case "used_memory_go_heap":
						w.peaks.heap = max(w.peaks.heap, n)
					case "pending_write_bytes":
						w.peaks.pending = max(w.peaks.pending, n)
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop stops watching and returns the peaks. Idempotent.
func (w *infoWatcher) stop() infoPeaks {
	w.cancel()
	<-w.done
	return w.peaks
}
