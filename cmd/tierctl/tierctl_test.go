package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/race"
	"github.com/tiercache/tiercache/internal/testutil"
)

// bins are the programs under test, built once by TestMain.
var bins map[string]string

func TestMain(m *testing.M) {
	os.Exit(testutil.Main(m, &bins,
		testutil.Command{Name: "tiercached", Pkg: "github.com/tiercache/tiercache/cmd/tiercached", Race: race.Enabled},
		testutil.Command{Name: "tierctl", Pkg: "github.com/tiercache/tiercache/cmd/tierctl", Race: race.Enabled}))
}

var waitFor = testutil.WaitFor

// daemon is a tiercached process.
type daemon struct {
	*testutil.Process
	node, sock string
	rdb        *redis.Client
}

// startDaemon starts tiercached with nats (embedded on a free port, or a URL).
func startDaemon(t *testing.T, node, nats string, extra ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{node: node, sock: filepath.Join(dir, "s.sock")}
	args := []string{"--socket", d.sock, "--data-dir", filepath.Join(dir, "data"), "--mem-max", "64MiB",
		"--disk-max", "256MiB", "--node-id", node, "--nats", nats, "--log-level", "warn"}
	if nats == "embedded" {
		args = append(args, "--nats-listen", "127.0.0.1:0")
	}
	args = append(args, extra...)
	d.rdb = redis.NewClient(&redis.Options{Network: "unix", Addr: d.sock, MaxRetries: -1})
	t.Cleanup(func() { d.rdb.Close() })
	d.Process = testutil.StartProcess(t, node, exec.Command(bins["tiercached"], args...))
	d.CheckFor(30*time.Second, func() error { return d.rdb.Ping(context.Background()).Err() })
	return d
}

func (d *daemon) info(t *testing.T, field string) string {
	t.Helper()
	txt, err := d.rdb.Info(context.Background(), "cluster").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(txt, "\r\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return v
		}
	}
	return ""
}

// tierctl runs tierctl and returns its exit code, stdout and stderr.
func tierctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return testutil.RunProcess(t, "tierctl", time.Minute, exec.Command(bins["tierctl"], args...))
}

// cluster starts three daemons: a with an embedded NATS server, b and c
// joining it.
func cluster(t *testing.T) (a, b, c *daemon, url string) {
	a = startDaemon(t, "node-a", "embedded")
	url = a.info(t, "nats_url")
	if url == "" {
		t.Fatal("node-a reports no nats_url")
	}
	b = startDaemon(t, "node-b", url)
	c = startDaemon(t, "node-c", url)
	return a, b, c, url
}

