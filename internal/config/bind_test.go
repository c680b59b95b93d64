package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// testFlags is a small flag table: sizes, a duration, a string and an int.
type testFlags struct {
	memMax, flush, socket, clients string
	version                        bool
}

func newTestSet(t *testing.T, args []string) (*pflag.FlagSet, *testFlags) {
	t.Helper()
	var f testFlags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f.memMax, f.flush, f.socket, f.clients = "1GiB", "200ms", "/tmp/x.sock", "10"
	fs.Var(Text(&f.memMax, "SIZE"), "mem-max", "L1 capacity")
	fs.Var(Text(&f.flush, "DURATION"), "flush-interval", "flush interval")
	fs.Var(Text(&f.socket, "PATH"), "socket", "socket")
	fs.Var(Text(&f.clients, "N"), "max-clients", "clients")
	fs.BoolVar(&f.version, "version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs, &f
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvName(t *testing.T) {
	if got := EnvName("TIERCACHE_", "mem-max"); got != "TIERCACHE_MEM_MAX" {
		t.Fatalf("EnvName = %q", got)
	}
	if got := EnvName("TIERCACHE_", "nats-tls-ca"); got != "TIERCACHE_NATS_TLS_CA" {
		t.Fatalf("EnvName = %q", got)
	}
}

func TestBindPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		want       int64
		wantSource string
		wantGiven  bool
	}{
		{"default", nil, nil, 1 << 30, "--mem-max", false},
		{"env", nil, map[string]string{"TIERCACHE_MEM_MAX": "2GiB"}, 2 << 30, "TIERCACHE_MEM_MAX", true},
		{"flag", []string{"--mem-max", "3GiB"}, nil, 3 << 30, "--mem-max", true},
		{"flag wins over env", []string{"--mem-max=3GiB"}, map[string]string{"TIERCACHE_MEM_MAX": "2GiB"}, 3 << 30, "--mem-max", true},
		{"flag equal to default still wins", []string{"--mem-max=1GiB"}, map[string]string{"TIERCACHE_MEM_MAX": "2GiB"}, 1 << 30, "--mem-max", true},
		{"empty env is unset", nil, map[string]string{"TIERCACHE_MEM_MAX": ""}, 1 << 30, "--mem-max", false},
		{"other prefix ignored", nil, map[string]string{"MEM_MAX": "2GiB", "TIERCACHEMEM_MAX": "2GiB"}, 1 << 30, "--mem-max", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _ := newTestSet(t, tc.args)
			b := Bind(fs, "TIERCACHE_", env(tc.env), "version")
			var got int64
			b.Size("mem-max", &got)
			if err := b.Err(); err != nil {
				t.Fatal(err)
			}
			if got != tc.want || b.Source("mem-max") != tc.wantSource || b.Given("mem-max") != tc.wantGiven {
				t.Fatalf("got %d from %s (given %v), want %d from %s (given %v)",
					got, b.Source("mem-max"), b.Given("mem-max"), tc.want, tc.wantSource, tc.wantGiven)
			}
		})
	}
}

func TestBindSkip(t *testing.T) {
	fs, f := newTestSet(t, nil)
	b := Bind(fs, "TIERCACHE_", env(map[string]string{"TIERCACHE_VERSION": "true"}), "version")
	if f.version || b.Given("version") || b.Err() != nil {
		t.Fatalf("TIERCACHE_VERSION was applied: version=%v given=%v err=%v", f.version, b.Given("version"), b.Err())
	}
}

func TestBindBadEnvForTypedFlag(t *testing.T) {
	fs, _ := newTestSet(t, nil)
	b := Bind(fs, "TIERCACHE_", env(map[string]string{"TIERCACHE_VERSION": "maybe"}))
	err := b.Err()
	if err == nil || !strings.HasPrefix(err.Error(), `TIERCACHE_VERSION "maybe": `) {
		t.Fatalf("err = %v", err)
	}
}

func TestBindReportsEveryProblem(t *testing.T) {
	fs, _ := newTestSet(t, []string{"--mem-max", "12XB", "--max-clients", "many"})
	b := Bind(fs, "TIERCACHE_", env(map[string]string{"TIERCACHE_FLUSH_INTERVAL": "soon"}))
	var mem int64
	var flush time.Duration
	var clients int
	b.Size("mem-max", &mem)
	b.Duration("flush-interval", &flush)
	b.Int("max-clients", &clients)
	// A Validate complaining about a flag that already failed adds nothing;
	// one about a flag that parsed names the flag and its value.
	var v Problems
	v.Addf("mem-max", "below the minimum")
	v.Addf("socket", "path too long")
	v.Add("", errors.New("no listener at all"))
	b.Check(v.Err())

	want := `--mem-max "12XB": unknown size unit "XB" (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB); ` +
		`TIERCACHE_FLUSH_INTERVAL "soon": not a duration (want Go syntax such as 200ms, 5s or 1m30s); ` +
		`--max-clients "many": not an integer; ` +
		`--socket "/tmp/x.sock": path too long; ` +
		`no listener at all`
	err := b.Err()
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	if !errors.Is(err, ErrSizeUnit) {
		t.Fatalf("errors.Is(err, ErrSizeUnit) = false")
	}
	if mem != 0 || flush != 0 || clients != 0 {
		t.Fatalf("bad values were stored: %d %v %d", mem, flush, clients)
	}
}

func TestProblemFormat(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Flag: "mem-max", Err: errors.New("bad")}, "--mem-max: bad"},
		{Problem{Flag: "tcp", Value: "", Given: true, Err: errors.New("bad")}, `--tcp "": bad`},
		{Problem{Flag: "tcp", Source: "TIERCACHE_TCP", Value: "x", Given: true, Err: errors.New("bad")}, `TIERCACHE_TCP "x": bad`},
		{Problem{Err: errors.New("bad")}, "bad"},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestUnknownEnv(t *testing.T) {
	fs, _ := newTestSet(t, nil)
	got := UnknownEnv(fs, "TIERCACHE_", []string{
		"TIERCACHE_MEM_MAX=1GiB", "TIERCACHE_MEM_MAXX=2", "PATH=/bin", "TIERCACHE_A=", "TIERCACHE_SOCKET=/x",
	})
	if want := []string{"TIERCACHE_A", "TIERCACHE_MEM_MAXX"}; !slices.Equal(got, want) {
		t.Fatalf("UnknownEnv = %q, want %q", got, want)
	}
}

func TestBindRedact(t *testing.T) {
	fs, _ := newTestSet(t, []string{"--socket", "secret", "--mem-max", "hunter2"})
	b := Bind(fs, "TIERCACHE_", env(nil))
	b.Redact("socket", nil)
	b.Redact("mem-max", func(string) string { return "xxxxx" })
	b.Fail("socket", errors.New("bad"))
	var n int64
	b.Size("mem-max", &n)
	err := b.Err()
	if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "hunter2") ||
		!strings.HasPrefix(err.Error(), `--socket: bad; --mem-max "xxxxx": `) {
		t.Fatalf("error %v", err)
	}
}
