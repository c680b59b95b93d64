package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// These tests talk to a real server over a real Unix socket, with go-redis
// (the client most Go users have) for the ordinary paths and a raw
// connection where the exact bytes of a reply matter (error wording, nil
// versus empty, types).

// step is one command of a script and the reply expected, in formatReply's
// notation: +OK, -ERR …, :1, "bulk", (nil), [a b].
type step struct {
	args []string
	want string
}

func runScript(t *testing.T, c *rawConn, steps []step) {
	t.Helper()
	for _, s := range steps {
		if got := c.do(s.args...); got != s.want {
			t.Errorf("%q: got %s, want %s", s.args, got, s.want)
		}
	}
}

func args(s ...string) []string { return s }

func TestRedisDefaultClient(t *testing.T) {
	// A default go-redis client starts with HELLO 3, gets NOPROTO and falls
	// back to RESP2; everything then works as against Redis.
	ts := startServer(t, nil)
	rdb := ts.client(t, nil)
	ctx := context.Background()
	if got, err := rdb.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING: %q, %v", got, err)
	}
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET: %q, %v", got, err)
	}
	if _, err := rdb.Get(ctx, "missing").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET missing: %v, want redis.Nil", err)
	}
	// A client that asks for RESP2 up front, with a name.
	rdb2 := ts.client(t, &redis.Options{Protocol: 2, ClientName: "two"})
	if got, err := rdb2.ClientGetName(ctx).Result(); err != nil || got != "two" {
		t.Fatalf("CLIENT GETNAME: %q, %v", got, err)
	}
}

func TestRedisPingEchoQuit(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	if got, err := rdb.Echo(ctx, "hello\x00world").Result(); err != nil || got != "hello\x00world" {
		t.Fatalf("ECHO: %q, %v", got, err)
	}
	c := ts.dial(t)
	runScript(t, c, []step{
		{args("PING"), "+PONG"},
		{args("ping"), "+PONG"},
		{args("PING", "hi there"), `"hi there"`},
		{args("PING", ""), `""`},
		{args("PING", "a", "b"), "-ERR wrong number of arguments for 'ping' command"},
		{args("ECHO", "x\r\ny"), `"x\r\ny"`},
		{args("ECHO"), "-ERR wrong number of arguments for 'echo' command"},
		{args("ECHO", "a", "b"), "-ERR wrong number of arguments for 'echo' command"},
	})
	// Inline commands (telnet style) work too.
	c.send("PING\r\n")
	if got := c.reply(); got != "+PONG" {
		t.Fatalf("inline PING: %s", got)
	}
	c.send("ECHO \"a b\\x41\"\r\n")
	if got := c.reply(); got != `"a bA"` {
		t.Fatalf("inline ECHO: %s", got)
	}
	if got := c.do("QUIT"); got != "+OK" {
		t.Fatalf("QUIT: %s", got)
	}
	c.expectClosed()
}

func TestRedisHello(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	id := c.do("CLIENT", "ID")
	got := c.do("HELLO", "2")
	want := `["server" "redis" "version" "7.2.0" "proto" :2 "id" ` + id + ` "mode" "standalone" "role" "master" "modules" [] "tiercache_version" "test"]`
	if got != want {
		t.Fatalf("HELLO 2:\n got %s\nwant %s", got, want)
	}
	if got := c.do("HELLO"); got != want {
		t.Fatalf("HELLO:\n got %s\nwant %s", got, want)
	}
	runScript(t, c, []step{
		{args("HELLO", "3"), "-NOPROTO unsupported protocol version"},
		{args("HELLO", "1"), "-NOPROTO unsupported protocol version"},
		{args("HELLO", "x"), "-ERR Protocol version is not an integer or out of range"},
		{args("HELLO", "2", "SETNAME"), "-ERR Syntax error in HELLO option 'SETNAME'"},
		{args("HELLO", "2", "AUTH", "default"), "-ERR Syntax error in HELLO option 'AUTH'"},
		{args("HELLO", "2", "BOGUS"), "-ERR Syntax error in HELLO option 'BOGUS'"},
		{args("HELLO", "2", "SETNAME", "a b"), "-ERR Client names cannot contain spaces, newlines or special characters."},
		{args("HELLO", "2", "SETNAME", "a", "b"), "-ERR Syntax error in HELLO option 'b'"},
		{args("HELLO", "2", "AUTH", "someone", "pw"), "-WRONGPASS invalid username-password pair or user is disabled."},
		{args("CLIENT", "GETNAME"), "(nil)"}, // no name set by a refused HELLO
	})
	// Without a password configured, the default user accepts any
	// password (Redis' nopass default user).
	if got := c.do("HELLO", "2", "AUTH", "default", "pw"); got != want {
		t.Fatalf("HELLO 2 AUTH default pw:\n got %s\nwant %s", got, want)
	}
	if got := c.do("HELLO", "2", "SETNAME", "named"); !strings.HasPrefix(got, `["server"`) {
		t.Fatalf("HELLO 2 SETNAME: %s", got)
	}
	if got := c.do("CLIENT", "GETNAME"); got != `"named"` {
		t.Fatalf("name after HELLO SETNAME: %s", got)
	}
	// The connection still speaks RESP2 after a refused HELLO 3.
	if got := c.do("PING"); got != "+PONG" {
		t.Fatalf("PING: %s", got)
	}
}

func TestRedisAuth(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.RequirePass = "s3cret" })
	ctx := context.Background()

	c := ts.dial(t)
	runScript(t, c, []step{
		{args("GET", "k"), "-NOAUTH Authentication required."},
		{args("PING"), "-NOAUTH Authentication required."},
		{args("SET", "k", "v"), "-NOAUTH Authentication required."},
		{args("HELLO", "2"), "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"},
		{args("AUTH", "wrong"), "-WRONGPASS invalid username-password pair or user is disabled."},
		{args("AUTH", "someone", "s3cret"), "-WRONGPASS invalid username-password pair or user is disabled."},
		{args("HELLO", "2", "AUTH", "default", "wrong"), "-WRONGPASS invalid username-password pair or user is disabled."},
		{args("AUTH", "a", "b", "c"), "-ERR syntax error"},
		{args("GET", "k"), "-NOAUTH Authentication required."},
		{args("AUTH", "s3cret"), "+OK"},
		{args("GET", "k"), "(nil)"},
		{args("AUTH", "default", "s3cret"), "+OK"},
	})
	// HELLO with AUTH authenticates in one step.
	c2 := ts.dial(t)
	if got := c2.do("HELLO", "2", "AUTH", "default", "s3cret"); !strings.HasPrefix(got, `["server"`) {
		t.Fatalf("HELLO 2 AUTH: %s", got)
	}
	if got := c2.do("PING"); got != "+PONG" {
		t.Fatalf("PING after HELLO AUTH: %s", got)
	}
	// QUIT needs no AUTH.
	c3 := ts.dial(t)
	if got := c3.do("QUIT"); got != "+OK" {
		t.Fatalf("QUIT: %s", got)
	}
	c3.expectClosed()

	// go-redis: with the password (HELLO 3 AUTH fails with NOPROTO, the
	// client falls back to AUTH), without, and with a wrong one.
	good := ts.client(t, &redis.Options{Password: "s3cret"})
	if err := good.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET with password: %v", err)
	}
	none := ts.client(t, &redis.Options{MaxRetries: -1})
	if err := none.Get(ctx, "k").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH ") {
		t.Fatalf("GET without password: %v, want NOAUTH", err)
	}
	bad := ts.client(t, &redis.Options{Password: "nope", MaxRetries: -1})
	if err := bad.Get(ctx, "k").Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("GET with a wrong password: %v, want WRONGPASS", err)
	}
	info := good.Info(ctx, "stats").Val()
	if v, _ := infoField(info, "auth_failures"); v == "" || v == "0" {
		t.Fatalf("auth_failures = %q after failed AUTHs", v)
	}

	// Without a configured password, AUTH is an error (as Redis).
	ts2 := startServer(t, nil)
	c4 := ts2.dial(t)
	runScript(t, c4, []step{
		{args("AUTH", "x"), "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
		{args("AUTH", "default", "anything"), "+OK"}, // the default user has no password
		{args("AUTH", "someone", "x"), "-WRONGPASS invalid username-password pair or user is disabled."},
		{args("PING"), "+PONG"},
	})
	// So a client configured with user and password works there too.
	if err := ts2.client(t, &redis.Options{Username: "default", Password: "x"}).Ping(ctx).Err(); err != nil {
		t.Fatalf("client with a password, server without: %v", err)
	}
}

