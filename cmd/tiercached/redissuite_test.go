package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
)

// Redis' own test suite, run against tiercached's TCP listener: the
// reference for the semantics and error wording of the commands tiercache
// shares with Redis (CONTRACT: "Redis' own test suite for these commands
// is the reference").
//
// The suite is not kept in this repository: .ci/redis-suite DIR extracts
// it from Debian's source package of redis, and REDIS_SUITE_DIR=DIR points
// the test at it. Its runner (tests/test_helper.tcl) is started against
// the daemon as an external server, the way Redis documents for servers
// other than its own build, with these options:
//
//   - --host/--port: the daemon's --tcp 127.0.0.1:0 address, from its
//     ready line; --singledb (one database); --ignore-encoding and
//     --ignore-digest (OBJECT ENCODING and DEBUG DIGEST checks are
//     skipped: tiercache has neither);
//   - --tags -needs:debug … : tests Redis tags as needing DEBUG,
//     replication, SAVE, CONFIG SET of memory limits or RESET are ignored,
//     as Redis' README says to for servers without them;
//   - --durable: a test that hits a command tiercache does not have fails
//     and the run goes on (without it, the first such error ends the run);
//   - --clients 1 (one unit at a time against the one server), a random
//     --baseport for the runner's own test server (it checks the port is
//     free), and --timeout: the runner gives up when no test has reported
//     for that long.
//
// Each unit is run through a two-line file that sources
// testdata/redis-suite/overlay.tcl and then the unit; the overlay lets
// the runner's FUNCTION FLUSH before each unit pass. Nothing is faked in
// the daemon.
//
// testdata/redis-suite/expected.txt lists every test's result: the test
// fails if any differs (a test that passed fails: a regression; one that
// failed passes: the list and the README's table are out of date), but
// for the tests it lists as "varies", with the reason. After a change
// that is meant, rewrite the list with
//
//	REDIS_SUITE_DIR=DIR go test ./cmd/tiercached -run TestRedisSuite -args -update-redis-suite
//
// and update the README (the rewrite keeps the "varies" lines).

var updateRedisSuite = flag.Bool("update-redis-suite", false, "TestRedisSuite: rewrite testdata/redis-suite/expected.txt from this run")

// redisSuiteVersion is the Redis release whose suite expected.txt is for.
const redisSuiteVersion = "7.0.15"

// redisSuiteUnits are the units of the suite that are run, in order.
var redisSuiteUnits = []string{"unit/type/string", "unit/keyspace", "unit/expire", "unit/protocol"}

// redisSuiteExpected is the list of expected results.
const redisSuiteExpected = "testdata/redis-suite/expected.txt"

// suiteResult is one test's result: "pass" or "fail" (or, in the list,
// "varies": either), its unit and name, and for a failure what it failed
// on (for the list's readers: the command tiercache lacks, or the first
// line of the error; for "varies", why).
type suiteResult struct {
	result, unit, name, why string
}

func (r suiteResult) key() string { return r.result + "\t" + r.unit + "\t" + r.name }

// suiteRun is what the runner reported.
type suiteRun struct {
	results []suiteResult
	ignored int  // tests and groups left out by their tags
	ended   bool // the runner printed "The End"
	broken  []string
}

