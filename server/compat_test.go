package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
)

// These tests run the real tools users point at a Redis server: redis-cli,
// redis-benchmark, redis-py, and redis-server itself as the reference for
// replies. Each skips when its tool is absent, and fails then under CI
// (testutil.NeedTool); .ci/run installs them.

// needTool returns the path of redis-server, or of a program of Debian's
// redis-tools package (testutil.NeedTool).
func needTool(t *testing.T, name string) string {
	t.Helper()
	pkg := "redis-tools"
	if name == "redis-server" {
		pkg = "redis-server"
	}
	return testutil.NeedTool(t, name, "Debian package "+pkg+"; .ci/run installs it")
}

// runTool runs a program with a deadline, so that a tool waiting for a
// reply that never comes fails the test instead of hanging it.
// Its output is its standard error, then its standard output; the error
// names a non-zero exit code.
func runTool(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	code, stdout, stderr := testutil.RunProcess(t, filepath.Base(name), 60*time.Second, cmd)
	if code != 0 {
		return stderr + stdout, fmt.Errorf("%s exited with %d", filepath.Base(name), code)
	}
	return stderr + stdout, nil
}

func TestCompatRedisCLI(t *testing.T) {
	cli := needTool(t, "redis-cli")
	ts := startServer(t, nil)
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, err := runTool(t, stdin, cli, append([]string{"-s", ts.sock}, args...)...)
		if err != nil {
			t.Fatalf("redis-cli %q: %v\n%s", args, err, out)
		}
		return out
	}
	if out := run("", "PING"); out != "PONG\n" {
		t.Fatalf("redis-cli PING: %q", out)
	}
	if out := run("", "INFO"); !strings.Contains(out, "# Tiers") || !strings.Contains(out, "l1_hits:") {
		t.Fatalf("redis-cli INFO has no # Tiers section:\n%s", out)
	}
	if out := run("", "SET", "greeting", "hello world"); out != "OK\n" {
		t.Fatalf("redis-cli SET: %q", out)
	}
	if out := run("", "GET", "greeting"); out != "hello world\n" {
		t.Fatalf("redis-cli GET: %q", out)
	}
	if out := run("", "GET", "missing"); out != "\n" {
		t.Fatalf("redis-cli GET of a missing key: %q", out)
	}
	if out := run("", "MGET", "greeting", "missing"); out != "hello world\n\n" {
		t.Fatalf("redis-cli MGET: %q", out)
	}
	// Interactive start-up (COMMAND DOCS for hints, then the REPL), with the
	// commands on stdin.
	if out := run("SET a 1\nGET a\nDEL a\nGET a\nPING\n"); out != "OK\n1\n1\n\nPONG\n" {
		t.Fatalf("redis-cli REPL: %q", out)
	}
	// An error is printed, not fatal, in the REPL.
	if out := run("NOSUCH x\nPING\n"); !strings.Contains(out, "ERR unknown command 'NOSUCH'") || !strings.HasSuffix(out, "PONG\n") {
		t.Fatalf("redis-cli REPL with an unknown command: %q", out)
	}
	// --scan needs SCAN, which tiercache does not have: redis-cli must stop
	// with the error rather than hang.
	out, err := runTool(t, "", cli, "-s", ts.sock, "--scan")
	if !strings.Contains(out, "unknown command 'SCAN'") {
		t.Fatalf("redis-cli --scan: %v, output %q; want the unknown command error", err, out)
	}
	t.Logf("redis-cli --scan: exit %v, %q", err, out)
	// The server is unaffected.
	if out := run("", "GET", "greeting"); out != "hello world\n" {
		t.Fatalf("redis-cli GET after --scan: %q", out)
	}
}

func TestCompatRedisCLIAuth(t *testing.T) {
	cli := needTool(t, "redis-cli")
	ts := startServer(t, func(o *Options) { o.RequirePass = "pw" })
	out, err := runTool(t, "", cli, "-s", ts.sock, "--no-auth-warning", "-a", "pw", "PING")
	if err != nil || out != "PONG\n" {
		t.Fatalf("redis-cli -a pw PING: %v %q", err, out)
	}
	out, _ = runTool(t, "", cli, "-s", ts.sock, "PING")
	if !strings.Contains(out, "NOAUTH") {
		t.Fatalf("redis-cli PING without a password: %q", out)
	}
}

