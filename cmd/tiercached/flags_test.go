package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/tiercache/tiercache/internal/config"
	"github.com/tiercache/tiercache/policy"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/zap/zapcore"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func mustParse(t *testing.T, args []string, env map[string]string) *cli {
	t.Helper()
	c, err := parseFlags(args, envOf(env), nil)
	if err != nil {
		t.Fatalf("parseFlags(%q): %v", args, err)
	}
	return c
}

func TestFlagDefaults(t *testing.T) {
	c := mustParse(t, nil, nil)
	o := c.opts
	want := options{
		Socket: "/tmp/tiercache.sock", SocketMode: 0o660, DataDir: "./tiercache-data",
		MemMax: 1 << 30, DiskMax: 10 << 30, MaxValue: 64 << 20, maxValueDefault: true, WritePolicy: tier.WriteThrough,
		FlushInterval: 200 * time.Millisecond, NATS: "embedded", NATSListen: "127.0.0.1:4222",
		ModelsBucket: "tiercache-models", ModelsReplicas: 1, NodeID: defaultNodeID(), MaxClients: 10000,
		MaxLeases:       100_000,
		ShutdownTimeout: 10 * time.Second, SetMemoryLimit: true, SetThreads: true, PeerTimeout: 100 * time.Millisecond,
	}
	o.Logger = nil
	if o != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", o, want)
	}
	if c.logLevel != zapcore.InfoLevel || c.logFormat != "console" || c.version {
		t.Fatalf("log %v %q version %v", c.logLevel, c.logFormat, c.version)
	}
	// The flag defaults are options' defaults too.
	var zero options
	zero.EnsureDefaults()
	zero.Logger, zero.Version, zero.SetMemoryLimit, zero.SetThreads = nil, "", true, true
	if zero != want {
		t.Fatalf("EnsureDefaults:\n got %+v\nwant %+v", zero, want)
	}
	// A small --disk-max starts with --max-value's default (the disk tier
	// refuses what it cannot hold when it is set); a value given is kept.
	for _, tc := range []struct {
		args []string
		want int64
	}{
		{[]string{"--disk-max", "16MiB"}, 64 << 20},
		{[]string{"--disk-max", "256MiB"}, 64 << 20},
		{[]string{"--disk-max", "16MiB", "--max-value", "8MiB"}, 8 << 20},
	} {
		if got := mustParse(t, tc.args, nil).opts.MaxValue; got != tc.want {
			t.Errorf("%v: max value %d, want %d", tc.args, got, tc.want)
		}
	}
}

func TestFlagsEveryValue(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "user.creds")
	if err := os.WriteFile(creds, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, []string{
		"--socket", "/run/tc.sock", "--socket-mode=0600", "--tcp", "127.0.0.1:6380",
		"--requirepass", "pw", "--data-dir", "/var/lib/tc", "--mem-max", "512MiB",
		"--disk-max", "1.5GB", "--max-value", "1MB", "--write-policy", "back",
		"--flush-interval", "1s", "--nats", "nats://a:4222,tls://b:4223", "--nats-creds", creds,
		"--models-bucket", "m", "--node-id", "n1", "--metrics", ":9100",
		"--max-clients", "5", "--shutdown-timeout", "3s", "--log-level", "debug", "--log-format", "json",
		"--threads", "3", "--eviction", "lfu",
	}, nil)
	o := c.opts
	if o.Socket != "/run/tc.sock" || o.SocketMode != 0o600 || o.TCP != "127.0.0.1:6380" || o.RequirePass != "pw" ||
		o.DataDir != "/var/lib/tc" || o.MemMax != 512<<20 || o.DiskMax != 1_500_000_000 || o.MaxValue != 1_000_000 ||
		o.WritePolicy != tier.WriteBack || o.FlushInterval != time.Second || o.NATS != "nats://a:4222,tls://b:4223" ||
		o.NATSCreds != creds || o.ModelsBucket != "m" || o.NodeID != "n1" || o.Metrics != ":9100" ||
		o.MaxClients != 5 || o.ShutdownTimeout != 3*time.Second || o.Threads != 3 || o.Eviction != policy.LFU || c.logLevel != zapcore.DebugLevel || c.logFormat != "json" {
		t.Fatalf("options %+v, log %v %q", o, c.logLevel, c.logFormat)
	}
}