func TestRedisSuite(t *testing.T) {
	// Without tclsh or the suite the test skips, and fails under CI.
	tclsh := testutil.NeedTool(t, "tclsh", "Debian package tcl; .ci/run installs it")
	suite := os.Getenv("REDIS_SUITE_DIR")
	if suite == "" {
		testutil.ToolMissing(t, "REDIS_SUITE_DIR is not set: .ci/redis-suite DIR puts Redis' test suite in DIR (.ci/run does)")
	}
	version, err := os.ReadFile(filepath.Join(suite, "src", "version.h"))
	if err != nil {
		testutil.ToolMissing(t, "REDIS_SUITE_DIR %s holds no Redis test suite (.ci/redis-suite DIR puts it there): %v", suite, err)
	}
	if !bytes.Contains(version, []byte(`REDIS_VERSION "`+redisSuiteVersion+`"`)) {
		testutil.ToolMissing(t, "REDIS_SUITE_DIR %s is not Redis %s's suite, which %s is for:\n%s", suite, redisSuiteVersion, redisSuiteExpected, version)
	}

	work := t.TempDir()
	for _, p := range []string{"tests/tmp", "tests/tiercache"} {
		if err := os.MkdirAll(filepath.Join(work, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The suite's files, linked (the runner writes only under tests/tmp).
	for _, p := range []string{"test_helper.tcl", "support", "helpers", "assets", "unit"} {
		if err := os.Symlink(filepath.Join(suite, "tests", p), filepath.Join(work, "tests", p)); err != nil {
			t.Fatal(err)
		}
	}
	overlay, err := os.ReadFile("testdata/redis-suite/overlay.tcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "tests/tiercache/overlay.tcl"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"tests/test_helper.tcl"}
	units := map[string]string{} // the runner's unit name → the suite's
	for i, u := range redisSuiteUnits {
		name := fmt.Sprintf("tiercache/%d", i)
		units[name] = u
		wrapper := "source tests/tiercache/overlay.tcl\nsource tests/" + u + ".tcl\n"
		if err := os.WriteFile(filepath.Join(work, "tests", name+".tcl"), []byte(wrapper), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--single", name)
	}

	n := startNode(t, nil, "--tcp", "127.0.0.1:0", "--mem-max", "64MiB", "--disk-max", "256MiB")
	tcp, _ := n.ready["tcp"].(string)
	host, port, err := net.SplitHostPort(tcp)
	if err != nil {
		t.Fatalf("ready line has no TCP address: %v", n.ready)
	}
	args = append(args, "--host", host, "--port", port, "--singledb", "--ignore-encoding", "--ignore-digest",
		"--tags", "-needs:debug -needs:repl -needs:save -needs:config-maxmemory -needs:config-resetstat -needs:reset -needs:pfdebug",
		"--durable", "--clients", "1", "--timeout", "120",
		// The runner's test server takes a free port in [baseport-32,
		// baseport), checking port+10000 too.
		"--baseport", strconv.Itoa(20032+rand.IntN(35000)))

	const overall = 10 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), overall)
	defer cancel()
	cmd := exec.CommandContext(ctx, tclsh, args...)
	cmd.Dir = work
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "TERM=") }), "TERM=dumb")
	// The runner starts its test client as a process of its own: both are
	// in a process group that is ended as a whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	runErr := cmd.Run()
	took := time.Since(start)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a client left behind
	if ctx.Err() != nil {
		t.Fatalf("Redis' test suite did not finish within %v; its output:\n%s", overall, out.String())
	}
	run := parseSuiteOutput(out.String(), units)
	if !run.ended || len(run.broken) > 0 {
		t.Fatalf("Redis' test suite did not run to its end (%v; %s); its output:\n%s", runErr, strings.Join(run.broken, "; "), out.String())
	}
	var passed, failed int
	for _, r := range run.results {
		if r.result == "pass" {
			passed++
		} else {
			failed++
		}
	}
	n.checkAlive(t)
	n.stop()
	t.Logf("Redis %s test suite, %s, against tiercached: %d passed, %d failed, %d ignored by their tags, in %v",
		redisSuiteVersion, strings.Join(redisSuiteUnits, " "), passed, failed, run.ignored, took.Round(time.Second))

	want := readSuiteExpected(t)
	varies, listed := map[string]suiteResult{}, map[string]suiteResult{}
	for _, r := range want {
		if r.result == "varies" {
			varies[r.unit+"\t"+r.name] = r
		}
		listed[r.key()] = r
	}
	if *updateRedisSuite {
		writeSuiteExpected(t, run.results, varies, listed)
		return
	}
	// A test that varies is taken as listed, whichever way it went.
	for i, r := range run.results {
		if v, ok := varies[r.unit+"\t"+r.name]; ok {
			t.Logf("%s %q, listed as varying (%s): %s %s", r.unit, r.name, v.why, r.result, r.why)
			run.results[i] = v
		}
	}
	count := func(rs []suiteResult) map[string]int {
		m := map[string]int{}
		for _, r := range rs {
			m[r.key()]++
		}
		return m
	}
	got, exp := count(run.results), count(want)
	var diffs []string
	for _, r := range run.results {
		if got[r.key()] != exp[r.key()] {
			other := "pass"
			if r.result == "pass" {
				other = "fail"
			}
			switch {
			case r.result == "fail" && exp[other+"\t"+r.unit+"\t"+r.name] > 0:
				diffs = append(diffs, fmt.Sprintf("regression: %s %q passed before, fails now: %s", r.unit, r.name, r.why))
			case r.result == "pass" && exp[other+"\t"+r.unit+"\t"+r.name] > 0:
				diffs = append(diffs, fmt.Sprintf("%s %q passes now (update the list and the README)", r.unit, r.name))
			default:
				diffs = append(diffs, fmt.Sprintf("%s %s %q: not in the list as such (%d times, listed %d)", r.result, r.unit, r.name, got[r.key()], exp[r.key()]))
			}
			got[r.key()] = exp[r.key()] // report each once
		}
	}
	ran := map[string]bool{} // unit and name of every test that ran
	for _, r := range run.results {
		ran[r.unit+"\t"+r.name] = true
	}
	for _, r := range want {
		if !ran[r.unit+"\t"+r.name] && exp[r.key()] > 0 {
			diffs = append(diffs, fmt.Sprintf("%s %s %q is listed but did not run", r.result, r.unit, r.name))
			exp[r.key()] = 0
		}
	}
	if len(diffs) > 0 {
		t.Errorf("Redis' test suite differs from %s:\n  %s\n(rewrite the list with -args -update-redis-suite once the change is meant, and update the README)",
			redisSuiteExpected, strings.Join(diffs, "\n  "))
	}
}

