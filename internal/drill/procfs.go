package drill

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// ProcMemory is a process's resident memory as /proc/PID/status reports it.
type ProcMemory struct {
	RSS  int64 // VmRSS: resident now
	Peak int64 // VmHWM: the kernel's high-water mark of VmRSS
}

// ReadProcMemory reads pid's VmRSS and VmHWM (Linux only).
func ReadProcMemory(pid int) (ProcMemory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcMemory{}, err
	}
	var m ProcMemory
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.Peak
		default:
			continue
		}
		f := bytes.Fields(rest) // "123456 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			return ProcMemory{}, fmt.Errorf("drill: /proc/%d/status: unexpected %s line %q", pid, name, sc.Text())
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return ProcMemory{}, fmt.Errorf("drill: /proc/%d/status: %s: %w", pid, name, err)
		}
		*dst = kb << 10
	}
	if m.RSS == 0 {
		return ProcMemory{}, fmt.Errorf("drill: /proc/%d/status has no VmRSS line", pid)
	}
	return m, nil
}

// RSSSampler samples a process's VmRSS every interval and keeps the
// largest value seen (and VmHWM, which also catches peaks between samples).
type RSSSampler struct {
	pid      int
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu      sync.Mutex // guards the fields below
	max     ProcMemory
	samples int
	err     error // the first failed read
}

// SampleRSS starts sampling pid every interval until Stop.
func SampleRSS(pid int, interval time.Duration) *RSSSampler {
	s := &RSSSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample() // Max has a value from the start
	go s.run(interval)
	return s
}

func (s *RSSSampler) run(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.sample()
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *RSSSampler) sample() {
	m, err := ReadProcMemory(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.samples++
	s.max.RSS = max(s.max.RSS, m.RSS)
	s.max.Peak = max(s.max.Peak, m.Peak)
}

// Max returns the largest VmRSS sampled and the largest VmHWM read so far.
func (s *RSSSampler) Max() ProcMemory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// Stop takes a last sample, stops sampling and returns what Max returns,
// the number of samples and the first read error (the process may have
// exited). It is idempotent.
func (s *RSSSampler) Stop() (ProcMemory, int, error) {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.samples, s.err
}
