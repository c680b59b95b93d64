// Tests of the deployment topology (docker-compose.yml, cluster.sh) run as
// plain processes: a three-node NATS JetStream cluster and three tiercached
// daemons, each joined to a different NATS node, driven by tierctl. They
// also check that the Prometheus alert rules name metrics the daemon
// exports and that the container health probe works.
package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/internal/race"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/invalidation"
)

// bins are the programs under test, built once by TestMain.
var bins map[string]string

func TestMain(m *testing.M) {
	// testutil.Main also checks that the in-process NATS cluster and every
	// client were shut down (goleak).
	os.Exit(testutil.Main(m, &bins,
		testutil.Command{Name: "tiercached", Pkg: "github.com/tiercache/tiercache/cmd/tiercached", Race: race.Enabled},
		testutil.Command{Name: "tierctl", Pkg: "github.com/tiercache/tiercache/cmd/tierctl", Race: race.Enabled},
		testutil.Command{Name: "healthcheck", Pkg: "github.com/tiercache/tiercache/deploy/healthcheck", Race: race.Enabled}))
}

// daemon is a tiercached process.
type daemon struct {
	*testutil.Process
	node, sock string
	metrics    string // the metrics listener's address, once ready
	rdb        *redis.Client
}

// testPeerPassword is the cluster's peer password, as cluster.sh and the
// compose file give one.
const testPeerPassword = "cluster-test-peers"

// startDaemon starts tiercached joined to natsURL, with peer fill on; it does not wait for it
// to serve (ready does). The test's cleanup kills it if the test did not
// stop it.
func startDaemon(t *testing.T, node, natsURL string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{node: node, sock: filepath.Join(dir, "tiercache.sock")}
	args := []string{
		"--socket", d.sock, "--data-dir", filepath.Join(dir, "data"),
		"--mem-max", "64MiB", "--disk-max", "256MiB",
		"--node-id", node, "--nats", natsURL,
		"--metrics", "127.0.0.1:0", "--log-format", "json",
		"--models-replicas", "3",
		"--peer-listen", "127.0.0.1:0", "--peer-password", testPeerPassword,
	}
	d.rdb = redis.NewClient(&redis.Options{Network: "unix", Addr: d.sock, MaxRetries: -1})
	t.Cleanup(func() { d.rdb.Close() })
	d.Process = testutil.StartProcess(t, node, exec.Command(bins["tiercached"], args...))
	return d
}

// ready waits until d has logged "ready", answers PING and its /healthz
// satisfies the container health probe.
func (d *daemon) ready(t *testing.T) {
	t.Helper()
	ready := d.WaitLogLine(60*time.Second, "ready")
	d.metrics, _ = ready["metrics"].(string)
	if err := d.rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("%s is ready but PING failed: %v", d.node, err)
	}
	if code, out, errs := testutil.RunProcess(t, "healthcheck", 30*time.Second, exec.Command(bins["healthcheck"], "http://"+d.metrics+"/healthz")); code != 0 {
		t.Fatalf("healthcheck of %s: exit %d\n%s%s", d.node, code, out, errs)
	}
}

// tierctl runs tierctl and returns its exit code and its output, standard
// output then standard error.
func tierctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, stdout, stderr := testutil.RunProcess(t, "tierctl", 60*time.Second, exec.Command(bins["tierctl"], args...))
	return code, stdout + stderr
}

// modelsReplicas returns the replica count of the registry bucket's stream.
func modelsReplicas(t *testing.T, urls string) int {
	t.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "KV_"+invalidation.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config.Replicas
}