func TestRedisSelect(t *testing.T) {
	ts := startServer(t, nil)
	runScript(t, ts.dial(t), []step{
		{args("SELECT", "0"), "+OK"},
		{args("SELECT", "1"), "-ERR DB index is out of range"},
		{args("SELECT", "x"), "-ERR value is not an integer or out of range"},
		{args("SELECT"), "-ERR wrong number of arguments for 'select' command"},
	})
	// go-redis with DB 1 fails to connect; with DB 0 it works.
	ctx := context.Background()
	if err := ts.client(t, &redis.Options{DB: 1, MaxRetries: -1}).Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "DB index is out of range") {
		t.Fatalf("client with DB 1: %v", err)
	}
	if err := ts.client(t, &redis.Options{DB: 0}).Ping(ctx).Err(); err != nil {
		t.Fatalf("client with DB 0: %v", err)
	}
}

func TestRedisClient(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	runScript(t, c, []step{
		{args("CLIENT", "GETNAME"), "(nil)"},
		{args("CLIENT", "SETNAME", "worker-1"), "+OK"},
		{args("CLIENT", "GETNAME"), `"worker-1"`},
		{args("client", "setname", "has space"), "-ERR Client names cannot contain spaces, newlines or special characters."},
		{args("CLIENT", "SETNAME"), "-ERR wrong number of arguments for 'client|setname' command"},
		{args("CLIENT", "GETNAME", "x"), "-ERR wrong number of arguments for 'client|getname' command"},
		{args("CLIENT", "SETINFO", "LIB-NAME", "mylib"), "+OK"},
		{args("CLIENT", "SETINFO", "lib-ver", "1.2.3"), "+OK"},
		{args("CLIENT", "SETINFO", "bogus", "x"), "-ERR Unrecognized option 'bogus'"},
		{args("CLIENT", "SETINFO", "LIB-NAME"), "-ERR wrong number of arguments for 'client|setinfo' command"},
		{args("CLIENT", "BOGUS"), "-ERR unknown subcommand 'BOGUS'. Try CLIENT HELP."},
		{args("CLIENT"), "-ERR wrong number of arguments for 'client' command"},
	})
	id1 := c.do("CLIENT", "ID")
	id2 := ts.dial(t).do("CLIENT", "ID")
	if !strings.HasPrefix(id1, ":") || !strings.HasPrefix(id2, ":") || id1 == id2 {
		t.Fatalf("CLIENT ID: %s and %s, want two distinct integers", id1, id2)
	}
	if list := c.do("CLIENT", "LIST"); !strings.Contains(list, "name=worker-1") || !strings.Contains(list, "id="+id1[1:]+" ") {
		t.Fatalf("CLIENT LIST does not show this client: %s", list)
	}

	ctx := context.Background()
	rdb := ts.client(t, &redis.Options{PoolSize: 1})
	if err := rdb.Do(ctx, "CLIENT", "SETNAME", "gr").Err(); err != nil {
		t.Fatal(err)
	}
	if got := rdb.ClientGetName(ctx).Val(); got != "gr" {
		t.Fatalf("go-redis CLIENT GETNAME: %q", got)
	}
	if id, err := rdb.ClientID(ctx).Result(); err != nil || id <= 0 {
		t.Fatalf("go-redis CLIENT ID: %d, %v", id, err)
	}
}

func TestRedisCommand(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	infos, err := rdb.Command(ctx).Result()
	if err != nil {
		t.Fatalf("COMMAND: %v", err)
	}
	if len(infos) != len(commands) {
		t.Fatalf("COMMAND lists %d commands, want %d", len(infos), len(commands))
	}
	for _, name := range []string{"get", "set", "mget", "mset", "del", "unlink", "exists", "expire", "pexpire", "persist",
		"ttl", "pttl", "dbsize", "flushall", "flushdb", "info", "ping", "echo", "quit", "hello", "auth", "select", "client", "command",
		"model.rollout", "model.get", "model.list", "model.purge"} {
		if infos[name] == nil {
			t.Errorf("COMMAND does not list %s", name)
		}
	}
	get := infos["get"]
	if get.Arity != 2 || get.FirstKeyPos != 1 || get.LastKeyPos != 1 || get.StepCount != 1 || !get.ReadOnly {
		t.Errorf("COMMAND get: %+v", get)
	}
	set := infos["set"]
	if set.Arity != -3 || set.ReadOnly || !contains(set.Flags, "write") {
		t.Errorf("COMMAND set: %+v", set)
	}
	if mset := infos["mset"]; mset.LastKeyPos != -1 || mset.StepCount != 2 {
		t.Errorf("COMMAND mset: %+v", mset)
	}
	if n, err := rdb.Do(ctx, "COMMAND", "COUNT").Int64(); err != nil || n != int64(len(commands)) {
		t.Fatalf("COMMAND COUNT: %d, %v", n, err)
	}

	c := ts.dial(t)
	runScript(t, c, []step{
		{args("COMMAND", "DOCS"), "[]"},
		{args("COMMAND", "DOCS", "get"), "[]"},
		{args("COMMAND", "INFO", "get", "nosuch", "SET"), "[[" + `"get" :2 [+readonly +fast] :1 :1 :1` + "] (nil) [" + `"set" :-3 [+write] :1 :1 :1` + "]]"},
		{args("COMMAND", "INFO"), "[]"},
		{args("COMMAND", "COUNT"), ":" + strconv.Itoa(len(commands))},
		{args("COMMAND", "BOGUS"), "-ERR unknown subcommand 'BOGUS'. Try COMMAND HELP."},
	})
	if got := c.do("COMMAND", "LIST"); !strings.Contains(got, `"model.rollout"`) {
		t.Errorf("COMMAND LIST: %s", got)
	}
}

