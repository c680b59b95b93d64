package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary act as the program of TestProcess.
const childEnv = "TESTUTIL_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "serve":
		// Log as a daemon does, then exit 3 on SIGTERM.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("not a log line")
		fmt.Fprintln(os.Stderr, `{"level":"info","msg":"ready","socket":"/tmp/x.sock"}`)
		<-sig
		fmt.Fprintln(os.Stderr, `{"level":"info","msg":"stopping"}`)
		os.Exit(3)
	case "env":
		fmt.Print(strings.Join(os.Environ(), "\n"))
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func child(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = Env(childEnv + "=" + mode)
	return cmd
}

func TestProcess(t *testing.T) {
	p := StartProcess(t, "child", child("serve"))
	ready := p.WaitLogLine(30*time.Second, "ready")
	if ready["socket"] != "/tmp/x.sock" {
		t.Fatalf("ready line %v", ready)
	}
	if p.Exited() {
		t.Fatal("exited before SIGTERM")
	}
	if code := p.Stop(30 * time.Second); code != 3 {
		t.Fatalf("exit code %d after SIGTERM, want 3", code)
	}
	if p.LogLine("stopping") == nil || len(p.LogLines()) != 2 || p.Stdout() != "not a log line\n" {
		t.Fatalf("stdout %q, stderr %q", p.Stdout(), p.Stderr())
	}
	if p.ExitCode() != 3 {
		t.Fatalf("ExitCode %d", p.ExitCode())
	}

	// A killed process has no exit code of its own.
	p = StartProcess(t, "child", child("serve"))
	p.WaitLogLine(30*time.Second, "ready")
	p.Kill()
	if p.ExitCode() != -1 {
		t.Fatalf("exit code %d after SIGKILL, want -1", p.ExitCode())
	}
}

func TestRunProcessEnv(t *testing.T) {
	t.Setenv("TIERCACHE_MEM_MAX", "1GiB")
	t.Setenv("GOMEMLIMIT", "1GiB")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = nil // Env()
	t.Setenv(childEnv, "env")
	code, stdout, _ := RunProcess(t, "child", 30*time.Second, cmd)
	if code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	vars := strings.Split(stdout, "\n")
	for _, kv := range vars {
		if strings.HasPrefix(kv, "TIERCACHE_") || strings.HasPrefix(kv, "GOMEMLIMIT=") {
			t.Errorf("the program sees %s", kv)
		}
	}
	if len(vars) < 2 {
		t.Errorf("environment %q", stdout)
	}
}

func TestTail(t *testing.T) {
	if got := Tail("a\nb\nc\n", 2); got != "[1 lines before]\nb\nc" {
		t.Fatalf("Tail = %q", got)
	}
	if got := Tail("a\n", 2); got != "a" {
		t.Fatalf("Tail = %q", got)
	}
}