// TestClusterProcesses is the compose topology as processes: three NATS
// nodes, three daemons each on its own node, a rollout with --wait through
// one daemon, then every daemon at the new version and refusing stale
// writes, then a graceful stop of each.
func TestClusterProcesses(t *testing.T) {
	began := time.Now()
	nc := natstest.RunCluster(t, 3)
	var ds []*daemon
	for i := range 3 {
		ds = append(ds, startDaemon(t, fmt.Sprintf("tc-%d", i+1), nc.URL(i)))
	}
	for _, d := range ds {
		d.ready(t)
	}
	t.Logf("NATS cluster and 3 daemons ready after %v", time.Since(began).Round(time.Millisecond))

	code, out := tierctl(t, "--socket", ds[0].sock, "rollout", "clip", "v2", "--wait", "10s")
	if code != 0 {
		t.Fatalf("tierctl rollout clip v2 --wait 10s: exit %d\n%s", code, out)
	}
	if r := modelsReplicas(t, nc.URLs()); r != 3 {
		t.Errorf("the registry bucket has %d replicas, want 3", r)
	}
	ctx := context.Background()
	for _, d := range ds {
		// --wait returned 0: every live daemon has applied v2 already.
		if v, err := d.rdb.Do(ctx, "MODEL.GET", "clip").Text(); err != nil || v != "v2" {
			t.Errorf("%s: MODEL.GET clip = %q, %v; want v2", d.node, v, err)
		}
		if err := d.rdb.Set(ctx, "{clip@v1}x", "old", 0).Err(); err == nil || err.Error() != "STALE clip is at v2" {
			t.Errorf("%s: SET {clip@v1}x = %v; want STALE clip is at v2", d.node, err)
		}
		if err := d.rdb.Set(ctx, "{clip@v2}x", "new", 0).Err(); err != nil {
			t.Errorf("%s: SET {clip@v2}x: %v", d.node, err)
		}
		if v, err := d.rdb.Get(ctx, "{clip@v2}x").Result(); err != nil || v != "new" {
			t.Errorf("%s: GET {clip@v2}x = %q, %v", d.node, v, err)
		}
	}
	if code, out := tierctl(t, "--socket", ds[2].sock, "models"); code != 0 || !strings.HasPrefix(out, "clip v2 ") {
		t.Errorf("tierctl models on %s: exit %d %q", ds[2].node, code, out)
	}

	checkPeerFill(t, ds)
	checkAlertMetrics(t, ds[0])

	// Stop them all at once, as "docker compose down" does.
	codes := make([]int, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		d.Signal(syscall.SIGTERM)
		wg.Go(func() {
			select {
			case <-d.Done():
				codes[i] = d.ExitCode()
			case <-time.After(30 * time.Second):
				codes[i] = -1
			}
		})
	}
	wg.Wait()
	for i, d := range ds {
		if codes[i] != 0 {
			t.Errorf("%s: exit %d after SIGTERM (-1: still running after 30s), want 0", d.node, codes[i])
		}
	}
	t.Logf("whole test took %v", time.Since(began).Round(time.Millisecond))
}

// checkPeerFill: the daemons form one fleet cache. Values SET on the first
// are served by the others, and those that ask the keys' owner count peer
// hits (with 16 keys, some are owned by a daemon other than the reader).
func checkPeerFill(t *testing.T, ds []*daemon) {
	t.Helper()
	ctx := context.Background()
	testutil.CheckFor(t, 30*time.Second, func() error {
		for _, d := range ds {
			if live := infoField(t, d, "peers", "peers_live"); live != fmt.Sprint(len(ds)-1) {
				return fmt.Errorf("%s: peers_live %q, want %d", d.node, live, len(ds)-1)
			}
		}
		return nil
	})
	const keys = 16
	for k := range keys {
		if err := ds[0].rdb.Set(ctx, fmt.Sprintf("fleet:%d", k), fmt.Sprint("v", k), 0).Err(); err != nil {
			t.Fatalf("SET on %s: %v", ds[0].node, err)
		}
	}
	// A SET reaches its owner in the background: poll.
	for _, d := range ds[1:] {
		testutil.CheckFor(t, 30*time.Second, func() error {
			for k := range keys {
				if v, err := d.rdb.Get(ctx, fmt.Sprintf("fleet:%d", k)).Result(); err != nil || v != fmt.Sprint("v", k) {
					return fmt.Errorf("%s: GET fleet:%d = %q, %v", d.node, k, v, err)
				}
			}
			return nil
		})
		if hits := infoField(t, d, "peers", "peer_hits"); hits == "" || hits == "0" {
			t.Errorf("%s served tc-1's values with peer_hits %q", d.node, hits)
		}
	}
}

// infoField reads one field of INFO section from d.
func infoField(t *testing.T, d *daemon, section, field string) string {
	t.Helper()
	s, err := d.rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatalf("%s: INFO %s: %v", d.node, section, err)
	}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == field {
			return v
		}
	}
	return ""
}

// pendingMetrics are names the alert rules use that the daemon does not
// export yet; each is reported rather than failed, until it is exported.
var pendingMetrics = map[string]string{}

// checkAlertMetrics: every tiercache_* metric the alert rules name is in
// d's /metrics.
func checkAlertMetrics(t *testing.T, d *daemon) {
	t.Helper()
	rules, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	exported := exportedMetrics(t, d.metrics)
	var missing []string
	// Metric names, not recording rules (level:metric:operations).
	var used []string
	for _, tok := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`).FindAllString(string(rules), -1) {
		if strings.HasPrefix(tok, "tiercache_") && !strings.Contains(tok, ":") {
			used = append(used, tok)
		}
	}
	slices.Sort(used)
	for _, name := range slices.Compact(used) {
		switch why, pending := pendingMetrics[name]; {
		case exported[name] != "" && pending:
			t.Logf("%s is exported now: remove it from pendingMetrics", name)
		case exported[name] != "":
		case pending:
			t.Logf("alerts.yml uses %s, not exported yet (%s)", name, why)
		default:
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("alerts.yml uses metrics the daemon does not export: %s", strings.Join(missing, ", "))
	}
}

// TestAlertRules checks deploy/prometheus with promtool (the Debian package
// prometheus has it): the rules load, and their unit tests in
// alerts_test.yml pass.
func TestAlertRules(t *testing.T) {
	promtool := testutil.NeedTool(t, "promtool", "Debian package prometheus; .ci/run installs it")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if code, out, errs := testutil.RunProcess(t, "promtool", time.Minute, cmd); code != 0 {
			t.Errorf("promtool %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
	}
}
