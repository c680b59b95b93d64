package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// These tests send what no well-behaved client sends, over raw connections,
// and check that the server answers as Redis does, closes only the
// offending connection, keeps serving everyone else, and gives back the
// memory and budget it took.

// repliesUntilClosed reads replies until the server closes the connection;
// the error is nil if it did.
func (c *rawConn) repliesUntilClosed() ([]string, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var replies []string
	for {
		v, err := readReply(c.br)
		// Closing a Unix socket with unread input makes the peer's reads
		// fail with ECONNRESET (after the data already sent), not EOF.
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return replies, nil
		}
		if err != nil {
			return replies, err
		}
		replies = append(replies, formatReply(v))
	}
}

// connectedClients reads connected_clients from the server's counters.
func (ts *testServer) connectedClients() int64 { return ts.s.Stats().ConnectedClients }

// checkServes checks that a fresh client is served.
func (ts *testServer) checkServes(t *testing.T) {
	t.Helper()
	c := ts.dial(t)
	if got := c.do("PING"); got != "+PONG" {
		t.Fatalf("another client: PING answered %s", got)
	}
	c.nc.Close()
}

func TestBadInputProtocolErrors(t *testing.T) {
	ts := startServer(t, nil)
	good := ts.dial(t)
	if got := good.do("SET", "k", "v"); got != "+OK" {
		t.Fatal(got)
	}
	cases := []struct {
		name, in, want string // want: the replies, in formatReply notation, before the close
	}{
		{"multibulk not a number", "*x\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"multibulk empty", "*\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"multibulk plus sign", "*+1\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"multibulk leading zero", "*01\r\n$4\r\nPING\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"multibulk LF only", "*1\nPING\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"multibulk over 1M", "*1100000\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"multibulk huge", "*99999999999999999999999\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"negative bulk", "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length"},
		{"null bulk in a request", "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length"},
		{"bulk not a number", "*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length"},
		{"bulk empty length", "*1\r\n$\r\n", "-ERR Protocol error: invalid bulk length"},
		{"bulk leading zero", "*1\r\n$04\r\nPING\r\n", "-ERR Protocol error: invalid bulk length"},
		{"bulk LF only", "*1\r\n$4\nPING\r\n", "-ERR Protocol error: invalid bulk length"},
		// Redis does not check the CRLF after a bulk string (it skips two
		// bytes); tiercache does, so a client out of step is stopped at once
		// instead of having its bytes run as commands.
		{"bulk then garbage", "*1\r\n$3\r\nabXY\r\n", "-ERR Protocol error: invalid bulk length"},
		{"bulk too long", "*1\r\n$3\r\nabcdefgh\r\n", "-ERR Protocol error: invalid bulk length"},
		{"expected $", "*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'"},
		{"expected $ got *", "*1\r\n*1\r\n", "-ERR Protocol error: expected '$', got '*'"},
		{"expected $ got CRLF", "*1\r\n\r\n", "-ERR Protocol error: expected '$', got ' '"},
		{"integer in a request", "*3\r\n$3\r\nSET\r\n$1\r\nj\r\n$1\r\nw\r\n*1\r\n:1\r\n", "+OK -ERR Protocol error: expected '$', got ':'"},
		{"unbalanced double quote", "ECHO \"a\r\n", "-ERR Protocol error: unbalanced quotes in request"},
		{"text after closing quote", "ECHO \"a\"b\r\n", "-ERR Protocol error: unbalanced quotes in request"},
		{"unbalanced single quote", "ECHO 'a\r\n", "-ERR Protocol error: unbalanced quotes in request"},
		{"inline too big", strings.Repeat("x", 70<<10) + "\r\n", "-ERR Protocol error: too big inline request"},
		{"bulk count too big", "*1\r\n$" + strings.Repeat("1", 20<<10) + "\r\n", "-ERR Protocol error: too big bulk count string"},
		{"pipelined before the error", "PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n", "+PONG +PONG -ERR Protocol error: invalid multibulk length"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t)
			// The server may close before it has read everything: a failed
			// write is not an error here.
			_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c.nc, tc.in)
			replies, err := c.repliesUntilClosed()
			if err != nil {
				t.Errorf("connection not closed: %v", err)
			}
			if got := strings.Join(replies, " "); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			if got := good.do("GET", "k"); got != `"v"` {
				t.Fatalf("the other client: GET answered %s", got)
			}
		})
	}
	if got := good.do("GET", "j"); got != `"w"` {
		t.Fatalf("the SET before the protocol error: GET answered %s", got)
	}
}