// TestRolloutWait: --wait exits 0 once every live daemon applied the
// rollout, and 1 naming a frozen one.
func TestRolloutWait(t *testing.T) {
	a, b, c, _ := cluster(t)
	ctx := context.Background()
	for _, d := range []*daemon{a, b, c} {
		if err := d.rdb.Set(ctx, "{clip}p", "old", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := tierctl(t, "--socket", a.sock, "rollout", "clip", "v2", "--wait", "10s")
	if code != 0 {
		t.Fatalf("rollout --wait with every daemon live: exit %d\n%s%s", code, out, errs)
	}
	if !regexp.MustCompile(`^clip v2 [1-9]\d*\napplied by every live daemon\n$`).MatchString(out) {
		t.Errorf("rollout --wait printed %q, want \"clip v2 REV\" then \"applied by every live daemon\"", out)
	}
	for _, d := range []*daemon{a, b, c} {
		if v, err := d.rdb.Get(ctx, "{clip}p").Result(); err != redis.Nil {
			t.Errorf("%s serves %q, %v after the barrier", d.node, v, err)
		}
		if err := d.rdb.Set(ctx, "{clip@v1}p", "late", 0).Err(); err == nil || err.Error() != "STALE clip is at v2" {
			t.Errorf("%s: late write: %v", d.node, err)
		}
	}

	c.Freeze()
	start := time.Now()
	code, out, errs = tierctl(t, "--socket", a.sock, "rollout", "clip", "v3", "--wait", "3s")
	took := time.Since(start)
	if code != 1 || !strings.Contains(errs, "node-c") || strings.Contains(errs, "node-a") || strings.Contains(errs, "node-b") {
		t.Fatalf("rollout --wait with node-c frozen: exit %d after %v\nstdout: %s\nstderr: %s", code, took, out, errs)
	}
	t.Logf("frozen node named after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(errs))
	c.Signal(syscall.SIGCONT)
	waitFor(t, 10*time.Second, "node-c to catch up after SIGCONT", func() bool {
		v, err := c.rdb.Do(ctx, "MODEL.GET", "clip").Text()
		return err == nil && v == "v3"
	})
}

// TestModelsPurgeStats covers the other commands, through the daemon and
// straight through NATS (--nats), as a host without a daemon would.
func TestModelsPurgeStats(t *testing.T) {
	a, b, _, url := cluster(t)
	ctx := context.Background()
	if code, out, errs := tierctl(t, "--nats", url, "rollout", "openai/clip-vit-large-patch14", "r1"); code != 0 {
		t.Fatalf("rollout via --nats: %d %s %s", code, out, errs)
	}
	if code, out, errs := tierctl(t, "--socket", b.sock, "rollout", "t5", "x"); code != 0 {
		t.Fatalf("rollout via the socket: %d %s %s", code, out, errs)
	}
	waitFor(t, 10*time.Second, "both rollouts on node-a", func() bool {
		v, _ := a.rdb.Do(ctx, "MODEL.GET", "t5").Text()
		w, _ := a.rdb.Do(ctx, "MODEL.GET", "openai/clip-vit-large-patch14").Text()
		return v == "x" && w == "r1"
	})
	code, out, errs := tierctl(t, "--socket", a.sock, "models")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "openai/clip-vit-large-patch14 r1 ") || !strings.HasPrefix(lines[1], "t5 x ") {
		t.Fatalf("models: %d %q %s", code, out, errs)
	}
	code, out, errs = tierctl(t, "--nats", url, "purge", "t5")
	if code != 0 {
		t.Fatalf("purge: %d %s %s", code, out, errs)
	}
	if !regexp.MustCompile(`^t5 purged [1-9]\d*\n$`).MatchString(out) {
		t.Errorf("purge printed %q, want \"t5 purged REV\"", out)
	}
	waitFor(t, 10*time.Second, "the purge on node-b", func() bool {
		_, err := b.rdb.Do(ctx, "MODEL.GET", "t5").Text()
		return err == redis.Nil
	})
	code, out, errs = tierctl(t, "--socket", a.sock, "stats")
	for _, want := range []string{"L1", "L2", "hit rate", "NATS connected 1"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("stats lacks %q: %d\n%s%s", want, code, out, errs)
		}
	}
	// Per model: the registry's models with their version, then plain keys.
	for _, want := range []string{`(?m)^openai/clip-vit-large-patch14 +r1 +\d+ +\d+ +(-|\d+\.\d%)$`, `(?m)^\(unscoped\) + \d+ +\d+ +(-|\d+\.\d%)$`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("stats lacks a line matching %s:\n%s", want, out)
		}
	}
	// Through the daemon's INFO: its members bucket, three daemons that
	// serve no peers.
	code, out, errs = tierctl(t, "--socket", a.sock, "members")
	if !regexp.MustCompile(`^node-a +- +live +applied=\d+ +-\nnode-b +- +live +applied=\d+ +-\nnode-c +- +live +applied=\d+ +-\n$`).MatchString(out) {
		t.Fatalf("members: %d %q %s", code, out, errs)
	}
	if code, _, errs := tierctl(t, "--socket", a.sock, "rollout", "bad{name", "v1"); code != 2 || errs == "" {
		t.Fatalf("invalid model name: exit %d, %q", code, errs)
	}
}