// TestFlagEnvPrecedence: each flag can come from TIERCACHE_<NAME>, and the
// command line wins.
func TestFlagEnvPrecedence(t *testing.T) {
	env := map[string]string{
		"TIERCACHE_SOCKET":       "/env.sock",
		"TIERCACHE_MEM_MAX":      "2GiB",
		"TIERCACHE_WRITE_POLICY": "back",
		"TIERCACHE_NODE_ID":      "from-env",
		"TIERCACHE_MAX_CLIENTS":  "7",
		"TIERCACHE_TCP":          "", // empty: unset
		"TIERCACHE_VERSION":      "true",
	}
	c := mustParse(t, []string{"--socket", "/flag.sock", "--node-id=from-flag"}, env)
	o := c.opts
	if o.Socket != "/flag.sock" || o.NodeID != "from-flag" {
		t.Errorf("flags lost to the environment: socket %q node %q", o.Socket, o.NodeID)
	}
	if o.MemMax != 2<<30 || o.WritePolicy != tier.WriteBack || o.MaxClients != 7 {
		t.Errorf("environment not applied: mem %d policy %v clients %d", o.MemMax, o.WritePolicy, o.MaxClients)
	}
	if o.TCP != "" {
		t.Errorf("empty TIERCACHE_TCP gave %q", o.TCP)
	}
	if c.version {
		t.Errorf("TIERCACHE_VERSION turned --version on")
	}
}

// TestFlagErrorsAllAtOnce: every bad value is reported in one line, named
// as it was given (flag or variable), and a value that failed to parse is
// not complained about twice.
func TestFlagErrorsAllAtOnce(t *testing.T) {
	_, err := parseFlags(
		[]string{"--mem-max", "12XB", "--write-policy", "sideways", "--disk-max", "1MiB", "--max-value", "-5", "--tcp", "nohost"},
		envOf(map[string]string{"TIERCACHE_FLUSH_INTERVAL": "0s", "TIERCACHE_SOCKET_MODE": "0400"}), nil)
	wants := []string{
		`TIERCACHE_SOCKET_MODE "0400": the owner needs read and write permission`,
		`--mem-max "12XB": unknown size unit "XB"`,
		`--write-policy "sideways": want through or back`,
		`--disk-max "1MiB": must be at least 16MiB`,
		`--max-value "-5": size out of range: negative`,
		`--tcp "nohost": bad address: want host:port`,
		`TIERCACHE_FLUSH_INTERVAL "0s": must be positive`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	for _, w := range wants {
		if strings.Count(msg, w) != 1 {
			t.Errorf("error lacks %q (once):\n%s", w, msg)
		}
	}
	if n := strings.Count(msg, "; ") + 1; n != len(wants) {
		t.Errorf("%d problems reported, want %d:\n%s", n, len(wants), msg)
	}
	if !errors.Is(err, config.ErrSizeUnit) {
		t.Errorf("errors.Is(err, config.ErrSizeUnit) = false")
	}
}

func TestFlagErrorExactLine(t *testing.T) {
	_, err := parseFlags([]string{"--mem-max", "12XB", "--write-policy", "sideways"}, envOf(nil), nil)
	want := `--mem-max "12XB": unknown size unit "XB" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB); --write-policy "sideways": want through or back`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n %v\nwant\n %s", err, want)
	}
}