func TestCompatRedisBenchmark(t *testing.T) {
	bench := needTool(t, "redis-benchmark")
	ts := startServer(t, nil)
	out, err := runTool(t, "", bench, "-s", ts.sock, "-t", "set,get", "-n", "2000", "-c", "16", "-q")
	if err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	for _, cmd := range []string{"SET", "GET"} {
		// -q still prints progress lines ending in CR before each result.
		re := regexp.MustCompile(`(?m)(^|\r)` + cmd + `: [0-9.]+ requests per second`)
		if !re.MatchString(out) {
			t.Errorf("redis-benchmark reports no %s rate:\n%s", cmd, out)
		}
	}
	t.Logf("redis-benchmark:\n%s", strings.TrimSpace(out))
	// redis-benchmark's SETs really were stored.
	if got := ts.dial(t).do("GET", "key:__rand_int__"); got == "(nil)" {
		t.Errorf("the benchmark's key is missing")
	}
}

// pythonWithRedis finds a Python 3 that can import redis (redis-py): the
// one in PATH, or the system one (python3-redis installs into it). Without
// one the test skips, or fails under CI (testutil.ToolMissing).
func pythonWithRedis(t *testing.T) string {
	t.Helper()
	var cands []string
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/bin/python3")
	for _, p := range cands {
		if exec.Command(p, "-c", "import redis").Run() == nil {
			return p
		}
	}
	testutil.ToolMissing(t, "no python3 with the redis package (tried %v; Debian package python3-redis, which .ci/run installs)", cands)
	return ""
}

const pyScript = `
import array, struct, sys
import redis

r = redis.Redis(unix_socket_path=sys.argv[1], socket_timeout=30)
assert r.ping()
# An embedding as a client would store it: float32s packed two ways.
vec = array.array('f', [i * 0.25 for i in range(768)]).tobytes()
packed = struct.pack('<4sI768f', b'EMB1', 768, *[i * 0.25 for i in range(768)])
blob = bytes(range(256)) * 64 + b'\x00\r\n\xff'
assert r.set('emb:1', vec) is True
assert r.set(b'emb:\x00\xff', packed) is True
assert r.set('blob', blob, ex=100) is True
assert r.get('emb:1') == vec
assert r.get(b'emb:\x00\xff') == packed
got = r.get('blob')
assert got == blob, len(got)
assert r.get('missing') is None
assert r.mget(['emb:1', 'missing', 'blob']) == [vec, None, blob]
assert r.ttl('blob') == 100, r.ttl('blob')
assert r.ttl('emb:1') == -1
assert r.ttl('missing') == -2
assert r.exists('emb:1', 'blob', 'missing') == 2
assert r.delete('emb:1', 'missing') == 1
assert r.get('emb:1') is None
assert r.set('nx', 'a', nx=True) is True
assert r.set('nx', 'b', nx=True) is None
assert r.set('ex', 'v', px=1500) is True
assert r.pttl('ex') == 1500
info = r.info()
assert 'l1_hits' in info and 'connected_clients' in info, sorted(info)
assert r.info('tiers')['write_policy'] == 'through'
# The eviction policy as clients parse it: a Redis-shaped policy name.
assert r.info('memory')['maxmemory_policy'] == 'allkeys-s3fifo', r.info('memory')
assert r.config_get('maxmemory-policy') == {'maxmemory-policy': 'allkeys-s3fifo'}
pipe = r.pipeline(transaction=False)
for i in range(200):
    pipe.set('p%d' % i, struct.pack('<d', i))
for i in range(200):
    pipe.get('p%d' % i)
res = pipe.execute()
assert res[:200] == [True] * 200
assert [struct.unpack('<d', v)[0] for v in res[200:]] == [float(i) for i in range(200)]
try:
    r.execute_command('NOSUCH')
    raise SystemExit('no error for an unknown command')
except redis.ResponseError as e:
    assert 'unknown command' in str(e), e
r.execute_command('MODEL.ROLLOUT', 'clip', 'v2')
try:
    r.set('{clip@v1}x', b'old')
    raise SystemExit('no error for a stale write')
except redis.ResponseError as e:
    assert str(e) == 'STALE clip is at v2', e
assert r.dbsize() >= 0
print('python ok')
`