// TestNATSCLI: a plain "nats kv put" from the NATS CLI is a rollout, and
// "nats kv del" a purge.
func TestNATSCLI(t *testing.T) {
	natsBin := testutil.NeedTool(t, "nats", "the NATS CLI: go install github.com/nats-io/natscli/nats@v0.5.0, as .ci/run does")
	a, b, _, url := cluster(t)
	ctx := context.Background()
	if err := b.rdb.Set(ctx, "{clip@v6}p", "v6 output", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := testutil.RunProcess(t, "nats", time.Minute, exec.Command(natsBin, "--server", url, "kv", "put", "tiercache-models", "clip", "v7")); code != 0 {
		t.Fatalf("nats kv put: exit %d\n%s%s", code, out, errs)
	}
	for _, d := range []*daemon{a, b} {
		waitFor(t, 10*time.Second, d.node+" to apply the CLI's rollout", func() bool {
			v, _ := d.rdb.Do(ctx, "MODEL.GET", "clip").Text()
			return v == "v7"
		})
		if err := d.rdb.Get(ctx, "{clip@v6}p").Err(); err != redis.Nil {
			t.Errorf("%s still serves {clip@v6}p: %v", d.node, err)
		}
	}
	if code, out, errs := testutil.RunProcess(t, "nats", time.Minute, exec.Command(natsBin, "--server", url, "kv", "del", "-f", "tiercache-models", "clip")); code != 0 {
		t.Fatalf("nats kv del: exit %d\n%s%s", code, out, errs)
	}
	waitFor(t, 10*time.Second, "the CLI's purge", func() bool {
		_, err := a.rdb.Do(ctx, "MODEL.GET", "clip").Text()
		return err == redis.Nil
	})
}

// TestArgumentErrors: an invalid model name or version is refused before
// anything is contacted (no daemon, no NATS), with exit code 2 and the
// registry's own wording.
func TestArgumentErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rollout", "bad{name", "v1"}, `tierctl: tier: invalid model name "bad{name": it may not contain '{' or '}'`},
		{[]string{"rollout", "bad{name", "v@1"}, `tierctl: tier: invalid model name "bad{name": it may not contain '{' or '}'`},
		{[]string{"rollout", "", "v1"}, "tierctl: tier: invalid model name: empty"},
		{[]string{"rollout", "clip", "v@1"}, `tierctl: tier: invalid version "v@1": it may not contain '@', '{' or '}'`},
		{[]string{"rollout", "clip", ""}, "tierctl: tier: invalid version: empty"},
		{[]string{"purge", "a}b"}, `tierctl: tier: invalid model name "a}b": it may not contain '{' or '}'`},
	} {
		code, out, errs := tierctl(t, append([]string{"--socket", sock, "--nats", "nats://127.0.0.1:1"}, tc.args...)...)
		if code != 2 || out != "" || errs != tc.want+"\n" {
			t.Errorf("tierctl %q: exit %d, stdout %q, stderr %q; want exit 2, stderr %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// TestStandalone: with a daemon that has no NATS, rollout and purge go to
// the daemon itself, each printing the revision it replies, and --wait has
// nothing to wait for.
func TestStandalone(t *testing.T) {
	d := startDaemon(t, "solo", "off")
	ctx := context.Background()
	code, out, errs := tierctl(t, "--socket", d.sock, "rollout", "clip", "v1", "--wait", "10s")
	if code != 0 || !regexp.MustCompile(`^clip v1 [1-9]\d*\n$`).MatchString(out) {
		t.Fatalf("rollout: exit %d, stdout %q, stderr %q; want 0 and \"clip v1 REV\"", code, out, errs)
	}
	if v, err := d.rdb.Do(ctx, "MODEL.GET", "clip").Text(); v != "v1" {
		t.Fatalf("MODEL.GET clip after the rollout = %q, %v; want v1", v, err)
	}
	code, out, errs = tierctl(t, "--socket", d.sock, "purge", "clip")
	if code != 0 || !regexp.MustCompile(`^clip purged [1-9]\d*\n$`).MatchString(out) {
		t.Fatalf("purge: exit %d, stdout %q, stderr %q; want 0 and \"clip purged REV\"", code, out, errs)
	}
	if v, err := d.rdb.Do(ctx, "MODEL.GET", "clip").Text(); err != redis.Nil {
		t.Fatalf("MODEL.GET clip after the purge = %q, %v; want nil", v, err)
	}
}

// TestStatsFleet: a fleet member's stats show the peers' hit rate.
func TestStatsFleet(t *testing.T) {
	d := startDaemon(t, "node-f", "embedded", "--peer-listen", "127.0.0.1:0")
	code, out, errs := tierctl(t, "--socket", d.sock, "stats")
	if code != 0 || !regexp.MustCompile(`(?m)^ *peers +0 +0 +- *$`).MatchString(out) || !strings.Contains(out, "fleet: peer address 127.0.0.1:") {
		t.Fatalf("stats of a fleet member: %d\n%s%s", code, out, errs)
	}
	d2 := startDaemon(t, "node-g", "embedded")
	if _, out, _ := tierctl(t, "--socket", d2.sock, "stats"); strings.Contains(out, "peers") {
		t.Fatalf("stats of a daemon outside a fleet show peers:\n%s", out)
	}
}
