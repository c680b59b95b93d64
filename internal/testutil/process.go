package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tailLines is how many lines of a process's output a failure shows.
const tailLines = 40

// Process is a program a test runs: started by StartProcess (or run to its
// end by RunProcess), its output kept, and killed by the test's cleanup if
// it still runs then.
type Process struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	quiet bool // its caller reports its output (RunProcess)

	stdout, stderr syncBuffer
	done           chan struct{} // closed once the process has exited
	code           int           // its exit code, once done is closed
}

// StartProcess starts cmd and returns at once, as nats-server's RunServer
// starts a server; name names the process in messages (a node id, or the
// program's name). Its standard output and error are kept (Stdout,
// Stderr), so cmd.Stdout and cmd.Stderr must be nil. With cmd.Env nil it
// runs with Env(). If it still runs when the test ends, the test's cleanup
// kills it; if the test failed, the cleanup logs the end of its output.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	if cmd.Stdout != nil || cmd.Stderr != nil {
		t.Fatalf("testutil: %s: StartProcess keeps the output itself; cmd.Stdout and cmd.Stderr must be nil", name)
	}
	if cmd.Env == nil {
		cmd.Env = Env()
	}
	p := &Process{t: t, name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.code = exitCode(cmd.Wait())
		close(p.done)
	}()
	t.Cleanup(p.cleanup)
	return p
}

// RunProcess runs cmd to its end, started as StartProcess starts it, and
// returns its exit code (-1 if a signal ended it) and output. It fails the
// test if cmd still runs after timeout (it is killed then).
func RunProcess(t testing.TB, name string, timeout time.Duration, cmd *exec.Cmd) (code int, stdout, stderr string) {
	t.Helper()
	p := StartProcess(t, name, cmd)
	p.quiet = true
	code = p.Wait(timeout)
	return code, p.Stdout(), p.Stderr()
}

func (p *Process) cleanup() {
	if !p.Exited() {
		p.Kill()
	}
	if p.t.Failed() && !p.quiet {
		p.t.Logf("%s (pid %d) ended with exit code %d; %s", p.name, p.Pid(), p.code, p.output())
	}
}

// output is the end of the process's output so far, for messages.
func (p *Process) output() string {
	out := "its standard error:\n" + Tail(p.Stderr(), tailLines)
	if stdout := p.Stdout(); stdout != "" {
		out += "\nits standard output:\n" + Tail(stdout, tailLines)
	}
	return out
}

// Stdout returns what the process has written to its standard output so
// far.
func (p *Process) Stdout() string { return p.stdout.String() }

// Stderr returns what the process has written to its standard error so
// far.
func (p *Process) Stderr() string { return p.stderr.String() }

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done returns a channel that is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode returns the process's exit code, -1 if a signal ended it. It is
// valid once Done is closed.
func (p *Process) ExitCode() int {
	<-p.done
	return p.code
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 if a signal ended it). It fails the test if the process still
// runs then.
func (p *Process) Wait(timeout time.Duration) int {
	p.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.code
	case <-timer.C:
		p.t.Fatalf("%s still running after %v; %s", p.name, timeout, p.output())
		return -1
	}
}

// Signal sends sig to the process. It fails the test if that fails while
// the process runs.
func (p *Process) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.Exited() {
		p.t.Fatalf("%s: %v: %v", p.name, sig, err)
	}
}

// Freeze stops the process with SIGSTOP and returns once the kernel
// reports it stopped (state T in /proc/PID/stat): a signal is delivered
// asynchronously, and a request sent right after kill(2) may still be
// answered. Thaw it with Signal(syscall.SIGCONT).
func (p *Process) Freeze() {
	p.t.Helper()
	p.Signal(syscall.SIGSTOP)
	stat := fmt.Sprintf("/proc/%d/stat", p.Pid())
	WaitFor(p.t, 10*time.Second, p.name+" stopped by SIGSTOP", func() bool {
		b, err := os.ReadFile(stat)
		if err != nil {
			return true // no /proc: as good as it gets
		}
		// The state follows the command name, which is in parentheses.
		i := bytes.LastIndexByte(b, ')')
		return i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't')
	})
}

// Stop sends SIGTERM and returns the exit code. It fails the test if the
// process still runs after timeout.
func (p *Process) Stop(timeout time.Duration) int {
	p.t.Helper()
	p.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// CheckFor is CheckFor for something the process should bring about: it
// fails the test at once, with the end of the process's output, if the
// process has exited.
func (p *Process) CheckFor(total time.Duration, f func() error) {
	p.t.Helper()
	CheckFor(p.t, total, func() error {
		p.t.Helper()
		if p.Exited() {
			p.t.Fatalf("%s exited with %d; %s", p.name, p.code, p.output())
		}
		return f()
	})
}

// LogLines returns the JSON lines the process has written to its standard
// error so far (a daemon's log with --log-format json), decoded; other
// lines are left out.
func (p *Process) LogLines() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.Stderr(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// LogLine returns the first of LogLines whose "msg" is msg, or nil.
func (p *Process) LogLine(msg string) map[string]any {
	for _, m := range p.LogLines() {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}

// WaitLogLine waits up to total for LogLine(msg) and returns it. It fails
// the test if the process exits first.
func (p *Process) WaitLogLine(total time.Duration, msg string) map[string]any {
	p.t.Helper()
	var line map[string]any
	p.CheckFor(total, func() error {
		if line = p.LogLine(msg); line == nil {
			return fmt.Errorf("%s has not logged %q", p.name, msg)
		}
		return nil
	})
	return line
}

// Env is the environment of a program a test runs: the test's own without
// the TIERCACHE_* variables and GOMEMLIMIT (tests set what they need, and
// a memory limit meant for the test binary is not one for a daemon), plus
// extra.
func Env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TIERCACHE_") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// Tail returns the last n lines of s, after a line that counts the ones
// left out.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// exitCode is the exit code of a process from the error its Wait returned:
// 0 for nil, the code of an *exec.ExitError (-1 if a signal ended it), and
// -1 for any other error.
func exitCode(err error) int {
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

// syncBuffer is a bytes.Buffer that a process's output copier writes to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