func TestRedisConfig(t *testing.T) {
	// CONFIG GET answers what redis-benchmark and other tools read at
	// start-up; CONFIG SET is refused (tiercached is configured by flags).
	ts := startServer(t, func(o *Options) { o.MaxClients = 77; o.MaxValue = 5 << 20 })
	ctx := context.Background()
	rdb := ts.client(t, nil)
	got, err := rdb.ConfigGet(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"save": "", "appendonly": "no", "databases": "1", "maxclients": "77",
		"proto-max-bulk-len": strconv.Itoa(5 << 20), "maxmemory": strconv.Itoa(32 << 20), "maxmemory-policy": "allkeys-s3fifo",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("CONFIG GET *: %v, want %v", got, want)
	}
	runScript(t, ts.dial(t), []step{
		{args("CONFIG", "GET", "maxmemory*"), `["maxmemory" "33554432" "maxmemory-policy" "allkeys-s3fifo"]`},
		{args("CONFIG", "GET", "save", "appendonly"), `["save" "" "appendonly" "no"]`},
		{args("config", "get", "nosuch"), "[]"},
		{args("CONFIG", "SET", "maxmemory", "1"), "-ERR CONFIG SET is not supported: tiercached is configured by its flags"},
		{args("CONFIG", "GET"), "-ERR wrong number of arguments for 'config|get' command"},
		{args("CONFIG", "BOGUS"), "-ERR unknown subcommand 'BOGUS'. Try CONFIG HELP."},
	})
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func TestRedisGetSet(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	if err := rdb.Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := rdb.Get(ctx, "a").Val(); got != "1" {
		t.Fatalf("GET a = %q", got)
	}
	// Typed go-redis calls for the options.
	if ok, err := rdb.SetNX(ctx, "a", "2", 0).Result(); err != nil || ok {
		t.Fatalf("SETNX of an existing key: %v, %v", ok, err)
	}
	if ok, err := rdb.SetXX(ctx, "a", "3", 0).Result(); err != nil || !ok {
		t.Fatalf("SETXX of an existing key: %v, %v", ok, err)
	}
	if ok, err := rdb.SetXX(ctx, "nokey", "3", 0).Result(); err != nil || ok {
		t.Fatalf("SETXX of a missing key: %v, %v", ok, err)
	}
	if old, err := rdb.SetArgs(ctx, "a", "4", redis.SetArgs{Get: true}).Result(); err != nil || old != "3" {
		t.Fatalf("SET GET: %q, %v", old, err)
	}
	if err := rdb.SetArgs(ctx, "fresh", "x", redis.SetArgs{Get: true}).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("SET GET of a missing key: %v, want redis.Nil", err)
	}
	if err := rdb.Set(ctx, "ex", "v", 90*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if d := rdb.TTL(ctx, "ex").Val(); d != 90*time.Second {
		t.Fatalf("TTL after SET EX 90: %v", d)
	}

	c := ts.dial(t)
	runScript(t, c, []step{
		{args("GET", "nokey"), "(nil)"},
		{args("SET", "k", "v1"), "+OK"},
		{args("GET", "k"), `"v1"`},
		{args("SET", "k", "v2", "NX"), "(nil)"},
		{args("GET", "k"), `"v1"`},
		{args("SET", "n", "v", "NX"), "+OK"},
		{args("SET", "n", "v", "nx", "NX"), "(nil)"}, // repeating an option is allowed, as in Redis
		{args("SET", "x", "v", "XX"), "(nil)"},
		{args("GET", "x"), "(nil)"},
		{args("SET", "k", "v3", "XX"), "+OK"},
		{args("SET", "k", "v4", "GET"), `"v3"`},
		{args("SET", "k", "v5", "NX", "GET"), `"v4"`}, // not stored, old value returned
		{args("GET", "k"), `"v4"`},
		{args("SET", "g", "v", "XX", "GET"), "(nil)"},
		{args("GET", "g"), "(nil)"},
		{args("SET", "g", "v", "NX", "GET"), "(nil)"},
		{args("GET", "g"), `"v"`},

		// Syntax errors.
		{args("SET", "k", "v", "EX"), "-ERR syntax error"},
		{args("SET", "k", "v", "PX"), "-ERR syntax error"},
		{args("SET", "k", "v", "NX", "XX"), "-ERR syntax error"},
		{args("SET", "k", "v", "XX", "NX"), "-ERR syntax error"},
		{args("SET", "k", "v", "EX", "10", "PX", "100"), "-ERR syntax error"},
		{args("SET", "k", "v", "PX", "100", "EXAT", "100"), "-ERR syntax error"},
		{args("SET", "k", "v", "KEEPTTL", "EX", "10"), "-ERR syntax error"},
		{args("SET", "k", "v", "EX", "10", "KEEPTTL"), "-ERR syntax error"},
		{args("SET", "k", "v", "BOGUS"), "-ERR syntax error"},
		{args("SET", "k", "v", "EX", "abc"), "-ERR value is not an integer or out of range"},
		{args("SET", "k", "v", "EX", "1.5"), "-ERR value is not an integer or out of range"},
		{args("SET", "k", "v", "EX", "0"), "-ERR invalid expire time in 'set' command"},
		{args("SET", "k", "v", "EX", "-1"), "-ERR invalid expire time in 'set' command"},
		{args("SET", "k", "v", "PX", "0"), "-ERR invalid expire time in 'set' command"},
		{args("SET", "k", "v", "EXAT", "0"), "-ERR invalid expire time in 'set' command"},
		{args("SET", "k", "v", "PXAT", "-5"), "-ERR invalid expire time in 'set' command"},
		{args("SET", "k", "v", "EX", "9223372036854775807"), "-ERR invalid expire time in 'set' command"},
		{args("SET", "k", "v", "PX", "9223372036854775807"), "-ERR invalid expire time in 'set' command"},
		{args("SET", "k"), "-ERR wrong number of arguments for 'set' command"},
		{args("GET"), "-ERR wrong number of arguments for 'get' command"},
		{args("GET", "a", "b"), "-ERR wrong number of arguments for 'get' command"},
		// None of the refused SETs changed anything.
		{args("GET", "k"), `"v4"`},
		{args("TTL", "k"), ":-1"},
	})
}

func TestRedisSetExpiry(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	nowMs := ts.clock.Now().UnixMilli()
	exat := nowMs/1000 + 100 // whole seconds
	pxat := nowMs + 12345
	runScript(t, c, []step{
		{args("SET", "ex", "v", "EX", "100"), "+OK"},
		{args("TTL", "ex"), ":100"},
		{args("PTTL", "ex"), ":100000"},
		{args("SET", "px", "v", "PX", "1500"), "+OK"},
		{args("PTTL", "px"), ":1500"},
		{args("TTL", "px"), ":2"}, // rounded, as Redis: (1500+500)/1000
		{args("SET", "exat", "v", "EXAT", strconv.FormatInt(exat, 10)), "+OK"},
		{args("PTTL", "exat"), ":" + strconv.FormatInt(exat*1000-nowMs, 10)},
		{args("SET", "pxat", "v", "PXAT", strconv.FormatInt(pxat, 10)), "+OK"},
		{args("PTTL", "pxat"), ":12345"},
		{args("SET", "twice", "v", "EX", "10", "EX", "20"), "+OK"}, // the last one wins, as in Redis
		{args("TTL", "twice"), ":20"},
		// KEEPTTL keeps the expiry; a plain SET drops it.
		{args("SET", "ex", "v2", "KEEPTTL"), "+OK"},
		{args("TTL", "ex"), ":100"},
		{args("GET", "ex"), `"v2"`},
		{args("SET", "ex", "v3"), "+OK"},
		{args("TTL", "ex"), ":-1"},
		// KEEPTTL on a missing key: no expiry.
		{args("SET", "kt", "v", "KEEPTTL"), "+OK"},
		{args("TTL", "kt"), ":-1"},
		// An absolute time in the past: accepted, and the key is gone.
		{args("SET", "past", "v", "PXAT", strconv.FormatInt(nowMs-1000, 10)), "+OK"},
		{args("GET", "past"), "(nil)"},
		{args("TTL", "past"), ":-2"},
	})

	ts.clock.Advance(1000 * time.Millisecond)
	runScript(t, c, []step{
		{args("PTTL", "px"), ":500"},
		{args("TTL", "px"), ":1"},
	})
	ts.clock.Advance(time.Millisecond)
	runScript(t, c, []step{
		{args("PTTL", "px"), ":499"},
		{args("TTL", "px"), ":0"},
	})
	ts.clock.Advance(499 * time.Millisecond)
	runScript(t, c, []step{
		{args("GET", "px"), "(nil)"},
		{args("PTTL", "px"), ":-2"},
		{args("TTL", "px"), ":-2"},
		{args("EXISTS", "px"), ":0"},
		{args("GET", "pxat"), `"v"`},
	})
	ts.clock.Advance(11 * time.Second)
	runScript(t, c, []step{
		{args("GET", "pxat"), "(nil)"},
		{args("GET", "exat"), `"v"`},
	})
}

func TestRedisMgetMset(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	if err := rdb.MSet(ctx, "a", "1", "b", "2", "c", "3").Err(); err != nil {
		t.Fatal(err)
	}
	vals, err := rdb.MGet(ctx, "a", "missing", "c", "b", "a").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{"1", nil, "3", "2", "1"}; fmt.Sprint(vals) != fmt.Sprint(want) {
		t.Fatalf("MGET = %v, want %v", vals, want)
	}
	runScript(t, ts.dial(t), []step{
		{args("MGET", "a", "nope", "b"), `["1" (nil) "2"]`},
		{args("MGET", "nope"), `[(nil)]`},
		{args("MSET", "a", "9", "d"), "-ERR wrong number of arguments for 'mset' command"},
		{args("MSET", "a"), "-ERR wrong number of arguments for 'mset' command"},
		{args("MGET"), "-ERR wrong number of arguments for 'mget' command"},
		{args("GET", "a"), `"1"`}, // the refused MSET wrote nothing
		{args("GET", "d"), "(nil)"},
		{args("MSET", "a", "x", "a", "y"), "+OK"}, // the last one wins
		{args("GET", "a"), `"y"`},
	})
}

func TestRedisMget100(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	var pairs, keys []any
	for i := range 100 {
		k := fmt.Sprintf("key:%03d", i)
		keys = append(keys, k)
		if i%10 == 3 {
			continue // some keys are missing
		}
		pairs = append(pairs, k, strings.Repeat(strconv.Itoa(i), i+1))
	}
	if err := rdb.MSet(ctx, pairs...).Err(); err != nil {
		t.Fatal(err)
	}
	strKeys := make([]string, len(keys))
	for i, k := range keys {
		strKeys[i] = k.(string)
	}
	vals, err := rdb.MGet(ctx, strKeys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 100 {
		t.Fatalf("MGET of 100 keys returned %d values", len(vals))
	}
	for i, v := range vals {
		if i%10 == 3 {
			if v != nil {
				t.Errorf("key %d: %v, want nil", i, v)
			}
			continue
		}
		if want := strings.Repeat(strconv.Itoa(i), i+1); v != want {
			t.Errorf("key %d: %v, want %q", i, v, want)
		}
	}
}

func TestRedisDelExists(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	rdb.MSet(ctx, "a", "1", "b", "2", "c", "3", "d", "4")
	if n, err := rdb.Exists(ctx, "a", "a", "b", "nope").Result(); err != nil || n != 3 {
		t.Fatalf("EXISTS a a b nope = %d, %v; want 3 (duplicates count)", n, err)
	}
	if n, err := rdb.Del(ctx, "a", "b", "nope").Result(); err != nil || n != 2 {
		t.Fatalf("DEL = %d, %v; want 2", n, err)
	}
	if n, err := rdb.Unlink(ctx, "c", "c", "nope").Result(); err != nil || n != 1 {
		t.Fatalf("UNLINK = %d, %v; want 1", n, err)
	}
	runScript(t, ts.dial(t), []step{
		{args("EXISTS", "a", "b", "c", "d", "d"), ":2"},
		{args("DEL", "d", "d"), ":1"},
		{args("DEL", "d"), ":0"},
		{args("EXISTS", "d"), ":0"},
		{args("GET", "d"), "(nil)"},
		{args("DEL"), "-ERR wrong number of arguments for 'del' command"},
		{args("UNLINK"), "-ERR wrong number of arguments for 'unlink' command"},
		{args("EXISTS"), "-ERR wrong number of arguments for 'exists' command"},
	})
}

func TestRedisExpire(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	runScript(t, c, []step{
		{args("EXPIRE", "nokey", "10"), ":0"},
		{args("TTL", "nokey"), ":-2"},
		{args("PTTL", "nokey"), ":-2"},
		{args("PERSIST", "nokey"), ":0"},
		{args("SET", "k", "v"), "+OK"},
		{args("TTL", "k"), ":-1"},
		{args("PTTL", "k"), ":-1"},
		{args("PERSIST", "k"), ":0"}, // no expiry to remove
		{args("EXPIRE", "k", "10", "XX"), ":0"},
		{args("EXPIRE", "k", "10", "GT"), ":0"}, // no expiry counts as infinite
		{args("EXPIRE", "k", "10", "NX"), ":1"},
		{args("TTL", "k"), ":10"},
		{args("EXPIRE", "k", "20", "NX"), ":0"},
		{args("EXPIRE", "k", "20", "XX"), ":1"},
		{args("TTL", "k"), ":20"},
		{args("EXPIRE", "k", "5", "GT"), ":0"},
		{args("EXPIRE", "k", "30", "GT"), ":1"},
		{args("EXPIRE", "k", "40", "LT"), ":0"},
		{args("EXPIRE", "k", "15", "LT"), ":1"},
		{args("TTL", "k"), ":15"},
		{args("EXPIRE", "k", "25", "XX", "GT"), ":1"},
		{args("TTL", "k"), ":25"},
		{args("PEXPIRE", "k", "1500"), ":1"},
		{args("PTTL", "k"), ":1500"},
		{args("TTL", "k"), ":2"},
		{args("GET", "k"), `"v"`},
		{args("PERSIST", "k"), ":1"},
		{args("TTL", "k"), ":-1"},
		{args("EXPIRE", "k", "10", "LT"), ":1"}, // no expiry counts as infinite
		{args("TTL", "k"), ":10"},
		// Option errors.
		{args("EXPIRE", "k", "10", "NX", "XX"), "-ERR NX and XX, GT or LT options at the same time are not compatible"},
		{args("EXPIRE", "k", "10", "NX", "GT"), "-ERR NX and XX, GT or LT options at the same time are not compatible"},
		{args("EXPIRE", "k", "10", "GT", "LT"), "-ERR GT and LT options at the same time are not compatible"},
		{args("EXPIRE", "k", "10", "FOO"), "-ERR Unsupported option FOO"},
		{args("EXPIRE", "k", "ten"), "-ERR value is not an integer or out of range"},
		{args("EXPIRE", "k", "9223372036854775807"), "-ERR invalid expire time in 'expire' command"},
		{args("PEXPIRE", "k", "9223372036854775807"), "-ERR invalid expire time in 'pexpire' command"},
		{args("EXPIRE", "k"), "-ERR wrong number of arguments for 'expire' command"},
		{args("TTL", "k"), ":10"},
		// A non-positive time deletes the key.
		{args("EXPIRE", "k", "0"), ":1"},
		{args("GET", "k"), "(nil)"},
		{args("TTL", "k"), ":-2"},
		{args("SET", "k2", "v"), "+OK"},
		{args("PEXPIRE", "k2", "-100"), ":1"},
		{args("EXISTS", "k2"), ":0"},
		{args("SET", "k3", "v"), "+OK"},
		{args("EXPIRE", "k3", "-9223372036854775808"), "-ERR invalid expire time in 'expire' command"},
		{args("EXISTS", "k3"), ":1"},
	})
	// EXPIRE takes effect as the clock moves.
	runScript(t, c, []step{
		{args("SET", "e", "v"), "+OK"},
		{args("EXPIRE", "e", "2"), ":1"},
	})
	ts.clock.Advance(1999 * time.Millisecond)
	runScript(t, c, []step{{args("GET", "e"), `"v"`}, {args("PTTL", "e"), ":1"}})
	ts.clock.Advance(time.Millisecond)
	runScript(t, c, []step{{args("GET", "e"), "(nil)"}, {args("TTL", "e"), ":-2"}, {args("EXPIRE", "e", "5"), ":0"}})

	ctx := context.Background()
	rdb := ts.client(t, nil)
	rdb.Set(ctx, "g", "v", 0)
	if ok, err := rdb.Expire(ctx, "g", time.Minute).Result(); err != nil || !ok {
		t.Fatalf("go-redis EXPIRE: %v, %v", ok, err)
	}
	if ok, err := rdb.ExpireNX(ctx, "g", time.Hour).Result(); err != nil || ok {
		t.Fatalf("go-redis EXPIRE NX: %v, %v", ok, err)
	}
	if ok, err := rdb.PExpire(ctx, "g", 2500*time.Millisecond).Result(); err != nil || !ok {
		t.Fatalf("go-redis PEXPIRE: %v, %v", ok, err)
	}
	if d := rdb.PTTL(ctx, "g").Val(); d != 2500*time.Millisecond {
		t.Fatalf("go-redis PTTL: %v", d)
	}
	if ok := rdb.Persist(ctx, "g").Val(); !ok {
		t.Fatal("go-redis PERSIST: false")
	}
	if d := rdb.TTL(ctx, "g").Val(); d != -1 {
		t.Fatalf("go-redis TTL after PERSIST: %v", d)
	}
	if d := rdb.TTL(ctx, "nokey").Val(); d != -2 {
		t.Fatalf("go-redis TTL of a missing key: %v", d)
	}
}

func TestRedisDBSizeFlushAll(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("DBSIZE of an empty cache: %d", n)
	}
	rdb.MSet(ctx, "a", "1", "b", "2", "c", "3")
	// DBSIZE is an estimate while writes are on their way to L2.
	waitFor(t, 10*time.Second, "DBSIZE 3", func() bool { return rdb.DBSize(ctx).Val() == 3 })
	rdb.Del(ctx, "a")
	waitFor(t, 10*time.Second, "DBSIZE 2", func() bool { return rdb.DBSize(ctx).Val() == 2 })
	if got, err := rdb.FlushAll(ctx).Result(); err != nil || got != "OK" {
		t.Fatalf("FLUSHALL: %q, %v", got, err)
	}
	if n := rdb.Exists(ctx, "b", "c").Val(); n != 0 {
		t.Fatalf("EXISTS after FLUSHALL: %d", n)
	}
	waitFor(t, 10*time.Second, "DBSIZE 0", func() bool { return rdb.DBSize(ctx).Val() == 0 })
	rdb.Set(ctx, "d", "4", 0)
	if got := rdb.Get(ctx, "d").Val(); got != "4" {
		t.Fatalf("GET after FLUSHALL: %q", got)
	}
	runScript(t, ts.dial(t), []step{
		{args("FLUSHALL", "ASYNC"), "+OK"},
		{args("GET", "d"), "(nil)"},
		{args("FLUSHALL", "SYNC"), "+OK"},
		{args("FLUSHALL", "BOGUS"), "-ERR syntax error"},
		{args("DBSIZE", "x"), "-ERR wrong number of arguments for 'dbsize' command"},
	})
	// FLUSHDB is FLUSHALL: there is one database.
	for _, mode := range [][]string{nil, {"ASYNC"}, {"SYNC"}, {"async"}} {
		rdb.Set(ctx, "e", "5", 0)
		if got, err := rdb.Do(ctx, append([]any{"FLUSHDB"}, toAny(mode)...)...).Text(); err != nil || got != "OK" {
			t.Fatalf("FLUSHDB %v: %q, %v", mode, got, err)
		}
		if n := rdb.Exists(ctx, "e").Val(); n != 0 {
			t.Fatalf("EXISTS after FLUSHDB %v: %d", mode, n)
		}
	}
	if got := rdb.FlushDBAsync(ctx).Val(); got != "OK" {
		t.Fatalf("go-redis FlushDBAsync: %q", got)
	}
	runScript(t, ts.dial(t), []step{
		{args("FLUSHDB", "BOGUS"), "-ERR syntax error"},
		{args("FLUSHDB", "ASYNC", "SYNC"), "-ERR syntax error"},
		{args("FLUSHALL", "SYNC", "SYNC"), "-ERR syntax error"},
	})
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// parseInfo splits INFO text into sections (by their header) of fields.
func parseInfo(t *testing.T, info string) map[string]map[string]string {
	t.Helper()
	sections := map[string]map[string]string{}
	var cur map[string]string
	for _, line := range strings.Split(strings.TrimSuffix(info, "\r\n"), "\r\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "# "):
			cur = map[string]string{}
			sections[line[2:]] = cur
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || cur == nil {
				t.Fatalf("INFO line %q is not name:value in a section", line)
			}
			cur[k] = v
		}
	}
	return sections
}

var infoContract = map[string][]string{
	"Server":   {"tiercache_version", "process_id", "uptime_in_seconds", "node_id"},
	"Clients":  {"connected_clients"},
	"Memory":   {"used_memory", "used_memory_rss"},
	"Stats":    {"keyspace_hits", "keyspace_misses", "total_commands_processed", "rejected_stale_writes", "leases_granted", "lease_waits", "lease_wakeups", "leases_expired"},
	"Tiers":    {"l1_hits", "l1_misses", "l2_hits", "l2_misses", "promotions", "demotions", "l1_evictions", "l2_evictions", "l1_bytes", "l1_max_bytes", "l1_keys", "l2_bytes", "l2_max_bytes", "l2_keys", "l2_corrupt_entries", "l2_write_bytes", "l2_second_chances", "write_policy"},
	"Cluster":  {"nats_connected", "models_revision", "models_known", "rollouts_applied"},
	"Models":   {"unscoped", "unregistered"},
	"Keyspace": {"db0"},
}

// TestInfoL2WriteBytes checks that l2_write_bytes counts what L2 writes to
// its directory: a value written through shows in it at least once (its
// WAL record), and it agrees with the store's own count.
func TestInfoL2WriteBytes(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, &redis.Options{PoolSize: 1})
	field := func() int64 {
		v, _ := infoField(rdb.Info(ctx, "tiers").Val(), "l2_write_bytes")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("l2_write_bytes = %q: %v", v, err)
		}
		return n
	}
	before := field()
	const size = 256 << 10
	if err := rdb.Set(ctx, "big", strings.Repeat("x", size), 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the value's bytes in l2_write_bytes", func() bool {
		return field()-before >= size
	})
	if got, store := field(), int64(ts.l2.Stats().Written); got > store {
		t.Errorf("l2_write_bytes %d, above the store's count %d read after it", got, store)
	}
}