func TestCompatPython(t *testing.T) {
	py := pythonWithRedis(t)
	ts := startServer(t, nil)
	out, err := runTool(t, "", py, "-c", pyScript, ts.sock)
	if err != nil || !strings.Contains(out, "python ok") {
		t.Fatalf("python redis script: %v\n%s", err, out)
	}
}

// startRedisServer starts a real redis-server on a Unix socket, as the
// reference for replies, and returns a raw connection to it.
func startRedisServer(t *testing.T, extra ...string) *rawConn {
	t.Helper()
	return dialUnix(t, startRedisServerSocket(t, extra...))
}

// dialUnix returns a raw connection to a Unix socket, closed at the end of
// the test.
func dialUnix(t *testing.T, sock string) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// startRedisServerSocket starts a real redis-server on a Unix socket and
// returns the socket's path once it accepts connections.
func startRedisServerSocket(t *testing.T, extra ...string) string {
	t.Helper()
	srv := needTool(t, "redis-server")
	dir, err := os.MkdirTemp("", "tcref")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	refSock := filepath.Join(dir, "redis.sock")
	args := append([]string{"--port", "0", "--unixsocket", refSock, "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--loglevel", "warning"}, extra...)
	p := testutil.StartProcess(t, "redis-server", exec.Command(srv, args...))
	p.CheckFor(20*time.Second, func() error {
		nc, err := net.Dial("unix", refSock)
		if err == nil {
			nc.Close()
		}
		return err
	})
	return refSock
}

// compareWithRedis sends each command to both servers and reports the
// replies that differ.
func compareWithRedis(t *testing.T, ref, ours *rawConn, script [][]string) {
	t.Helper()
	for _, args := range script {
		want := ref.do(args...)
		got := ours.do(args...)
		if got != want {
			t.Errorf("%q:\n tiercache %s\n redis     %s", args, got, want)
		}
	}
}