func TestFlagProblems(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"mem-max too small", []string{"--mem-max", "64KB"}, `--mem-max "64KB": must be within [1MiB, 1TiB]`},
		{"max-value over disk-max", []string{"--max-value", "1GiB", "--disk-max", "512MiB"}, `--max-value "1GiB": larger than --disk-max 512MiB`},
		{"socket mode not octal", []string{"--socket-mode", "rw-rw----"}, `--socket-mode "rw-rw----": not an octal mode such as 0660`},
		{"socket mode too wide", []string{"--socket-mode", "01777"}, `--socket-mode "01777": not a permission mode in 0000-0777`},
		{"socket path too long", []string{"--socket", "/" + strings.Repeat("s", 120)}, `longer than 107 bytes`},
		{"empty socket", []string{"--socket", ""}, `--socket "": a socket path is required`},
		{"nats url", []string{"--nats", "nats://a:4222,http://b"}, `--nats "nats://a:4222,http://b": want embedded, off or a comma-separated list of NATS URLs: "http://b": not a nats://, tls://, ws:// or wss:// URL`},
		{"nats url password hidden", []string{"--nats", "nats://u:hunter2@a:0"}, `--nats "nats://u:xxxxx@a:0": want`},
		{"nats password hidden", []string{"--nats", "nats://a", "--nats-password", "hunter2"}, `--nats-password: needs --nats-user too`},
		{"nats listen", []string{"--nats-listen", "4222"}, `--nats-listen "4222": bad address`},
		{"nats listen ignored when off", []string{"--nats", "off", "--nats-listen", "4222", "--mem-max", "x"}, `--mem-max "x"`},
		{"nats tls pair", []string{"--nats", "nats://a", "--nats-tls-cert", "/nonexistent/c"}, `--nats-tls-cert "/nonexistent/c": needs --nats-tls-key too; --nats-tls-cert "/nonexistent/c": no such file or directory`},
		{"models bucket", []string{"--models-bucket", "a.b"}, `--models-bucket "a.b": want letters`},
		{"node id", []string{"--node-id", "a b"}, `--node-id "a b": must not contain spaces`},
		{"metrics addr", []string{"--metrics", "9100"}, `--metrics "9100": bad address`},
		{"max clients", []string{"--max-clients", "0"}, `--max-clients "0": must be at least 1`},
		{"max leases", []string{"--max-leases", "0"}, `--max-leases "0": must be at least 1`},
		{"max leases word", []string{"--max-leases", "many"}, `--max-leases "many"`},
		{"threads", []string{"--threads", "0"}, `--threads "0": want auto or a whole number of at least 1`},
		{"threads word", []string{"--threads", "many"}, `--threads "many": want auto`},
		{"eviction", []string{"--eviction", "allkeys-lru"}, `--eviction "allkeys-lru": want one of s3fifo, lru, lfu, fifo`},
		{"log level", []string{"--log-level", "loud"}, `--log-level "loud": want debug, info, warn or error`},
		{"log format", []string{"--log-format", "xml"}, `--log-format "xml": want json or console`},
		{"positional", []string{"serve"}, `unexpected argument "serve"`},
		{"password file missing", []string{"--requirepass-file", filepath.Join(dir, "nope")}, `--requirepass-file "` + filepath.Join(dir, "nope") + `": no such file or directory`},
		{"password twice", []string{"--requirepass", "a", "--requirepass-file", "/x"}, `--requirepass-file "/x": give either it or --requirepass, not both`},
		{"nkey missing", []string{"--nats", "nats://a", "--nats-nkey", "/nonexistent/u.nk"}, `--nats-nkey "/nonexistent/u.nk": no such file or directory`},
		{"nkey and user", []string{"--nats", "nats://a", "--nats-nkey", "/x", "--nats-user", "u"}, `--nats-nkey "/x": give NATS credentials one way: --nats-creds, --nats-nkey or --nats-user`},
		{"protected mode word", []string{"--protected-mode", "off"}, `--protected-mode "off": want yes or no`},
		{"protected tcp", []string{"--tcp", "0.0.0.0:6380"}, `--tcp "0.0.0.0:6380": not a loopback address, and no password protects it (protected mode): give --requirepass or --requirepass-file, or --protected-mode no`},
		{"protected tcp no host", []string{"--tcp", ":6380"}, `--tcp ":6380": not a loopback address`},
		{"protected tcp v6", []string{"--tcp", "[::]:6380"}, `--tcp "[::]:6380": not a loopback address`},
		{"protected tcp name", []string{"--tcp", "cache.example:6380"}, `--tcp "cache.example:6380": not a loopback address`},
		{"protected nats listen", []string{"--nats-listen", "0.0.0.0:4222", "--nats-user", "u"}, `--nats-listen "0.0.0.0:4222": not a loopback address, and no password protects it (protected mode): give --nats-user and --nats-password, or --protected-mode no`},
		{"protected both", []string{"--tcp", "10.1.2.3:6380", "--nats-listen", ":4222"}, `--tcp "10.1.2.3:6380": not a loopback address, and no password protects it (protected mode): give --requirepass or --requirepass-file, or --protected-mode no; --nats-listen ":4222": not a loopback`},
		{"peer listen", []string{"--peer-listen", "7000"}, `--peer-listen "7000": bad address`},
		{"peer listen without nats", []string{"--nats", "off", "--peer-listen", "127.0.0.1:7000"}, `--peer-listen "127.0.0.1:7000": needs NATS, where the fleet's members are: --nats is off`},
		{"peer listen everywhere", []string{"--peer-listen", "0.0.0.0:7000", "--peer-password", "hunter2"}, `--peer-listen "0.0.0.0:7000": listens on every interface: give --peer-advertise`},
		{"peer advertise alone", []string{"--peer-advertise", "10.0.0.1:7000"}, `--peer-advertise "10.0.0.1:7000": needs --peer-listen`},
		{"peer advertise unspecified", []string{"--peer-listen", "127.0.0.1:7000", "--peer-advertise", "0.0.0.0:7000"}, `--peer-advertise "0.0.0.0:7000": want a host and port other daemons can dial`},
		{"peer advertise port 0", []string{"--peer-listen", "127.0.0.1:0", "--peer-advertise", "h:0"}, `--peer-advertise "h:0": want a host and port`},
		{"peer timeout", []string{"--peer-timeout", "0s"}, `--peer-timeout "0s": must be positive`},
		{"peer password twice", []string{"--peer-password", "hunter2", "--peer-password-file", "/x"}, `--peer-password-file "/x": give either it or --peer-password, not both`},
		{"peer tls incomplete", []string{"--peer-listen", "127.0.0.1:7000", "--peer-tls-cert", "/nonexistent/c"}, `--peer-tls-cert "/nonexistent/c": mutual TLS needs --peer-tls-key and --peer-tls-ca too`},
		{"peer tls missing", []string{"--peer-listen", "127.0.0.1:7000", "--peer-tls-cert", "/nonexistent/c", "--peer-tls-key", "/k", "--peer-tls-ca", "/ca"}, `--peer-tls-cert "/nonexistent/c": no such file or directory`},
		{"protected peer listen", []string{"--peer-listen", "10.1.2.3:7000"}, `--peer-listen "10.1.2.3:7000": not a loopback address, and no password protects it (protected mode): give --peer-password, --peer-password-file or --peer-tls-cert, --peer-tls-key and --peer-tls-ca, or --protected-mode no`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, envOf(nil), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant one containing %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows a password: %v", err)
			}
		})
	}
}

func TestRequirePassFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pass")
	if err := os.WriteFile(path, []byte("  s3cret \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c := mustParse(t, []string{"--requirepass-file", path}, nil); c.opts.RequirePass != "s3cret" {
		t.Fatalf("password %q", c.opts.RequirePass)
	}
	// From the environment too; an empty file is refused.
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := parseFlags(nil, envOf(map[string]string{"TIERCACHE_REQUIREPASS_FILE": empty}), nil)
	if err == nil || err.Error() != `TIERCACHE_REQUIREPASS_FILE "`+empty+`": the file holds no password` {
		t.Fatalf("error %v", err)
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want fs.FileMode
		ok   bool
	}{
		{"0660", 0o660, true}, {"660", 0o660, true}, {"0o600", 0o600, true}, {"0777", 0o777, true},
		{"0", 0, true}, {"", 0, false}, {"0o", 0, false}, {"0668", 0, false}, {"1000", 0, false}, {"-660", 0, false},
	} {
		got, err := parseMode(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseMode(%q) = %o, %v; want %o ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestProtectedMode: what --protected-mode yes (the default) lets start.
func TestProtectedMode(t *testing.T) {
	for _, args := range [][]string{
		{"--tcp", "127.0.0.1:6380"}, {"--tcp", "127.9.9.9:6380"}, {"--tcp", "[::1]:6380"}, {"--tcp", "localhost:6380"},
		{"--tcp", "0.0.0.0:6380", "--requirepass", "pw"},
		{"--nats-listen", "127.0.0.1:0"}, {"--nats-listen", "0.0.0.0:4222", "--nats-user", "u", "--nats-password", "p"},
		{"--nats", "off", "--nats-listen", "0.0.0.0:4222"},            // not listened on
		{"--nats", "nats://n1:4222", "--nats-listen", "0.0.0.0:4222"}, // likewise
		{"--tcp", "0.0.0.0:6380", "--nats-listen", "0.0.0.0:4222", "--protected-mode", "no"},
		{"--peer-listen", "127.0.0.1:0"}, {"--peer-listen", "10.1.2.3:7000", "--peer-password", "pw"},
		{"--peer-listen", "0.0.0.0:7000", "--peer-advertise", "10.1.2.3:7000", "--peer-password", "pw"},
		{"--peer-listen", "10.1.2.3:7000", "--protected-mode", "no"},
	} {
		c, err := parseFlags(args, envOf(nil), nil)
		if err != nil {
			t.Errorf("%q: %v", args, err)
			continue
		}
		if want := slices.Contains(args, "no"); c.opts.Unprotected != want {
			t.Errorf("%q: unprotected %v, want %v", args, c.opts.Unprotected, want)
		}
	}
	c := mustParse(t, nil, map[string]string{"TIERCACHE_PROTECTED_MODE": "no", "TIERCACHE_TCP": ":6380"})
	if !c.opts.Unprotected {
		t.Errorf("TIERCACHE_PROTECTED_MODE=no not applied")
	}
}

// TestHugePagesFlag: --huge-pages yes|no (default yes), from a flag or
// TIERCACHE_HUGE_PAGES; anything else is an error naming the flag.
func TestHugePagesFlag(t *testing.T) {
	for args, want := range map[string]bool{"": false, "--huge-pages=yes": false, "--huge-pages=no": true} {
		c, err := parseFlags(strings.Fields(args), envOf(nil), nil)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if c.opts.NoHugePages != want {
			t.Errorf("%q: NoHugePages %v, want %v", args, c.opts.NoHugePages, want)
		}
	}
	if c := mustParse(t, nil, map[string]string{"TIERCACHE_HUGE_PAGES": "no"}); !c.opts.NoHugePages {
		t.Error("TIERCACHE_HUGE_PAGES=no not applied")
	}
	if _, err := parseFlags([]string{"--huge-pages", "maybe"}, envOf(nil), nil); err == nil || !strings.Contains(err.Error(), "--huge-pages") {
		t.Errorf("--huge-pages maybe: %v", err)
	}
}

func TestHelpAndVersion(t *testing.T) {
	c, err := parseFlags([]string{"--help"}, envOf(nil), nil)
	if !errors.Is(err, pflag.ErrHelp) || !strings.Contains(c.usage, "--mem-max SIZE") || !strings.Contains(c.usage, "TIERCACHE_MEM_MAX") {
		t.Fatalf("--help: %v\n%s", err, c.usage)
	}
	// Every flag of the contract is there.
	for _, f := range []string{"socket", "socket-mode", "tcp", "requirepass", "requirepass-file", "data-dir", "mem-max",
		"disk-max", "max-value", "write-policy", "flush-interval", "nats", "nats-listen", "nats-creds", "nats-nkey", "nats-user",
		"nats-password", "nats-tls-ca", "nats-tls-cert", "nats-tls-key", "models-bucket", "node-id", "metrics",
		"peer-listen", "peer-advertise", "peer-password", "peer-password-file", "peer-tls-cert", "peer-tls-key", "peer-tls-ca", "peer-timeout",
		"log-level", "log-format", "max-clients", "max-leases", "threads", "eviction", "protected-mode", "version"} {
		if !strings.Contains(c.usage, "--"+f+" ") && !strings.Contains(c.usage, "--"+f+"[") {
			t.Errorf("usage lacks --%s", f)
		}
	}
	if c := mustParse(t, []string{"--version", "--mem-max", "bad"}, nil); !c.version {
		t.Fatal("--version not seen")
	}
}

func TestUnknownEnvReported(t *testing.T) {
	c, err := parseFlags(nil, envOf(nil), []string{"TIERCACHE_MEMMAX=1", "TIERCACHE_MEM_MAX=1GiB", "HOME=/"})
	if err != nil || len(c.unknownEnv) != 1 || c.unknownEnv[0] != "TIERCACHE_MEMMAX" {
		t.Fatalf("unknownEnv %q, %v", c.unknownEnv, err)
	}
}

func TestAutoThreads(t *testing.T) {
	for cpus, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 2, 6: 3, 8: 4, 64: 32} {
		if got := autoThreads(cpus); got != want {
			t.Errorf("autoThreads(%d) = %d, want %d", cpus, got, want)
		}
	}
}

// TestPeerFlags: the fleet cache's flags, from the command line or the
// environment; mutual TLS's three files make a peer listener protected.
func TestPeerFlags(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, name := range []string{"cert", "key", "ca", "pass"} {
		files[name] = filepath.Join(dir, name)
		if err := os.WriteFile(files[name], []byte(" pw\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := mustParse(t, []string{
		"--peer-listen", "0.0.0.0:7000", "--peer-advertise", "host1:7000", "--peer-password-file", files["pass"],
		"--peer-timeout", "250ms",
	}, nil)
	o := c.opts
	if o.PeerListen != "0.0.0.0:7000" || o.PeerAdvertise != "host1:7000" || o.PeerPassword != "pw" || o.PeerTimeout != 250*time.Millisecond {
		t.Fatalf("options %+v", o)
	}
	c = mustParse(t, nil, map[string]string{
		"TIERCACHE_PEER_LISTEN": "10.1.2.3:7000", "TIERCACHE_PEER_TLS_CERT": files["cert"],
		"TIERCACHE_PEER_TLS_KEY": files["key"], "TIERCACHE_PEER_TLS_CA": files["ca"],
	})
	o = c.opts
	if o.PeerListen != "10.1.2.3:7000" || o.PeerTLSCert != files["cert"] || o.PeerTLSKey != files["key"] || o.PeerTLSCA != files["ca"] || o.PeerPassword != "" {
		t.Fatalf("options from the environment %+v", o)
	}
}

// TestFlagMaxLeases: --max-leases, from the command line or
// TIERCACHE_MAX_LEASES, reaches the server's options and the memory bound.
func TestFlagMaxLeases(t *testing.T) {
	if o := mustParse(t, []string{"--max-leases", "2500"}, nil).opts; o.MaxLeases != 2500 {
		t.Errorf("--max-leases 2500 gave %d", o.MaxLeases)
	}
	env := map[string]string{"TIERCACHE_MAX_LEASES": "300"}
	if o := mustParse(t, nil, env).opts; o.MaxLeases != 300 {
		t.Errorf("TIERCACHE_MAX_LEASES=300 gave %d", o.MaxLeases)
	}
	if o := mustParse(t, []string{"--max-leases=40"}, env).opts; o.MaxLeases != 40 {
		t.Errorf("the flag lost to the environment: %d", o.MaxLeases)
	}
	if _, err := parseFlags(nil, envOf(map[string]string{"TIERCACHE_MAX_LEASES": "-1"}), nil); err == nil || !strings.Contains(err.Error(), "must be at least 1") {
		t.Errorf("TIERCACHE_MAX_LEASES=-1: %v", err)
	}
}