func TestRedisInfo(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, &redis.Options{PoolSize: 1})
	rdb.Set(ctx, "a", "1", 0)
	rdb.Set(ctx, "b", "2", time.Hour)
	rdb.Get(ctx, "a")
	rdb.Get(ctx, "nope")

	info, err := rdb.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	secs := parseInfo(t, info)
	for sec, fields := range infoContract {
		if secs[sec] == nil {
			t.Errorf("INFO has no # %s section", sec)
			continue
		}
		for _, f := range fields {
			if _, ok := secs[sec][f]; !ok {
				t.Errorf("INFO # %s has no %s", sec, f)
			}
		}
	}
	numeric := regexp.MustCompile(`^[0-9]+$`)
	for sec, fields := range infoContract {
		for _, f := range fields {
			if v := secs[sec][f]; !numeric.MatchString(v) && f != "node_id" && f != "tiercache_version" && f != "write_policy" && f != "db0" && sec != "Models" {
				t.Errorf("INFO %s = %q, want a number", f, v)
			}
		}
	}
	checks := []struct{ sec, field, want string }{
		{"Server", "tiercache_version", "test"},
		{"Server", "node_id", "node-test"},
		{"Server", "process_id", strconv.Itoa(os.Getpid())},
		{"Clients", "connected_clients", "1"},
		{"Clients", "inflight_bytes", "4"}, // the INFO command being answered
		{"Clients", "inflight_budget_bytes", strconv.FormatInt(256<<20+smallReserve, 10)},
		{"Clients", "budget_waiting_clients", "0"},
		{"Memory", "memory_bound", "0"}, // not computed: the daemon sets it
		{"Memory", "recycled_buffers_max_bytes", strconv.FormatInt(16<<20, 10)},
		{"Memory", "value_buffers_read", "0"}, // no value of 16 KiB or more yet
		{"Stats", "keyspace_hits", "1"},
		{"Stats", "keyspace_misses", "1"},
		{"Stats", "rejected_stale_writes", "0"},
		{"Tiers", "write_policy", "through"},
		{"Tiers", "l1_max_bytes", strconv.FormatInt(32<<20, 10)},
		{"Tiers", "l2_max_bytes", strconv.FormatInt(256<<20, 10)},
		{"Tiers", "l1_hits", "1"},
		{"Cluster", "nats_connected", "0"},
		{"Cluster", "models_revision", "0"},
	}
	for _, c := range checks {
		if got := secs[c.sec][c.field]; got != c.want {
			t.Errorf("INFO %s = %q, want %q", c.field, got, c.want)
		}
	}
	if n, _ := strconv.Atoi(secs["Stats"]["total_commands_processed"]); n < 4 {
		t.Errorf("total_commands_processed = %d, want at least 4", n)
	}
	if !regexp.MustCompile(`^keys=\d+,expires=\d+`).MatchString(secs["Keyspace"]["db0"]) {
		t.Errorf("INFO db0 = %q, want keys=N,expires=M", secs["Keyspace"]["db0"])
	}
	// The expiring key shows once it reached L2.
	waitFor(t, 10*time.Second, "db0 keys=2,expires=1", func() bool {
		v, _ := infoField(rdb.Info(ctx, "keyspace").Val(), "db0")
		return strings.HasPrefix(v, "keys=2,expires=1")
	})
	// Sections come in the documented order.
	order := []string{"# Server", "# Clients", "# Memory", "# Stats", "# Tiers", "# Cluster", "# Keyspace"}
	last := -1
	for _, h := range order {
		i := strings.Index(info, h+"\r\n")
		if i < last {
			t.Errorf("section %s is out of order", h)
		}
		last = i
	}

	// INFO SECTION returns that section only, whatever the case.
	for _, sec := range []string{"server", "Clients", "MEMORY", "stats", "tiers", "cluster", "models", "keyspace"} {
		got := rdb.Info(ctx, sec).Val()
		s := parseInfo(t, got)
		if len(s) != 1 {
			t.Errorf("INFO %s returned sections %v", sec, keysOf(s))
		}
		for name := range s {
			if !strings.EqualFold(name, sec) {
				t.Errorf("INFO %s returned section %s", sec, name)
			}
		}
	}
	if got := parseInfo(t, rdb.Info(ctx, "tiers", "clients").Val()); len(got) != 2 || got["Tiers"] == nil || got["Clients"] == nil {
		t.Errorf("INFO tiers clients: %v", keysOf(got))
	}
	for _, all := range []string{"all", "everything", "default"} {
		if got := parseInfo(t, rdb.Info(ctx, all).Val()); len(got) != len(infoContract) {
			t.Errorf("INFO %s: sections %v", all, keysOf(got))
		}
	}
	if got := rdb.Info(ctx, "nosuchsection").Val(); got != "" {
		t.Errorf("INFO nosuchsection = %q, want empty", got)
	}

	// connected_clients follows the connections.
	c2 := ts.dial(t)
	c2.do("PING") // accepted and served
	if v, _ := infoField(rdb.Info(ctx, "clients").Val(), "connected_clients"); v != "2" {
		t.Errorf("connected_clients with two clients = %s", v)
	}
	c2.nc.Close()
	waitFor(t, 10*time.Second, "connected_clients 1", func() bool {
		v, _ := infoField(rdb.Info(ctx, "clients").Val(), "connected_clients")
		return v == "1"
	})
}