// TestCompatReferenceRedis sends the same commands to tiercache and to a
// real redis-server and compares the replies: Redis is the reference for
// the semantics and the error wording of the commands both have. (What
// depends on Redis' version is left out: CLIENT SETINFO is new in 7.2, and
// 7.0 applies HELLO's SETNAME before it has checked the other options.)
func TestCompatReferenceRedis(t *testing.T) {
	ref := startRedisServer(t)
	ts := startServer(t, nil)
	ours := ts.dial(t)

	script := [][]string{
		{"PING"}, {"PING", "x"}, {"PING", "a", "b"}, {"ECHO", "e\x00\r\n"}, {"ECHO"},
		{"SELECT", "0"}, {"SELECT", "x"},
		{"GET", "k"}, {"GET"}, {"GET", "a", "b"},
		{"SET", "k", "v"}, {"GET", "k"}, {"SET", "k"},
		{"SET", "k", "v2", "NX"}, {"SET", "k", "v2", "XX"}, {"SET", "k2", "v", "XX"}, {"SET", "k2", "v", "NX", "NX"},
		{"SET", "k", "v3", "GET"}, {"SET", "nk", "v", "GET"}, {"SET", "k", "v4", "NX", "GET"}, {"SET", "nk2", "v", "XX", "GET"},
		{"SET", "k", "v", "EX"}, {"SET", "k", "v", "EX", "0"}, {"SET", "k", "v", "EX", "-3"}, {"SET", "k", "v", "PX", "0"},
		{"SET", "k", "v", "EXAT", "0"}, {"SET", "k", "v", "PXAT", "0"}, {"SET", "k", "v", "EX", "x"},
		{"SET", "k", "v", "EX", "9223372036854775807"}, {"SET", "k", "v", "PX", "9223372036854775807"},
		{"SET", "k", "v", "NX", "XX"}, {"SET", "k", "v", "EX", "1", "PX", "1"}, {"SET", "k", "v", "EX", "5", "EX", "7"},
		{"TTL", "k"}, {"SET", "k", "v", "KEEPTTL"}, {"TTL", "k"}, {"SET", "k", "v", "KEEPTTL", "EX", "5"},
		{"SET", "k", "v", "EX", "5", "KEEPTTL"}, {"SET", "k", "v", "KEEPTTL", "KEEPTTL"}, {"SET", "k", "v", "BOGUS"},
		{"MSET", "a", "1", "b", "2"}, {"MSET", "a", "1", "b"}, {"MSET"}, {"MGET", "a", "zz", "b"}, {"MGET"},
		{"EXISTS", "a", "a", "zz"}, {"EXISTS"}, {"DEL", "a", "a", "zz"}, {"UNLINK", "b", "zz"}, {"DEL"},
		{"SET", "e", "v"}, {"TTL", "e"}, {"PTTL", "e"}, {"TTL", "zz"}, {"PTTL", "zz"}, {"PERSIST", "e"}, {"PERSIST", "zz"},
		{"EXPIRE", "zz", "10"}, {"EXPIRE", "e", "10", "XX"}, {"EXPIRE", "e", "10", "GT"}, {"EXPIRE", "e", "100", "NX"},
		{"EXPIRE", "e", "100", "NX"}, {"EXPIRE", "e", "50", "GT"}, {"EXPIRE", "e", "200", "GT"}, {"EXPIRE", "e", "300", "LT"},
		{"EXPIRE", "e", "150", "LT"}, {"TTL", "e"}, {"EXPIRE", "e", "10", "XX", "GT"}, {"EXPIRE", "e", "10", "NX", "XX"},
		{"EXPIRE", "e", "10", "GT", "LT"}, {"EXPIRE", "e", "10", "NX", "LT"}, {"EXPIRE", "e", "10", "BAD"},
		{"EXPIRE", "e", "x"}, {"EXPIRE", "e"}, {"EXPIRE", "e", "9223372036854775807"}, {"PEXPIRE", "e", "9223372036854775807"},
		{"EXPIRE", "e", "-9223372036854775808"}, {"PERSIST", "e"}, {"TTL", "e"}, {"EXPIRE", "e", "10", "LT"}, {"TTL", "e"},
		{"PEXPIRE", "e", "2500"}, {"PERSIST", "e"}, {"EXPIRE", "e", "200", "LT", "XX"}, {"TTL", "e"},
		{"EXPIRE", "e", "200", "XX", "LT"}, {"EXPIRE", "e", "200", "GT", "XX"}, {"EXPIRE", "e", "100"},
		{"EXPIRE", "e", "50", "LT", "XX"}, {"TTL", "e"}, {"EXPIRE", "e", "60", "lt", "xx", "LT"}, {"TTL", "e"},
		{"EXPIRE", "e", "x", "BAD"}, {"EXPIRE", "e", "x", "NX", "XX"}, {"EXPIRE", "e", "x", "GT", "LT"},
		{"EXPIRE", "e", "10", "GT", "BAD", "LT"}, {"EXPIRE", "zz", "x"}, {"EXPIRE", "zz", "10", "XX"},
		{"PEXPIRE", "e", "2500"},
		{"EXPIRE", "e", "0"}, {"EXISTS", "e"}, {"SET", "e", "v"}, {"PEXPIRE", "e", "-1"}, {"GET", "e"},
		{"FLUSHALL", "BOGUS"}, {"FLUSHALL", "ASYNC", "SYNC"}, {"FLUSHALL", "sync", "x"}, {"FLUSHDB", "BOGUS"},
		{"FLUSHDB", "ASYNC", "ASYNC"}, {"FLUSHDB", "x", "y", "z"}, {"SET", "f", "v"}, {"FLUSHDB"}, {"GET", "f"},
		{"SET", "f", "v"}, {"FLUSHDB", "ASYNC"}, {"EXISTS", "f"}, {"SET", "f", "v"}, {"FLUSHDB", "sync"}, {"GET", "f"},
		{"FLUSHALL", "Async"},
		{"CLIENT", "GETNAME"}, {"CLIENT", "SETNAME", "a b"}, {"CLIENT", "SETNAME", "n1"}, {"CLIENT", "GETNAME"},
		{"CLIENT", "SETNAME"}, {"CLIENT", "BOGUS"}, {"CLIENT"},
		{"AUTH", "x"}, {"AUTH", "default", "x"}, {"AUTH", "someone", "x"}, {"AUTH", "a", "b", "c"},
		{"HELLO", "x"}, {"HELLO", "1"}, {"HELLO", "4"}, {"HELLO", "2", "SETNAME"}, {"HELLO", "2", "AUTH", "default"},
		{"HELLO", "2", "FOO"}, {"HELLO", "2", "SETNAME", "a b"}, {"HELLO", "2", "SETNAME", "a", "b"},
		{"HELLO", "2", "AUTH", "someone", "x"},
		{"nosuch"}, {"nosuch", "a", "b"}, {"nosuch", "a\r\nb"}, {"nosuch", strings.Repeat("a", 200), "b"},
		{"nosuch", strings.Repeat("a", 100), strings.Repeat("b", 100), "c"}, {strings.Repeat("n", 200), "x"},
		{"nosuch", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
		{"COMMAND", "INFO", "nosuch"}, {"COMMAND", "BOGUS"},
		{"CONFIG", "GET", "save"}, {"CONFIG", "GET", "appendonly"}, {"CONFIG", "GET", "nosuch"},
		{"CONFIG", "GET"}, {"CONFIG", "BOGUS"}, {"CONFIG"},
	}
	compareWithRedis(t, ref, ours, script)
}

func TestCompatReferenceRedisAuth(t *testing.T) {
	ref := startRedisServer(t, "--requirepass", "pw")
	ts := startServer(t, func(o *Options) { o.RequirePass = "pw" })
	compareWithRedis(t, ref, ts.dial(t), [][]string{
		{"GET", "k"}, {"PING"}, {"SET", "k", "v"}, {"SELECT", "1"}, {"nosuch", "x"},
		{"AUTH", "wrong"}, {"AUTH", "someone", "pw"}, {"AUTH", "a", "b", "c"}, {"AUTH"},
		{"HELLO", "2", "AUTH", "default", "wrong"}, {"HELLO", "2", "AUTH", "someone", "pw"}, {"HELLO", "2", "AUTH", "default"},
		{"GET", "k"}, {"AUTH", "pw"}, {"GET", "k"}, {"AUTH", "default", "pw"}, {"PING"}, {"AUTH", "wrong"}, {"PING"},
	})
}

// TestCompatReferenceRedisProtocolLimits sends out-of-range lengths to
// tiercache and to a real redis-server, each on a connection of its own,
// and compares the replies and that each server closes the connection:
// a bulk length over Redis' 512 MiB limit, and a multibulk count Redis
// rejects, are protocol errors answered at once, not values to wait for.
func TestCompatReferenceRedisProtocolLimits(t *testing.T) {
	refSock := startRedisServerSocket(t)
	ts := startServer(t, nil)
	for _, in := range []string{
		"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", // Redis' own test
		"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$536870913\r\n",  // 512 MiB + 1
		"*1\r\n$9223372036854775807\r\n",
		"*3000000000\r\n",
		"*2147483648\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n",
	} {
		var got [2]string
		for i, c := range []*rawConn{dialUnix(t, refSock), ts.dial(t)} {
			_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c.nc, in)
			replies, err := c.repliesUntilClosed()
			got[i] = strings.Join(replies, " ")
			if err != nil {
				got[i] += " (not closed)"
				t.Logf("%q: %v", in, err)
			}
		}
		if got[0] != got[1] {
			t.Errorf("%q:\n tiercache %s\n redis     %s", in, got[1], got[0])
		}
	}
}