func TestBadInputNotErrors(t *testing.T) {
	// Input Redis accepts quietly: empty lines, *0, *-1, a line of spaces.
	ts := startServer(t, nil)
	c := ts.dial(t)
	c.send("\r\n\r\n \r\n*0\r\n*-1\r\n*-5\r\nPING\r\n")
	if got := c.reply(); got != "+PONG" {
		t.Fatalf("PING after empty requests: %s", got)
	}
	c.send("ECHO 'a\\'b' \"c\\x41\\n\"\r\n")
	if got := c.reply(); got != "-ERR wrong number of arguments for 'echo' command" {
		t.Fatalf("inline with quotes: %s", got)
	}
	c.send("ECHO 'a\\'b'\nECHO \"\\x41\\x4g\"\n")
	if got := c.reply() + " " + c.reply(); got != `"a'b" "Ax4g"` {
		t.Fatalf("inline quoting: %s", got)
	}
	// An unknown command does not close the connection.
	if got := c.do("NOSUCH"); !strings.HasPrefix(got, "-ERR unknown command") {
		t.Fatal(got)
	}
	if got := c.do("PING"); got != "+PONG" {
		t.Fatal(got)
	}
}

func TestBadInputValueTooLarge(t *testing.T) {
	const maxValue = 1 << 20
	ts := startServer(t, func(o *Options) { o.MaxValue = maxValue })
	c := ts.dial(t)
	// A 5 MB value, streamed in chunks, as a client sends it.
	const size = 5_000_000
	c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + strconv.Itoa(size) + "\r\n")
	chunk := bytes.Repeat([]byte("z"), 64<<10)
	errc := make(chan error, 1)
	go func() {
		for sent := 0; sent < size; sent += len(chunk) {
			n := min(len(chunk), size-sent)
			if _, err := c.nc.Write(chunk[:n]); err != nil {
				errc <- err
				return
			}
		}
		_, err := c.nc.Write([]byte("\r\n*1\r\n$4\r\nPING\r\n"))
		errc <- err
	}()
	if got := c.reply(); got != "-ERR value too large (5000000 bytes; max-value is 1048576)" {
		t.Fatalf("oversized SET: %s", got)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := c.reply(); got != "+PONG" {
		t.Fatalf("PING after the oversized SET: %s", got)
	}
	runScript(t, c, []step{
		{args("GET", "k"), "(nil)"},
		{args("SET", "k", "small"), "+OK"},
		{args("GET", "k"), `"small"`},
	})
	// An oversized key too; and an oversized argument among pipelined
	// commands leaves the others alone.
	c.send(encodeCommand("GET", strings.Repeat("k", maxValue+1)) + encodeCommand("GET", "k"))
	if got := c.reply(); !strings.HasPrefix(got, "-ERR value too large") {
		t.Fatalf("oversized key: %s", got)
	}
	if got := c.reply(); got != `"small"` {
		t.Fatalf("GET after an oversized key: %s", got)
	}
	// A length over Redis' protocol limit (512 MiB) is a protocol error,
	// answered at once.
	c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n")
	if got := c.reply(); got != "-ERR Protocol error: invalid bulk length" {
		t.Fatalf("bulk length over 512 MiB: %s", got)
	}
	c.expectClosed()
}

// TestBadInputProtocolLimitFollowsMaxValue: a MaxValue over 512 MiB raises
// the protocol limit to it, as raising proto-max-bulk-len does in Redis: a
// length over MaxValue is then the protocol error.
func TestBadInputProtocolLimitFollowsMaxValue(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxValue = ProtoMaxBulkLen + 1<<20; o.MaxInflight = 2 * o.MaxValue })
	c := ts.dial(t)
	c.send(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n", ProtoMaxBulkLen+1<<20+1))
	if got := c.reply(); got != "-ERR Protocol error: invalid bulk length" {
		t.Fatalf("bulk length over MaxValue: %s", got)
	}
	c.expectClosed()
}

