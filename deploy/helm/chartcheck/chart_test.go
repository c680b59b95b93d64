package chartcheck_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "../tiercache"
	repoRoot = "../../.."
)

// bins are the programs the test runs, built once by TestMain.
var bins struct{ helm, tiercached string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chartcheck-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.helm = filepath.Join(dir, "helm")
	bins.tiercached = filepath.Join(dir, "tiercached")
	for _, b := range []struct{ dir, out, pkg string }{
		// Helm at the version go.mod pins (its tool directive).
		{".", bins.helm, "helm.sh/helm/v4/cmd/helm"},
		{repoRoot, bins.tiercached, "./cmd/tiercached"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cases are the values the chart is checked with: its defaults, then each
// values file under ci/.
var cases = []struct {
	name, values string
	daemonSets   int  // DaemonSets rendered
	peer         bool // the fleet cache is on
	monitor      bool // a ServiceMonitor is rendered
}{
	{name: "default", daemonSets: 1},
	{name: "external-nats", values: "ci/external-nats-values.yaml", daemonSets: 1, monitor: true},
	{name: "fleet", values: "ci/fleet-values.yaml", daemonSets: 2, peer: true},
}

func TestChart(t *testing.T) {
	flags := daemonFlags(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var extra []string
			if c.values != "" {
				extra = []string{"-f", filepath.Join(chartDir, c.values)}
			}
			helm(t, append([]string{"lint", "--strict", chartDir}, extra...)...)
			rendered := helm(t, append([]string{"template", "tc", chartDir, "--namespace", "ml"}, extra...)...)
			objs := decodeAll(t, rendered)

			var dss []*appsv1.DaemonSet
			monitors := 0
			for _, o := range objs {
				switch o := o.(type) {
				case *appsv1.DaemonSet:
					dss = append(dss, o)
				case *monitoringv1.ServiceMonitor:
					monitors++
				}
			}
			if len(dss) != c.daemonSets {
				t.Fatalf("%d DaemonSets, want %d", len(dss), c.daemonSets)
			}
			if want := map[bool]int{true: 1}[c.monitor]; monitors != want {
				t.Errorf("%d ServiceMonitors, want %d", monitors, want)
			}
			for _, ds := range dss {
				checkDaemonSet(t, ds, flags, c.peer)
			}
			// The daemons on all nodes are alike but for the data volume:
			// one start of the first checks the memory bound.
			checkMemoryBound(t, dss[0], c.peer)
		})
	}
}

// helm runs the Helm binary with args and returns its standard output; a
// non-zero exit fails the test.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bins.helm, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// kinds maps apiVersion/kind to the type a rendered object must decode into.
var kinds = map[string]func() any{
	"apps/v1/DaemonSet":                       func() any { return &appsv1.DaemonSet{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/PersistentVolume":                     func() any { return &corev1.PersistentVolume{} },
	"v1/PersistentVolumeClaim":                func() any { return &corev1.PersistentVolumeClaim{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeAll decodes every object of a multi-document YAML stream strictly
// into its API type: an unknown kind, an unknown or duplicate field or a
// value of the wrong type fails the test.
func decodeAll(t *testing.T, stream []byte) []any {
	t.Helper()
	var objs []any
	for i, doc := range docSep.Split(string(stream), -1) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		if tm.Kind == "" && strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			t.Fatalf("document %d: %s %s is not a kind the test knows\n%s", i, tm.APIVersion, tm.Kind, doc)
		}
		obj := newObj()
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d (%s): %v\n%s", i, tm.Kind, err, doc)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		t.Fatal("helm template rendered nothing")
	}
	return objs
}

// stripComments returns doc without its comment lines (Helm's "# Source:"
// header and the templates' own comments).
func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

var helpFlag = regexp.MustCompile(`^\s+--([a-z0-9-]+)`)

// daemonFlags returns the flags `tiercached --help` lists.
func daemonFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(bins.tiercached, "--help").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Flags:") {
		t.Fatalf("tiercached --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if m := helpFlag.FindStringSubmatch(l); m != nil {
			flags[m[1]] = true
		}
	}
	for _, f := range []string{"socket", "mem-max", "disk-max", "metrics", "nats"} {
		if !flags[f] {
			t.Fatalf("tiercached --help lists no --%s: the help parser is broken\n%s", f, out)
		}
	}
	return flags
}

// container returns the daemon's container of ds.
func container(t *testing.T, ds *appsv1.DaemonSet) *corev1.Container {
	t.Helper()
	for i, c := range ds.Spec.Template.Spec.Containers {
		if c.Name == "tiercached" {
			return &ds.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("%s has no container tiercached", ds.Name)
	return nil
}

// args returns the container's flags as name → value ("--mem-max=4GiB").
func args(t *testing.T, c *corev1.Container) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, a := range c.Args {
		name, value, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(name, "--") {
			t.Errorf("argument %q is not --flag=value", a)
			continue
		}
		if _, dup := m[name]; dup {
			t.Errorf("flag %s given twice", name)
		}
		m[name] = value
	}
	return m
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkDaemonSet checks the socket's hostPath, the probes, the flags, the
// variables and the rolling update of ds.
func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet, flags map[string]bool, peer bool) {
	spec := ds.Spec.Template.Spec
	c := container(t, ds)
	a := args(t, c)

	// Flags and TIERCACHE_* variables: each one the daemon accepts.
	for name := range a {
		if !flags[strings.TrimPrefix(name, "--")] {
			t.Errorf("%s: the container passes %s, which tiercached --help does not list", ds.Name, name)
		}
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
		if f, ok := strings.CutPrefix(e.Name, "TIERCACHE_"); ok {
			if flag := strings.ReplaceAll(strings.ToLower(f), "_", "-"); !flags[flag] {
				t.Errorf("%s: variable %s is no flag (--%s) of tiercached --help", ds.Name, e.Name, flag)
			}
		}
	}
	for _, arg := range c.Args {
		for _, m := range varRef.FindAllStringSubmatch(arg, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("%s: %q refers to $(%s), which the container's env does not set", ds.Name, arg, m[1])
			}
		}
	}

	// The socket: in a hostPath directory mounted at the same path.
	sock := a["--socket"]
	if sock == "" {
		t.Fatalf("%s: no --socket", ds.Name)
	}
	sockDir := filepath.Dir(sock)
	var vol *corev1.Volume
	for i, m := range c.VolumeMounts {
		if m.MountPath == sockDir {
			vol = volume(t, ds, c.VolumeMounts[i].Name)
		}
	}
	switch {
	case vol == nil:
		t.Errorf("%s: nothing is mounted at the socket's directory %s", ds.Name, sockDir)
	case vol.HostPath == nil:
		t.Errorf("%s: the socket's directory %s is volume %s, not a hostPath", ds.Name, sockDir, vol.Name)
	case vol.HostPath.Path != sockDir:
		t.Errorf("%s: the socket's directory %s is the node's %s; pipeline pods mount the same path on both sides", ds.Name, sockDir, vol.HostPath.Path)
	}
	if _, err := strconv.ParseUint(a["--socket-mode"], 8, 32); err != nil {
		t.Errorf("%s: --socket-mode %q is not octal", ds.Name, a["--socket-mode"])
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsGroup == nil {
		t.Errorf("%s: no runAsGroup: the socket's group is the daemon's group", ds.Name)
	}

	// L2 data: on the node, across restarts.
	if data := dataVolume(t, ds, c, a["--data-dir"]); data != nil && data.HostPath == nil && data.PersistentVolumeClaim == nil {
		t.Errorf("%s: --data-dir is volume %s, neither a hostPath nor a claim", ds.Name, data.Name)
	}

	// Probes: GET /healthz on the --metrics port.
	_, metricsPort, _ := strings.Cut(a["--metrics"], ":")
	for what, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", ds.Name, what)
			continue
		}
		if p.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: %s probe GETs %s, want /healthz", ds.Name, what, p.HTTPGet.Path)
		}
		if port := containerPort(c, p.HTTPGet.Port.String()); fmt.Sprint(port) != metricsPort {
			t.Errorf("%s: %s probe on port %s (%d), --metrics is %q", ds.Name, what, p.HTTPGet.Port.String(), port, a["--metrics"])
		}
	}

	// Peer fill: the port, the advertised pod or node address, the
	// password from a Secret.
	if _, on := a["--peer-listen"]; on != peer {
		t.Errorf("%s: --peer-listen given: %v, want %v", ds.Name, on, peer)
	}
	if peer {
		_, port, _ := strings.Cut(a["--peer-listen"], ":")
		if fmt.Sprint(containerPort(c, "peer")) != port {
			t.Errorf("%s: no container port peer for --peer-listen %s", ds.Name, a["--peer-listen"])
		}
		ip := strings.TrimSuffix(a["--peer-advertise"], ":"+port)
		if ip != "$(POD_IP)" && ip != "$(HOST_IP)" {
			t.Errorf("%s: --peer-advertise %q is not the pod's or the node's IP", ds.Name, a["--peer-advertise"])
		}
		if pf := a["--peer-password-file"]; pf == "" {
			t.Errorf("%s: no --peer-password-file", ds.Name)
		} else if v := mountedVolume(t, ds, c, pf); v == nil || v.Secret == nil {
			t.Errorf("%s: --peer-password-file %s is not in a Secret volume", ds.Name, pf)
		}
	}

	// Rolling update: one node at a time, no second daemon on a data
	// directory.
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil ||
		ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "1" ||
		(ru.MaxSurge != nil && ru.MaxSurge.String() != "0") {
		t.Errorf("%s: update strategy %+v, want RollingUpdate with maxUnavailable 1, maxSurge 0", ds.Name, ds.Spec.UpdateStrategy)
	}
	for _, f := range []string{"--mem-max", "--disk-max", "--max-value", "--max-leases"} {
		if a[f] == "" {
			t.Errorf("%s: no %s: the memory limit is computed from it", ds.Name, f)
		}
	}
}