func keysOf[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestRedisModels(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	rev1, err := rdb.Do(ctx, "MODEL.ROLLOUT", "clip", "v1").Int64()
	if err != nil {
		t.Fatalf("MODEL.ROLLOUT clip v1: %v", err)
	}
	c := ts.dial(t)
	runScript(t, c, []step{
		{args("SET", "{clip@v1}x", "old-x"), "+OK"},
		{args("SET", "{clip}y", "old-y"), "+OK"},
		{args("GET", "{clip@v1}x"), `"old-x"`},
		{args("GET", "{clip}y"), `"old-y"`},
		{args("MODEL.GET", "clip"), `"v1"`},
		{args("SET", "plain", "p"), "+OK"},
	})
	rev2, err := rdb.Do(ctx, "MODEL.ROLLOUT", "clip", "v2").Int64()
	if err != nil || rev2 <= rev1 {
		t.Fatalf("MODEL.ROLLOUT clip v2: %d, %v (first revision %d)", rev2, err, rev1)
	}
	runScript(t, c, []step{
		{args("GET", "{clip@v1}x"), "(nil)"},
		{args("SET", "{clip@v1}x", "again"), "-STALE clip is at v2"},
		{args("GET", "{clip@v1}x"), "(nil)"},
		{args("MSET", "{clip@v2}a", "1", "{clip@v1}b", "2"), "-STALE clip is at v2"},
		{args("GET", "{clip@v2}a"), "(nil)"}, // MSET is all or nothing
		{args("GET", "{clip}y"), "(nil)"},    // written before the rollout
		{args("SET", "{clip}y", "new-y"), "+OK"},
		{args("GET", "{clip}y"), `"new-y"`},
		{args("SET", "{clip@v2}x", "new-x"), "+OK"},
		{args("GET", "{clip@v2}x"), `"new-x"`},
		{args("MGET", "{clip@v1}x", "{clip@v2}x", "plain"), `[(nil) "new-x" "p"]`},
		{args("EXISTS", "{clip@v1}x", "{clip@v2}x"), ":1"},
		{args("MODEL.GET", "clip"), `"v2"`},
		{args("MODEL.GET", "other"), "(nil)"},
		{args("GET", "plain"), `"p"`}, // plain keys are not affected
	})
	if err := rdb.Set(ctx, "{clip@v1}z", "v", 0).Err(); err == nil || err.Error() != "STALE clip is at v2" {
		t.Fatalf("go-redis SET of a stale key: %v", err)
	}
	// Hugging Face ids contain '/'.
	hf := "openai/clip-vit-large-patch14"
	rev3, err := rdb.Do(ctx, "MODEL.ROLLOUT", hf, "r1").Int64()
	if err != nil || rev3 <= rev2 {
		t.Fatalf("MODEL.ROLLOUT %s: %d, %v", hf, rev3, err)
	}
	runScript(t, c, []step{
		{args("SET", "{"+hf+"@r1}emb:1", "e"), "+OK"},
		{args("GET", "{"+hf+"@r1}emb:1"), `"e"`},
		{args("MODEL.LIST"), `["clip" "v2" "` + hf + `" "r1"]`},
	})
	list, err := rdb.Do(ctx, "MODEL.LIST").StringSlice()
	if err != nil || len(list) != 4 {
		t.Fatalf("MODEL.LIST: %v, %v", list, err)
	}

	info := parseInfo(t, rdb.Info(ctx).Val())
	if got := info["Stats"]["rejected_stale_writes"]; got == "0" || got == "" {
		t.Errorf("rejected_stale_writes = %q after stale writes", got)
	}
	if got := info["Cluster"]["models_revision"]; got != strconv.FormatInt(rev3, 10) {
		t.Errorf("models_revision = %q, want %d", got, rev3)
	}
	if got := info["Cluster"]["models_known"]; got != "2" {
		t.Errorf("models_known = %q, want 2", got)
	}

	// PURGE forgets the version and drops the entries.
	rev4, err := rdb.Do(ctx, "MODEL.PURGE", "clip").Int64()
	if err != nil || rev4 <= rev3 {
		t.Fatalf("MODEL.PURGE: %d, %v", rev4, err)
	}
	runScript(t, c, []step{
		{args("MODEL.GET", "clip"), "(nil)"},
		{args("GET", "{clip@v2}x"), "(nil)"},
		{args("GET", "{clip}y"), "(nil)"},
		{args("MODEL.LIST"), `["` + hf + `" "r1"]`},
		// With no version known, any version may be written again.
		{args("SET", "{clip@v1}x", "back"), "+OK"},
		{args("GET", "{clip@v1}x"), `"back"`},
		{args("GET", "{"+hf+"@r1}emb:1"), `"e"`},
	})
	if got := parseInfo(t, rdb.Info(ctx, "cluster").Val())["Cluster"]["models_known"]; got != "1" {
		t.Errorf("models_known after PURGE = %q, want 1", got)
	}

	// Argument errors.
	runScript(t, c, []step{
		{args("MODEL.ROLLOUT", "clip"), "-ERR wrong number of arguments for 'model.rollout' command"},
		{args("MODEL.ROLLOUT", "clip", "a@b"), `-ERR invalid version "a@b": it may not contain '@', '{' or '}'`},
		{args("MODEL.ROLLOUT", "clip", ""), "-ERR invalid version: empty"},
		{args("MODEL.ROLLOUT", "", "v1"), "-ERR invalid model name: empty"},
		{args("MODEL.ROLLOUT", "a{b", "v1"), `-ERR invalid model name "a{b": it may not contain '{' or '}'`},
		{args("MODEL.PURGE"), "-ERR wrong number of arguments for 'model.purge' command"},
		{args("MODEL.GET"), "-ERR wrong number of arguments for 'model.get' command"},
		{args("MODEL.LIST", "x"), "-ERR wrong number of arguments for 'model.list' command"},
		{args("model.get", "clip"), "(nil)"},
		// Malformed scopes are refused rather than cached as plain keys.
		{args("SET", "{@v1}x", "v"), `-ERR invalid key scope: empty model name in "@v1"`},
		{args("SET", "{clip@}x", "v"), `-ERR invalid key scope: empty version in "clip@"`},
	})
}

func TestRedisUnknownCommand(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	runScript(t, c, []step{
		{args("foo", "a"), "-ERR unknown command 'foo', with args beginning with: 'a' "},
		{args("FOO"), "-ERR unknown command 'FOO', with args beginning with: "},
		{args("foo", "a", "b c"), "-ERR unknown command 'foo', with args beginning with: 'a' 'b c' "},
		{args(strings.Repeat("x", 40)), "-ERR unknown command '" + strings.Repeat("x", 40) + "', with args beginning with: "},
		{args("GET", "k", "extra"), "-ERR wrong number of arguments for 'get' command"},
		{args("get"), "-ERR wrong number of arguments for 'get' command"},
		{args("PING"), "+PONG"},
	})
	// An argument with CR LF does not break the reply's framing.
	if got := c.do("foo", "a\r\nb"); got != "-ERR unknown command 'foo', with args beginning with: 'a  b' " {
		t.Fatalf("unknown command with CRLF in an argument: %s", got)
	}
	ctx := context.Background()
	err := ts.client(t, nil).Do(ctx, "foo", "a").Err()
	if err == nil || err.Error() != "ERR unknown command 'foo', with args beginning with: 'a' " {
		t.Fatalf("go-redis unknown command: %q", err)
	}
}

func TestRedisBinarySafe(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	pairs := [][2]string{
		{"nul\x00key", "nul\x00value"},
		{"crlf\r\nkey", "crlf\r\nvalue\r\n"},
		{"\xff\xfe\xfd", "\xff\x00\xff"},
		{"\x00", "\x00"},
		{"$3\r\nfoo\r\n", "*1\r\n$3\r\nGET\r\n"},
		{"all", string(all)},
		{string(all), "key of every byte"},
		{"empty", ""},
		{"", "empty key"},
	}
	for _, p := range pairs {
		if err := rdb.Set(ctx, p[0], p[1], 0).Err(); err != nil {
			t.Fatalf("SET %q: %v", p[0], err)
		}
	}
	for _, p := range pairs {
		got, err := rdb.Get(ctx, p[0]).Result()
		if err != nil || got != p[1] {
			t.Errorf("GET %q = %q, %v; want %q", p[0], got, err, p[1])
		}
	}
	keys := make([]string, len(pairs))
	for i, p := range pairs {
		keys[i] = p[0]
	}
	vals := rdb.MGet(ctx, keys...).Val()
	for i, p := range pairs {
		if vals[i] != p[1] {
			t.Errorf("MGET %q = %q, want %q", p[0], vals[i], p[1])
		}
	}
	// A 0-byte value is an empty string, not nil.
	c := ts.dial(t)
	if got := c.do("GET", "empty"); got != `""` {
		t.Fatalf("GET of a 0-byte value: %s", got)
	}
	if got := c.do("EXISTS", "empty"); got != ":1" {
		t.Fatalf("EXISTS of a 0-byte value: %s", got)
	}
}

func TestRedisLargeValue(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	if err := rdb.Set(ctx, "big", big, 0).Err(); err != nil {
		t.Fatalf("SET 8 MiB: %v", err)
	}
	got, err := rdb.Get(ctx, "big").Bytes()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("GET 8 MiB: %d bytes, %v", len(got), err)
	}
	// Still there once written down to L2, and by MGET too.
	if err := ts.h.Flush(); err != nil {
		t.Fatal(err)
	}
	vals := rdb.MGet(ctx, "big", "nope").Val()
	if s, ok := vals[0].(string); !ok || s != string(big) || vals[1] != nil {
		t.Fatalf("MGET with an 8 MiB value: wrong reply")
	}
}