func TestBadInputInlineValueTooLarge(t *testing.T) {
	// MaxValue holds for inline (telnet style) commands too, whose line may
	// be up to 64 KiB.
	ts := startServer(t, func(o *Options) { o.MaxValue = 1000 })
	c := ts.dial(t)
	c.send("SET k " + strings.Repeat("x", 2000) + "\r\n")
	if got := c.reply(); got != "-ERR value too large (2000 bytes; max-value is 1000)" {
		t.Fatalf("inline SET over MaxValue: %s", got)
	}
	c.send("SET k " + strings.Repeat("x", 1000) + "\r\nGET k\r\n")
	if got := c.reply() + " " + c.reply(); got != "+OK \""+strings.Repeat("x", 1000)+"\"" {
		t.Fatalf("inline SET of MaxValue then GET: %s", got)
	}
}

// heapAfterGC is the live heap, after collecting garbage.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestBadInputMillionArgs(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	if got := c.do("SET", "k", "v"); got != "+OK" {
		t.Fatal(got)
	}
	base := heapAfterGC()

	// *1000000 then a million small bulk strings, sent by a goroutine while
	// another client is served. PING with a million arguments is refused
	// for its arity, after being read in full.
	const n = 1_000_000
	big := ts.dial(t)
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(big.nc, 64<<10)
		fmt.Fprintf(bw, "*%d\r\n$4\r\nPING\r\n", n)
		for i := 1; i < n; i++ {
			bw.WriteString("$1\r\nx\r\n")
		}
		bw.WriteString("*1\r\n$4\r\nPING\r\n")
		done <- bw.Flush()
	}()
	other := ts.dial(t)
	served := 0
	for sending := true; sending; served++ {
		if got := other.do("GET", "k"); got != `"v"` {
			t.Fatalf("other client during the million-argument command: %s", got)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			sending = false
		default:
		}
	}
	t.Logf("the other client was served %d times while the command was sent", served)
	if got := big.reply(); got != "-ERR wrong number of arguments for 'ping' command" {
		t.Fatalf("million-argument PING: %s", got)
	}
	if got := big.reply(); got != "+PONG" {
		t.Fatalf("PING after it: %s", got)
	}
	// The argument slice and the million buffers are not kept.
	limit := base + 8<<20
	waitFor(t, 10*time.Second, "the heap back near its baseline", func() bool { return heapAfterGC() < limit })

	// Over the 1M limit: refused at once, before anything is read.
	over := ts.dial(t)
	over.send("*1100000\r\n$4\r\nPING\r\n")
	if got := over.reply(); got != "-ERR Protocol error: invalid multibulk length" {
		t.Fatalf("*1100000: %s", got)
	}
	over.expectClosed()
	ts.checkServes(t)
}

