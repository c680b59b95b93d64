package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// WaitFor polls cond until it holds, and fails the test if timeout passes
// first, naming what it waited for. It polls after 1 ms, then backs off to
// every 20 ms: the interval between checks, not a wait for an event.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for d := time.Millisecond; ; d = min(2*d, 20*time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(d)
	}
}

// SyncBuffer is a bytes.Buffer that a process's output copier writes to
// while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Command is a program for Build: the file name to give it and its
// package's import path.
type Command struct {
	Name, Pkg string
	Race      bool // build with -race
}

// Build builds cmds into a new temporary directory and returns it with
// each command's path by name. The caller removes the directory.
func Build(cmds ...Command) (dir string, paths map[string]string, err error) {
	dir, err = os.MkdirTemp("", "tiercache-test-bin-")
	if err != nil {
		return "", nil, err
	}
	paths = make(map[string]string, len(cmds))
	for _, c := range cmds {
		paths[c.Name] = filepath.Join(dir, c.Name)
		args := []string{"build", "-o", paths[c.Name]}
		if c.Race {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, c.Pkg)...).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("building %s: %v\n%s", c.Name, err, out)
		}
	}
	return dir, paths, nil
}

// Main is a TestMain for tests of processes: it builds cmds, stores their
// paths by name in *bins, runs the tests, removes the binaries and, when
// the tests passed, fails if goroutines leaked (goleak). It returns the
// exit code for os.Exit.
func Main(m *testing.M, bins *map[string]string, cmds ...Command) int {
	dir, built, err := Build(cmds...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bins = built
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	return code
}

// ExitCode is the exit code of a process from the error its Wait or Run
// returned: 0 for nil, the code of an *exec.ExitError (-1 if a signal
// ended it), and -1 for any other error (it did not run).
func ExitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		return -1
	}
}
