package deploy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
)

const dashboardFile = "grafana/dashboards/tiercache.json"

// TestDashboard: every metric the Grafana dashboard's PromQL names is in
// the /metrics of a live daemon. The daemon runs the embedded NATS server
// and peer fill, so that the NATS and peer metrics are there too. Renaming
// any one metric in the dashboard is reported.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	used, err := dashboardMetrics(raw)
	if err != nil {
		t.Fatal(err)
	}
	// The extraction found what the panels are about, not a few stray words.
	for _, m := range []string{"tiercache_hits_total", "tiercache_tier_hits_total", "tiercache_model_misses_total",
		"tiercache_peer_hits_total", "tiercache_command_duration_seconds_bucket", "tiercache_memory_bound_bytes",
		"tiercache_tier_max_bytes", "tiercache_l2_write_bytes_total", "tiercache_rollouts_applied_total",
		"tiercache_stale_writes_rejected_total"} {
		if !slices.Contains(used, m) {
			t.Errorf("the dashboard's queries name no %s (extracted: %s)", m, strings.Join(used, " "))
		}
	}

	checkPanels(t, raw)
	t.Logf("%d metrics in the dashboard's queries: %s", len(used), strings.Join(used, " "))

	dir := t.TempDir()
	d := testutil.StartProcess(t, "tiercached", exec.Command(bins["tiercached"],
		"--socket", filepath.Join(dir, "tiercache.sock"), "--data-dir", filepath.Join(dir, "data"),
		"--mem-max", "64MiB", "--disk-max", "256MiB", "--node-id", "dashboard",
		"--nats", "embedded", "--nats-listen", "127.0.0.1:0",
		"--peer-listen", "127.0.0.1:0", "--peer-password", testPeerPassword,
		"--metrics", "127.0.0.1:0", "--log-format", "json"))
	ready := d.WaitLogLine(60*time.Second, "ready")
	addr, _ := ready["metrics"].(string)
	exported := exportedMetrics(t, addr)

	if missing := missingMetrics(used, exported); len(missing) > 0 {
		t.Errorf("%s uses metrics the daemon does not export: %s", dashboardFile, strings.Join(missing, ", "))
	}

	// Mutation: a dashboard with any one metric renamed fails the check.
	for _, m := range used {
		renamed := strings.ReplaceAll(string(raw), m, m+"_renamed")
		names, err := dashboardMetrics([]byte(renamed))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(missingMetrics(names, exported), m+"_renamed") {
			t.Errorf("the dashboard with %s renamed passes the check", m)
		}
	}
	if code := d.Stop(30 * time.Second); code != 0 {
		t.Errorf("tiercached: exit %d after SIGTERM, want 0", code)
	}
}

// exportedMetrics returns the metrics on the /metrics page at addr, name
// to type (counter, gauge, histogram, …).
func exportedMetrics(t *testing.T, addr string) map[string]string {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %v %v", resp.Status, err)
	}
	exported := map[string]string{}
	for _, l := range strings.Split(string(body), "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "# TYPE ")); strings.HasPrefix(l, "# TYPE ") && len(f) == 2 {
			exported[f[0]] = f[1]
		}
	}
	return exported
}

// missingMetrics returns the names in used that exported does not have:
// neither a metric nor a histogram's or summary's series (_bucket, _sum,
// _count).
func missingMetrics(used []string, exported map[string]string) []string {
	var missing []string
	for _, name := range used {
		if exported[name] != "" {
			continue
		}
		found := false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suffix)
			typ := exported[base]
			if ok && (typ == "histogram" || (typ == "summary" && suffix != "_bucket")) {
				found = true
			}
		}
		if !found {
			missing = append(missing, name)
		}
	}
	return missing
}

// dashboardMetrics returns the metric names, sorted and without repeats,
// that the PromQL of a Grafana dashboard names: the panels' and
// annotations' "expr" and the template variables' queries.
func dashboardMetrics(raw []byte) ([]string, error) {
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", dashboardFile, err)
	}
	var exprs []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(c, k)
			}
		case []any:
			for _, c := range v {
				walk(c, key)
			}
		case string:
			switch key {
			case "expr":
				exprs = append(exprs, v)
			case "query", "definition":
				// label_values(METRIC{…}, LABEL): the metric only.
				if m := labelValues.FindStringSubmatch(v); m != nil {
					exprs = append(exprs, m[1])
				}
			}
		}
	}
	walk(doc, "")
	if len(exprs) == 0 {
		return nil, fmt.Errorf("%s: no PromQL expressions", dashboardFile)
	}
	var names []string
	for _, e := range exprs {
		names = append(names, promQLMetrics(e)...)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

var (
	labelValues = regexp.MustCompile(`^\s*label_values\(\s*([^,]+),`)
	// Parts of PromQL that hold no metric name: string literals, label
	// matchers, grouping labels, ranges and Grafana's variables.
	promQLNoise = []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\$\w+`),
	}
	// An identifier not inside a number or a duration.
	promQLIdent = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.:])([A-Za-z_:][A-Za-z0-9_:]*)`)
	promQLWords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true, "Inf": true, "NaN": true, "atan2": true}
)

// promQLMetrics returns the metric names in a PromQL expression: the
// identifiers left once strings, matchers, grouping labels, ranges and
// variables are removed, other than functions (an identifier before "(")
// and keywords.
func promQLMetrics(expr string) []string {
	for _, re := range promQLNoise {
		expr = re.ReplaceAllString(expr, " ")
	}
	var names []string
	for _, m := range promQLIdent.FindAllStringSubmatchIndex(expr, -1) {
		name := expr[m[2]:m[3]]
		if strings.HasPrefix(strings.TrimSpace(expr[m[3]:]), "(") || promQLWords[name] {
			continue // a function or an aggregation, or a keyword
		}
		names = append(names, name)
	}
	return names
}

func TestPromQLMetrics(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`sum by (le) (rate(tiercache_command_duration_seconds_bucket{command="get", job=~"$job"}[$__rate_interval]))`,
			[]string{"tiercache_command_duration_seconds_bucket"}},
		{`sum(a{x="b c"}) / on(instance) group_left() max without (tier) (b offset 5m)`, []string{"a", "b"}},
		{`histogram_quantile(0.99, sum(rate(x[5m])))`, []string{"x"}},
		{`sum(changes(rev{job=~"$job"}[1m])) > 0 and bool 1e3 * up`, []string{"rev", "up"}},
		{`min(m1)/count(m2)`, []string{"m1", "m2"}},
	} {
		if got := promQLMetrics(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("promQLMetrics(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// checkPanels: the dashboard's panels have distinct ids, and each one
// other than a row queries the dashboard's data source variable.
func checkPanels(t *testing.T, raw []byte) {
	t.Helper()
	var d struct {
		UID    string
		Panels []struct {
			ID         int
			Type       string
			Title      string
			Datasource struct{ UID string }
			Targets    []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid: provisioning and links need one")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %q and %d queries; want ${datasource} and at least one", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q: an empty query", p.Title)
			}
		}
	}
}
