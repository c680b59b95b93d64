package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// noSuchTool is a program that is in no PATH.
const noSuchTool = "tiercache-testutil-no-such-tool"

func TestWhenMissing(t *testing.T) {
	if got := whenMissing(true); got != failTest {
		t.Errorf("whenMissing(true) = %v, want failTest", got)
	}
	if got := whenMissing(false); got != skipTest {
		t.Errorf("whenMissing(false) = %v, want skipTest", got)
	}
}

func TestUnderCI(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "": false, "false": false, "1": false, "TRUE": false} {
		t.Setenv(ciEnv, v)
		if got := UnderCI(); got != want {
			t.Errorf("CI=%q: UnderCI() = %v, want %v", v, got, want)
		}
	}
}

// TestNeedToolSkips: without CI=true, a missing program skips the test
// with a message naming it; a present one is returned.
func TestNeedToolSkips(t *testing.T) {
	t.Setenv(ciEnv, "")
	if p := NeedTool(t, "go", "the Go toolchain"); p == "" {
		t.Fatal("NeedTool(go) returned no path")
	}
	var sub *testing.T
	t.Run("missing", func(t *testing.T) {
		sub = t
		NeedTool(t, noSuchTool, "nowhere")
		t.Error("NeedTool returned for a missing program")
	})
	if !sub.Skipped() || sub.Failed() {
		t.Fatalf("missing program: skipped %v, failed %v; want a skip", sub.Skipped(), sub.Failed())
	}
}

// TestNeedToolUnderCI runs the test binary as a child that calls NeedTool
// for a missing program: with CI=true the child's test fails naming the
// program, with any other value of CI it skips.
func TestNeedToolUnderCI(t *testing.T) {
	if os.Getenv(childEnv) == "needtool" {
		NeedTool(t, noSuchTool, "nowhere")
		t.Error("NeedTool returned for a missing program")
		return
	}
	for _, tc := range []struct {
		ci   string
		code int
		want string
	}{
		{"true", 1, "--- FAIL: TestNeedToolUnderCI"},
		{"", 0, "--- SKIP: TestNeedToolUnderCI"},
		{"false", 0, "--- SKIP: TestNeedToolUnderCI"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNeedToolUnderCI$", "-test.v")
		cmd.Env = Env(childEnv+"=needtool", ciEnv+"="+tc.ci)
		code, stdout, stderr := RunProcess(t, "child", time.Minute, cmd)
		out := stdout + stderr
		if code != tc.code || !strings.Contains(out, tc.want) || !strings.Contains(out, noSuchTool+" not found in PATH") {
			t.Errorf("CI=%q: exit %d, want %d with %q and the program's name:\n%s", tc.ci, code, tc.code, tc.want, out)
		}
	}
}