func TestBadInputRandomGarbage(t *testing.T) {
	ts := startServer(t, nil)
	keep := ts.dial(t)
	if got := keep.do("SET", "keep", "me"); got != "+OK" {
		t.Fatal(got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	prefixes := []string{"", "*", "*2\r\n", "*2\r\n$", "*3\r\n$3\r\nSET\r\n$1\r\ng\r\n$", "$", "\"", "'", "GET "}
	const conns = 64
	var wg sync.WaitGroup
	for i := range conns {
		buf := make([]byte, 1+rng.IntN(8<<10))
		for j := range buf {
			buf[j] = byte(rng.Uint32())
			if rng.IntN(16) == 0 { // some line structure
				buf[j] = "\r\n*$"[rng.IntN(4)]
			}
		}
		in := append([]byte(prefixes[i%len(prefixes)]), buf...)
		nc, err := net.Dial("unix", ts.sock)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
			go io.Copy(io.Discard, nc) // read whatever comes back
			_, _ = nc.Write(in)
		}()
	}
	wg.Wait()
	waitFor(t, 20*time.Second, "the garbage connections to be closed", func() bool { return ts.connectedClients() == 1 })
	if got := keep.do("GET", "keep"); got != `"me"` {
		t.Fatalf("after the garbage: GET keep = %s", got)
	}
	ts.checkServes(t)
}

func TestBadInputDisconnectMidValue(t *testing.T) {
	// A client that announces a large value, sends part of it and goes
	// away must give back the in-flight budget it took for it.
	const budget = 16 << 20
	ts := startServer(t, func(o *Options) { o.MaxValue = budget; o.MaxInflight = budget })
	for range 5 {
		c := ts.dial(t)
		c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10000000\r\n" + strings.Repeat("p", 100_000))
		c.nc.Close()
	}
	// A value close to the whole budget still gets in (it would wait
	// forever for leaked budget).
	value := strings.Repeat("v", budget-64)
	c := ts.dial(t)
	if got := c.do("SET", "big", value); got != "+OK" {
		t.Fatalf("SET of a value close to the budget: %s", got)
	}
	if got := c.do("SET", "big2", value); got != "+OK" {
		t.Fatalf("second SET of a value close to the budget: %s", got)
	}
	waitFor(t, 10*time.Second, "the disconnected clients to be gone", func() bool { return ts.connectedClients() == 1 })
}

func TestBadInputBudgetNoDeadlock(t *testing.T) {
	// Two clients each send an MSET of two values that together fill the
	// whole in-flight budget. When both have their first value in, neither
	// second value fits: a reader that waited for budget while holding some
	// would wait forever.
	const (
		maxValue = 4 << 20 // above smallCommand: the main lane
		first    = maxValue - 64
	)
	ts := startServer(t, func(o *Options) { o.MaxValue = maxValue; o.MaxInflight = 2 * maxValue })
	head := func(k string) string {
		return "*5\r\n$4\r\nMSET\r\n$2\r\n" + k + "1\r\n$" + strconv.Itoa(first) + "\r\n" + strings.Repeat("a", first) +
			"\r\n$2\r\n" + k + "2\r\n"
	}
	tail := "$" + strconv.Itoa(maxValue) + "\r\n" + strings.Repeat("b", maxValue) + "\r\n"
	a, b := ts.dial(t), ts.dial(t)
	a.send(head("a"))
	b.send(head("b"))
	// Both first values are in once the budget left is below 1000 bytes.
	waitFor(t, 20*time.Second, "both first values read", func() bool {
		if ts.s.budget.main.TryAcquire(1000) {
			ts.s.budget.main.Release(1000)
			return false
		}
		return true
	})
	errc := make(chan error, 2)
	for _, c := range []*rawConn{a, b} {
		go func() {
			_, err := io.WriteString(c.nc, tail)
			errc <- err
		}()
	}
	for _, c := range []*rawConn{a, b} {
		_ = c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		v, err := readReply(c.br)
		if err != nil {
			t.Fatalf("MSET reply: %v (deadlocked on the in-flight budget?)", err)
		}
		if got := formatReply(v); got != "+OK" {
			t.Fatalf("MSET: %s", got)
		}
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if got := a.do("EXISTS", "a1", "a2", "b1", "b2"); got != ":4" {
		t.Fatalf("EXISTS after both MSETs: %s", got)
	}
}

// raiseFileLimit makes sure the process may open n more files, or skips.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("RLIMIT_NOFILE hard limit %d is below the %d files this test needs", lim.Max, n)
	}
	old := lim
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", n, err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

func TestBadInputManyIdleConnections(t *testing.T) {
	const idle = 2000
	raiseFileLimit(t, 2*idle+512) // both ends of each connection are in this process
	ts := startServer(t, nil)
	ctx := context.Background()
	rdb := ts.client(t, &redis.Options{PoolSize: 1})
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 0, idle)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for range idle {
		nc, err := net.Dial("unix", ts.sock)
		if err != nil {
			t.Fatalf("dial after %d connections: %v", len(conns), err)
		}
		conns = append(conns, nc)
	}
	waitFor(t, 30*time.Second, "2001 connected clients", func() bool { return ts.connectedClients() == idle+1 })
	// A new client is served, and so is the old one.
	ts.checkServes(t)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// (The client checkServes closed may take a moment to be counted out.)
	waitFor(t, 10*time.Second, "INFO connected_clients 2001", func() bool {
		v, _ := infoField(rdb.Info(ctx, "clients").Val(), "connected_clients")
		return v == strconv.Itoa(idle+1)
	})
	for _, nc := range conns {
		nc.Close()
	}
	conns = nil
	waitFor(t, 30*time.Second, "connected_clients back to 1", func() bool {
		v, _ := infoField(rdb.Info(ctx, "clients").Val(), "connected_clients")
		return v == "1"
	})
}

func TestBadInputMaxClients(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxClients = 3 })
	var cs []*rawConn
	for range 3 {
		c := ts.dial(t)
		if got := c.do("PING"); got != "+PONG" {
			t.Fatal(got)
		}
		cs = append(cs, c)
	}
	over := ts.dial(t)
	if got := over.reply(); got != "-ERR max number of clients reached" {
		t.Fatalf("connection over MaxClients: %s", got)
	}
	over.expectClosed()
	if got := cs[0].do("PING"); got != "+PONG" {
		t.Fatalf("a connection under the cap after the refusal: %s", got)
	}
	if n := ts.s.Stats().RejectedConnections; n != 1 {
		t.Fatalf("RejectedConnections = %d", n)
	}
	if got := cs[1].do("INFO", "clients"); !strings.Contains(got, `rejected_connections:1\r\n`) || !strings.Contains(got, `connected_clients:3\r\n`) {
		t.Fatalf("INFO clients: %s", got)
	}
	// Once one leaves, a new one gets in.
	cs[2].nc.Close()
	waitFor(t, 10*time.Second, "a slot to free up", func() bool { return ts.connectedClients() == 2 })
	ts.checkServes(t)
}

