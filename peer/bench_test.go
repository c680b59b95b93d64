package peer

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkGet compares a GET served by a peer over loopback TCP, one
// client, with a GET of the same record from the local Hybrid's L1, in
// the same run. It reports the p99 latency and, for the peer, the ratio
// of its time per GET to the local one.
//
//	go test ./peer -run '^$' -bench BenchmarkGet -benchtime 3000x -count 5
func BenchmarkGet(b *testing.B) {
	for _, size := range []int{118_000, 4 << 20} {
		p := newPair(b, nil, func(o *ClientOptions) { o.Timeout = 10 * time.Second })
		k := keyOf(b, p.ring, "a", "bench")
		mustSet(b, p.a, k, value(size, 1))
		var local time.Duration
		b.Run(fmt.Sprintf("local/%s", sizeName(size)), func(b *testing.B) {
			local = run(b, size, func() bool {
				r, err := p.a.Get(k)
				return err == nil && len(r.Value()) == size
			})
		})
		b.Run(fmt.Sprintf("peer/%s", sizeName(size)), func(b *testing.B) {
			d := run(b, size, func() bool {
				r, ok := p.b.Get(k)
				return ok && len(r.Value()) == size
			})
			if local > 0 {
				b.ReportMetric(float64(d)/float64(local), "x-local")
			}
		})
	}
}

// run runs get b.N times and reports its p99 latency; it returns the
// mean time per call.
func run(b *testing.B, size int, get func() bool) time.Duration {
	b.ReportAllocs()
	b.SetBytes(int64(size))
	lat := make([]time.Duration, 0, b.N)
	cpu0 := cpuTime()
	start := time.Now()
	for b.Loop() {
		t := time.Now()
		if !get() {
			b.Fatal("miss")
		}
		lat = append(lat, time.Since(t))
	}
	mean := time.Since(start) / time.Duration(len(lat))
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(len(lat)), "cpu-µs/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	return mean
}

// cpuTime returns the CPU time the process has used, user and system:
// the server's and the client's together, as both run in the benchmark.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMB", n>>20)
	}
	return fmt.Sprintf("%dKB", n/1000)
}