// volume returns ds's volume name.
func volume(t *testing.T, ds *appsv1.DaemonSet, name string) *corev1.Volume {
	t.Helper()
	for i, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &ds.Spec.Template.Spec.Volumes[i]
		}
	}
	t.Errorf("%s: no volume %s", ds.Name, name)
	return nil
}

// dataVolume returns the volume mounted at dir.
func dataVolume(t *testing.T, ds *appsv1.DaemonSet, c *corev1.Container, dir string) *corev1.Volume {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir {
			return volume(t, ds, m.Name)
		}
	}
	t.Errorf("%s: nothing is mounted at --data-dir %s: L2 would not outlive the pod", ds.Name, dir)
	return nil
}

// mountedVolume returns the volume holding the file path.
func mountedVolume(t *testing.T, ds *appsv1.DaemonSet, c *corev1.Container, path string) *corev1.Volume {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return volume(t, ds, m.Name)
		}
	}
	return nil
}

// containerPort returns the number of c's port named (or numbered) port.
func containerPort(c *corev1.Container, port string) int32 {
	for _, p := range c.Ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	return 0
}

// checkMemoryBound starts tiercached with the container's flags, its
// paths and addresses made local, and checks that the container's memory
// request and limit are the memory bound the daemon reports, rounded up to
// a MiB (the chart's headroom is 0 in every case here).
func checkMemoryBound(t *testing.T, ds *appsv1.DaemonSet, peer bool) {
	c := container(t, ds)
	dir := t.TempDir()
	local := []string{"--log-format=json", "--metrics=127.0.0.1:0", "--node-id=chartcheck"}
	for _, arg := range c.Args {
		name, _, _ := strings.Cut(arg, "=")
		switch name {
		case "--socket":
			local = append(local, "--socket="+filepath.Join(dir, "s.sock"))
		case "--data-dir":
			local = append(local, "--data-dir="+filepath.Join(dir, "data"))
		case "--nats":
			if peer {
				local = append(local, "--nats=embedded", "--nats-listen=127.0.0.1:0")
			} else {
				local = append(local, "--nats=off")
			}
		case "--peer-listen":
			local = append(local, "--peer-listen=127.0.0.1:0")
		case "--peer-password-file":
			pf := filepath.Join(dir, "peer-password")
			if err := os.WriteFile(pf, []byte("chartcheck"), 0o600); err != nil {
				t.Fatal(err)
			}
			local = append(local, "--peer-password-file="+pf)
		case "--metrics", "--node-id", "--log-format", "--peer-advertise", "--models-replicas", "--models-bucket",
			"--nats-creds", "--nats-tls-ca", "--nats-tls-cert", "--nats-tls-key":
			// Made local above, or about a cluster this test has not.
		default:
			local = append(local, arg)
		}
	}
	bound, l2Max := daemonMemoryBound(t, local)
	// A --disk-max over 90% of the file system is lowered to that, and
	// below 2 GiB a smaller L2 lowers Pebble's part of the bound: then
	// this machine's bound is not the node's.
	if l2Max < 2<<30 {
		t.Logf("%s: memory bound not compared: --disk-max lowered to %.0f MiB on this machine's file system", ds.Name, l2Max/(1<<20))
		return
	}
	want := resource.MustParse(fmt.Sprintf("%dMi", int64(math.Ceil(bound/(1<<20)))))
	for what, q := range map[string]resource.Quantity{"request": c.Resources.Requests[corev1.ResourceMemory], "limit": c.Resources.Limits[corev1.ResourceMemory]} {
		if q.Cmp(want) != 0 {
			t.Errorf("%s: memory %s %s; the daemon's bound with these flags is %.2f MiB, want %s", ds.Name, what, q.String(), bound/(1<<20), want.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

// Write appends p.
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemonMemoryBound starts tiercached with args, reads
// tiercache_memory_bound_bytes and L2's capacity in force
// (tiercache_tier_max_bytes{tier="l2"}) from its /metrics and stops it.
func daemonMemoryBound(t *testing.T, args []string) (bound, l2Max float64) {
	t.Helper()
	var out syncBuffer
	cmd := exec.Command(bins.tiercached, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()

	// Poll the log for "ready", which names the metrics address.
	var metrics string
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for metrics == "" {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("tiercached %s exited: %v\n%s", strings.Join(args, " "), err, out.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tiercached not ready after 60s\n%s", out.String())
		}
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			var l struct{ Msg, Metrics string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "ready" {
				metrics = l.Metrics
			}
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		if name, v, ok := strings.Cut(l, " "); ok && !strings.HasPrefix(l, "#") {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				values[name] = f
			}
		}
	}
	bound, l2Max = values["tiercache_memory_bound_bytes"], values[`tiercache_tier_max_bytes{tier="l2"}`]
	if bound <= 0 || l2Max <= 0 {
		t.Fatalf("no tiercache_memory_bound_bytes or tiercache_tier_max_bytes{tier=\"l2\"} in /metrics\n%s", body)
	}
	return bound, l2Max
}