func TestRedisValueTooLarge(t *testing.T) {
	const maxValue = 1 << 20
	ts := startServer(t, func(o *Options) { o.MaxValue = maxValue })
	ctx := context.Background()
	rdb := ts.client(t, &redis.Options{PoolSize: 1, MaxRetries: -1})
	id := rdb.ClientID(ctx).Val()
	if err := rdb.Set(ctx, "fits", bytes.Repeat([]byte{'a'}, maxValue), 0).Err(); err != nil {
		t.Fatalf("SET of exactly MaxValue: %v", err)
	}
	err := rdb.Set(ctx, "k", bytes.Repeat([]byte{'b'}, maxValue+1), 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "ERR value too large") {
		t.Fatalf("SET over MaxValue: %v, want ERR value too large", err)
	}
	if err := rdb.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after a refused SET: %v, want nil", err)
	}
	// MSET with one value too large stores none of them.
	err = rdb.MSet(ctx, "m1", "small", "m2", bytes.Repeat([]byte{'c'}, 3*maxValue), "m3", "small").Err()
	if err == nil || !strings.HasPrefix(err.Error(), "ERR value too large") {
		t.Fatalf("MSET over MaxValue: %v", err)
	}
	if n := rdb.Exists(ctx, "m1", "m2", "m3").Val(); n != 0 {
		t.Fatalf("MSET over MaxValue stored %d keys", n)
	}
	// The same connection keeps working.
	if got := rdb.ClientID(ctx).Val(); got != id {
		t.Fatalf("connection changed: CLIENT ID %d, was %d", got, id)
	}
	if err := rdb.Set(ctx, "after", "ok", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := rdb.Get(ctx, "after").Val(); got != "ok" {
		t.Fatalf("GET after: %q", got)
	}
	if got, _ := rdb.Get(ctx, "fits").Bytes(); len(got) != maxValue {
		t.Fatalf("GET fits: %d bytes", len(got))
	}
}

