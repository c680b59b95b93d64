package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// ciEnv is the environment variable that says the tests run under CI.
// CI runs .ci/run with CI=true, as GitHub Actions, GitLab CI and most
// others set it.
const ciEnv = "CI"

// UnderCI reports whether the tests run under CI: the environment variable
// CI is exactly "true".
func UnderCI() bool { return os.Getenv(ciEnv) == "true" }

// action is what a test does when a tool it needs is missing.
type action int

const (
	skipTest action = iota // go test ./... on a machine with only Go
	failTest               // CI, which installs every tool: a skip would hide the check
)

// whenMissing is the decision of ToolMissing, apart from the test so that
// it can be tested: fail under CI, skip elsewhere.
func whenMissing(ci bool) action {
	if ci {
		return failTest
	}
	return skipTest
}

// ToolMissing ends a test that cannot run because a tool it needs is
// missing: a program, a Python package, Redis' test suite. Elsewhere it
// skips the test with the message; under CI (UnderCI) it fails it, because
// .ci/run installs every such tool, and a run that skips the checks which
// compare tiercache with Redis (or that need the NATS CLI, promtool, ...)
// must not pass. The message names the tool and how to get it.
//
// Skips for other reasons (the platform, a resource limit, an opt-in
// long test) are plain t.Skip: they are not about a tool CI installs.
func ToolMissing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	switch whenMissing(UnderCI()) {
	case failTest:
		t.Fatalf("%s\n(%s=true: a tool missing under CI fails the test instead of skipping it)", msg, ciEnv)
	default:
		t.Skip(msg)
	}
}

// NeedTool returns the path of the program name, looked up in PATH, or
// ends the test with ToolMissing: failed under CI, skipped elsewhere. how
// says how to get the program, e.g. "Debian package redis-tools; .ci/run
// installs it".
func NeedTool(t testing.TB, name, how string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		ToolMissing(t, "%s not found in PATH (%s)", name, how)
	}
	return p
}