// checkAlive fails the test if the daemon exited (a test of the suite
// must never take it down).
func (n *node) checkAlive(t *testing.T) {
	t.Helper()
	if n.Exited() {
		t.Fatalf("the daemon exited with %d during the suite; its log:\n%s", n.ExitCode(), n.Stderr())
	}
}

var (
	suiteStatus  = regexp.MustCompile(`^\[(ok|err|ignore|skip|exception|TIMEOUT|ready|\d+/\d+ done)\]: ?(.*)$`)
	suiteOK      = regexp.MustCompile(`^(.*) \(\d+ ms\)$`)
	suiteErrIn   = regexp.MustCompile(`^(.*) in tests/[^ ]+\.tcl$`)
	suiteUnknown = regexp.MustCompile(`unknown command '([^']*)'`)
)

// parseSuiteOutput reads the runner's output (uncoloured: TERM=dumb). With
// one test client, each test's report follows the "Testing UNIT" line of
// its unit; a failure's report is followed by its details, up to the next
// report.
func parseSuiteOutput(out string, units map[string]string) suiteRun {
	var run suiteRun
	unit := ""
	var last *suiteResult // the failure whose details are being read
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if u, ok := strings.CutPrefix(line, "Testing "); ok {
			unit = units[u]
			if unit == "" {
				unit = u
			}
			last = nil
			continue
		}
		if strings.TrimSpace(line) == "The End" {
			run.ended = true
			last = nil
			continue
		}
		m := suiteStatus.FindStringSubmatch(line)
		if m == nil {
			if last != nil && last.why == "" {
				if c := suiteUnknown.FindStringSubmatch(line); c != nil {
					last.why = "no " + strings.ToUpper(c[1])
				} else if strings.HasPrefix(line, "Expected") || strings.HasPrefix(line, "ERR") {
					last.why = line
				}
			}
			if strings.HasPrefix(line, "***") {
				last = nil // the summary at the end repeats the failures
			}
			continue
		}
		last = nil
		switch m[1] {
		case "ok":
			name := m[2]
			if s := suiteOK.FindStringSubmatch(name); s != nil {
				name = s[1]
			}
			run.results = append(run.results, suiteResult{result: "pass", unit: unit, name: name})
		case "err":
			name := m[2]
			if s := suiteErrIn.FindStringSubmatch(name); s != nil {
				name = s[1]
			}
			run.results = append(run.results, suiteResult{result: "fail", unit: unit, name: name})
			last = &run.results[len(run.results)-1]
		case "ignore", "skip":
			run.ignored++
		case "exception", "TIMEOUT":
			run.broken = append(run.broken, line)
		}
	}
	return run
}

// writeSuiteExpected writes the list from results; a test listed as
// varying stays so, and a failure listed already keeps its reason.
func writeSuiteExpected(t *testing.T, results []suiteResult, varies, listed map[string]suiteResult) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# Results of Redis %s's test suite (units %s) against tiercached:\n", redisSuiteVersion, strings.Join(redisSuiteUnits, ", "))
	b.WriteString("# see TestRedisSuite in redissuite_test.go. One test a line: pass or fail, unit,\n")
	b.WriteString("# name, and for a failure what it fails on. Tab-separated.\n")

	b.WriteString("# \"varies\" marks a test that may go either way, with the reason.\n")
	for _, r := range results {
		if v, ok := varies[r.unit+"\t"+r.name]; ok {
			r = v
		} else if l, ok := listed[r.key()]; ok && l.why != "" {
			r.why = l.why
		}
		line := r.result + "\t" + r.unit + "\t" + r.name
		if r.result != "pass" {
			line += "\t" + r.why
		}
		b.WriteString(strings.TrimRight(line, "\t") + "\n")
	}
	if err := os.WriteFile(redisSuiteExpected, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", redisSuiteExpected)
}

func readSuiteExpected(t *testing.T) []suiteResult {
	t.Helper()
	b, err := os.ReadFile(redisSuiteExpected)
	if err != nil {
		t.Fatal(err)
	}
	var out []suiteResult
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 3 || (f[0] != "pass" && f[0] != "fail" && f[0] != "varies") {
			t.Fatalf("%s:%d: want pass|fail|varies, unit and name, tab-separated: %q", redisSuiteExpected, i+1, line)
		}
		r := suiteResult{result: f[0], unit: f[1], name: f[2]}
		if len(f) > 3 {
			r.why = f[3]
		}
		out = append(out, r)
	}
	return out
}