func TestRedisPipeline(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	pipe := rdb.Pipeline()
	cmds := make([]redis.Cmder, 1000)
	for i := range cmds {
		k := "p" + strconv.Itoa(i/2)
		if i%2 == 0 {
			cmds[i] = pipe.Set(ctx, k, "value-"+strconv.Itoa(i/2), 0)
		} else {
			cmds[i] = pipe.Get(ctx, k)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	for i, c := range cmds {
		switch c := c.(type) {
		case *redis.StatusCmd:
			if c.Val() != "OK" || c.Err() != nil {
				t.Fatalf("reply %d: %q, %v", i, c.Val(), c.Err())
			}
		case *redis.StringCmd:
			if want := "value-" + strconv.Itoa(i/2); c.Val() != want || c.Err() != nil {
				t.Fatalf("reply %d: %q, %v; want %q", i, c.Val(), c.Err(), want)
			}
		}
	}
	// A pipeline with errors and nils in it keeps each reply in its place.
	pipe = rdb.Pipeline()
	a := pipe.Get(ctx, "p1")
	b := pipe.Get(ctx, "missing")
	e := pipe.Do(ctx, "nosuch")
	d := pipe.Incr(ctx, "p1") // not a tiercache command
	f := pipe.Get(ctx, "p2")
	_, _ = pipe.Exec(ctx)
	if a.Val() != "value-1" || !errors.Is(b.Err(), redis.Nil) || e.Err() == nil || d.Err() == nil || f.Val() != "value-2" {
		t.Fatalf("mixed pipeline: %v %v %v %v %v", a, b, e, d, f)
	}
}

// TestRedisConcurrentClients runs several go-redis clients at once, each on
// its own keys, with large and small values.
func TestRedisConcurrentClients(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, &redis.Options{PoolSize: 8})
	errc := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := range 50 {
				k := fmt.Sprintf("w%d:%d", w, i)
				v := bytes.Repeat([]byte{byte(w)}, 1+(i*997)%(200<<10))
				if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
					errc <- err
					return
				}
				got, err := rdb.Get(ctx, k).Bytes()
				if err != nil || !bytes.Equal(got, v) {
					errc <- fmt.Errorf("GET %s: %d bytes, %v", k, len(got), err)
					return
				}
			}
			errc <- nil
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRedisLongKeyDoesNotBlockL2 checks that a key L2 cannot store (over
// disktier.MaxKeyLen, 64 KiB) does not hold back the writes queued after it.
func TestRedisLongKeyDoesNotBlockL2(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	long := strings.Repeat("k", 70_000)
	longErr := rdb.Set(ctx, long, "v", 0).Err()
	if err := rdb.Set(ctx, "after", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the write queue to drain", func() bool { return ts.h.Stats().PendingBytes == 0 })
	if err := ts.h.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got, err := rdb.Get(ctx, long).Result(); longErr == nil && (err != nil || got != "v") {
		t.Fatalf("the long key was acknowledged but GET returns %q, %v", got, err)
	}
	if longErr == nil || !strings.HasPrefix(longErr.Error(), "ERR key too large") {
		t.Fatalf("SET of a 70,000-byte key: %v, want ERR key too large", longErr)
	}
}

// TestRedisRecordInPlace: values of 16 KiB and more are read with room in
// front and stored without a copy (tier.SetArgs.Spare); every form of SET
// and MSET must store exactly the bytes sent, in both tiers, under model
// scopes too (whose records carry a version tag in that room).
func TestRedisRecordInPlace(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, nil)
	val := func(seed, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*31 + seed + i>>9)
		}
		return b
	}
	if err := rdb.Do(ctx, "MODEL.ROLLOUT", "clip", "v1").Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	set := func(key string, v []byte, args ...any) {
		t.Helper()
		cmd := append([]any{"SET", key, v}, args...)
		if err := rdb.Do(ctx, cmd...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("SET %s %v: %v", key, args, err)
		}
		want[key] = v
	}
	sizes := []int{spareMin - 1, spareMin, 118 << 10, 1<<20 + 3}
	for i, n := range sizes {
		set(fmt.Sprintf("plain:%d", i), val(i, n))
		set(fmt.Sprintf("{clip}:%d", i), val(i+10, n), "EX", 1000)
		set(fmt.Sprintf("{clip@v1}:%d", i), val(i+20, n), "NX")
		set(fmt.Sprintf("plain:%d", i), val(i+30, n), "XX", "KEEPTTL")
		old, err := rdb.Do(ctx, "SET", fmt.Sprintf("plain:%d", i), val(i+40, n), "GET").Text()
		if err != nil || old != string(want[fmt.Sprintf("plain:%d", i)]) {
			t.Fatalf("SET GET of %d bytes returned %d bytes (%v)", n, len(old), err)
		}
		want[fmt.Sprintf("plain:%d", i)] = val(i+40, n)
	}
	mset := []any{"MSET"}
	for i, n := range sizes {
		k := fmt.Sprintf("m:%d", i)
		mset = append(mset, k, val(i+50, n))
		want[k] = val(i+50, n)
	}
	if err := rdb.Do(ctx, mset...).Err(); err != nil {
		t.Fatal(err)
	}
	check := func(where string) {
		t.Helper()
		for k, v := range want {
			got, err := rdb.Get(ctx, k).Bytes()
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("%s: GET %s: %d bytes (%v), want the %d sent", where, k, len(got), err, len(v))
			}
		}
	}
	check("from L1")
	if err := ts.h.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := ts.l1.Reset(); err != nil { // L2 only from here
		t.Fatal(err)
	}
	before := ts.h.Stats().L2Hits
	check("from L2")
	if hits := ts.h.Stats().L2Hits - before; hits != uint64(len(want)) {
		t.Fatalf("%d L2 hits for %d keys read after L1 was emptied", hits, len(want))
	}
}