func TestBadInputSlowReader(t *testing.T) {
	// A client that sends many GETs of a large value and never reads the
	// replies is disconnected after WriteTimeout; the others do not notice.
	ts := startServer(t, func(o *Options) { o.WriteTimeout = 300 * time.Millisecond })
	value := strings.Repeat("s", 256<<10)
	other := ts.dial(t)
	if got := other.do("SET", "big", value); got != "+OK" {
		t.Fatal(got)
	}
	slow := ts.dial(t)
	req := strings.Repeat(encodeCommand("GET", "big"), 400) // 100 MiB of replies
	go func() { _, _ = io.WriteString(slow.nc, req) }()
	// While the slow client's replies back up, others are served.
	for range 20 {
		if got := other.do("GET", "big"); len(got) != len(value)+2 {
			t.Fatalf("other client: GET returned %d bytes", len(got))
		}
	}
	waitFor(t, 30*time.Second, "the slow reader to be disconnected", func() bool { return ts.connectedClients() == 1 })
	// Its socket is closed: reading drains what was sent, then ends.
	_ = slow.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := io.Copy(io.Discard, slow.nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the slow reader's connection is still open: %v", err)
	}
	if got := other.do("PING"); got != "+PONG" {
		t.Fatalf("other client after: %s", got)
	}
}

func TestBudgetSmallCommandsNotQueuedBehindLarge(t *testing.T) {
	// The main lane is held by a value being sent slowly, and another
	// large value waits for it (the lane is first come, first served):
	// small commands, and values up to smallCommand, use their own lane
	// and are answered meanwhile. Before the lanes, they waited behind the
	// large value.
	const big = 4 << 20
	ts := startServer(t, func(o *Options) { o.MaxValue = big; o.MaxInflight = big })
	info := func(field string) int64 {
		t.Helper()
		for _, line := range strings.Split(ts.s.info(map[string]bool{"clients": true}), "\r\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
		t.Fatalf("INFO has no %s", field)
		return 0
	}
	value := strings.Repeat("x", big-64)
	holder, waiter := ts.dial(t), ts.dial(t)
	holder.send("*3\r\n$3\r\nSET\r\n$6\r\nholder\r\n$" + strconv.Itoa(len(value)) + "\r\n" + value[:1000])
	waitFor(t, 20*time.Second, "the first value to hold the main lane", func() bool { return info("inflight_bytes") >= int64(len(value)) })
	waiter.send("*3\r\n$3\r\nSET\r\n$6\r\nwaiter\r\n$" + strconv.Itoa(len(value)) + "\r\n")
	waitFor(t, 20*time.Second, "the second value to wait for budget", func() bool { return info("budget_waiting_clients") == 1 })

	small := ts.dial(t)
	embedding := strings.Repeat("e", 118<<10)
	for i := range 50 {
		k := "k" + strconv.Itoa(i)
		if got := small.do("SET", k, embedding); got != "+OK" {
			t.Fatalf("SET of 118 KB while the main lane is full: %s", got)
		}
		if got := small.do("GET", k); got != strconv.Quote(embedding) {
			t.Fatalf("GET while the main lane is full: %.40s", got)
		}
	}
	if n := info("budget_waiting_clients"); n != 1 {
		t.Fatalf("budget_waiting_clients %d while only the large value waits", n)
	}
	// The large values complete in order once the first is sent.
	go func() { _, _ = io.WriteString(waiter.nc, value+"\r\n") }()
	holder.send(value[1000:] + "\r\n")
	if got := holder.reply(); got != "+OK" {
		t.Fatalf("first large SET: %s", got)
	}
	if got := waiter.reply(); got != "+OK" {
		t.Fatalf("second large SET: %s", got)
	}
	waitFor(t, 20*time.Second, "the budget to be given back", func() bool { return info("inflight_bytes") == 0 && ts.s.budget.idle() })
}
