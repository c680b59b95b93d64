package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// Limits of the readers under fuzzing: small, so that the fuzzer reaches
// them.
const (
	fuzzMaxValue = 1 << 10
	fuzzMaxCmd   = 4 << 10
	fuzzMaxArgs  = 64
)

func newFuzzReader(r io.Reader) (*reader, *budget) {
	// Commands up to 512 bytes take the small lane (1 KiB), larger ones
	// the main one, as in the server (1 MiB of a 32 MiB reserve).
	budget := newBudget(fuzzMaxCmd, 512, 1<<10)
	return newReader(r, budget, context.Background(), fuzzMaxValue, fuzzMaxCmd, fuzzMaxArgs, nil), budget
}

// readAll parses every command in r, checking the reader's invariants, and
// returns the commands (copied) and the error that ended the input.
func readAll(t *testing.T, r io.Reader) ([][][]byte, error) {
	rd, budget := newFuzzReader(r)
	var cmds [][][]byte
	for {
		args, err := rd.readCommand()
		var ce commandError
		switch {
		case errors.As(err, &ce):
			if !strings.HasPrefix(string(ce), "ERR value too large") && !strings.HasPrefix(string(ce), "ERR command too large") {
				t.Fatalf("unexpected command error %q", ce)
			}
			if rd.held != 0 {
				t.Fatalf("a refused command holds %d bytes of budget", rd.held)
			}
			continue
		case err != nil:
			rd.release()
			// Every byte of budget is back.
			if !budget.idle() {
				t.Fatalf("budget not released after %v", err)
			}
			return cmds, err
		}
		// (An inline command is bounded by its line length instead.)
		if len(args) > max(fuzzMaxArgs, maxInline/2+1) {
			t.Fatalf("%d arguments, over the limit of %d", len(args), fuzzMaxArgs)
		}
		var total int64
		cmd := make([][]byte, len(args))
		for i, a := range args {
			if len(a) > fuzzMaxValue {
				t.Fatalf("argument of %d bytes, over the limit of %d", len(a), fuzzMaxValue)
			}
			total += int64(len(a))
			cmd[i] = bytes.Clone(a)
		}
		if total > fuzzMaxCmd || (rd.held != 0 && rd.held != total) {
			t.Fatalf("command of %d bytes holds %d bytes of budget", total, rd.held)
		}
		cmds = append(cmds, cmd)
	}
}

// splitReader returns its pieces as separate reads.
type splitReader struct{ pieces [][]byte }

func (s *splitReader) Read(p []byte) (int, error) {
	for len(s.pieces) > 0 && len(s.pieces[0]) == 0 {
		s.pieces = s.pieces[1:]
	}
	if len(s.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.pieces[0])
	s.pieces[0] = s.pieces[0][n:]
	return n, nil
}

// argsFromBytes makes an argument vector out of fuzz input: the first byte
// is the separator of the rest.
func argsFromBytes(data []byte) [][]byte {
	if len(data) == 0 {
		return nil
	}
	return bytes.Split(data[1:], data[:1])
}

func encodeArgs(args [][]byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n", len(a))
		b.Write(a)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func equalArgs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func addReaderSeeds(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n",
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
		"PING\r\n",
		"SET k \"a\\x41\\n\" 'b\\'c'\r\n",
		"\r\n\r\n*0\r\n*-1\r\nPING\n",
		"*x\r\n", "*1\r\n$-5\r\n", "*1\r\n$3\r\nabXY\r\n", "*1\r\nfoo\r\n", "*1100000\r\n",
		"*2\r\n$4\r\nECHO\r\n$2000\r\n" + strings.Repeat("x", 2000) + "\r\n*1\r\n$4\r\nPING\r\n",
		"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1000\r\n" + strings.Repeat("a", 1000) + "\r\n$1\r\nb\r\n$1000\r\n" + strings.Repeat("b", 1000) + "\r\n",
		"*65\r\n" + strings.Repeat("$1\r\nx\r\n", 65),
		"ECHO \"unbalanced\r\n",
		"\x00\xff\r\n\x01\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzReader drives the RESP reader with arbitrary input (checking its
// limits and budget accounting), and with valid encodings of an argument
// vector made from the input, split at every offset across two reads and
// read one byte at a time: the arguments must come back unchanged.
func FuzzReader(f *testing.F) {
	addReaderSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Arbitrary input, whole and one byte at a time: same result.
		cmds, err := readAll(t, bytes.NewReader(data))
		cmds1, err1 := readAll(t, iotest.OneByteReader(bytes.NewReader(data)))
		if fmt.Sprint(cmds) != fmt.Sprint(cmds1) || fmt.Sprint(err) != fmt.Sprint(err1) {
			t.Fatalf("whole input: %q, %v; one byte at a time: %q, %v", cmds, err, cmds1, err1)
		}

		// A valid encoding, split anywhere.
		args := argsFromBytes(data)
		if len(args) == 0 || len(args) > fuzzMaxArgs {
			return
		}
		total := 0
		for _, a := range args {
			if len(a) > fuzzMaxValue {
				return
			}
			total += len(a)
		}
		if total > fuzzMaxCmd {
			return
		}
		enc := encodeArgs(args)
		pipelined := append(bytes.Clone(enc), "*1\r\n$4\r\nPING\r\n"...)
		want := [][][]byte{args, {[]byte("PING")}}
		step := max(1, len(pipelined)/256) // every offset for small inputs
		for k := 0; k <= len(pipelined); k += step {
			got, err := readAll(t, &splitReader{pieces: [][]byte{bytes.Clone(pipelined[:k]), bytes.Clone(pipelined[k:])}})
			if !errors.Is(err, io.EOF) || len(got) != 2 || !equalArgs(got[0], want[0]) || !equalArgs(got[1], want[1]) {
				t.Fatalf("split at %d of %q: got %q, %v", k, pipelined, got, err)
			}
		}
		got, err := readAll(t, iotest.OneByteReader(bytes.NewReader(enc)))
		if !errors.Is(err, io.EOF) || len(got) != 1 || !equalArgs(got[0], args) {
			t.Fatalf("one byte at a time %q: got %q, %v", enc, got, err)
		}
	})
}

// bufConn is a net.Conn whose writes go to a buffer (replies of conn.exec).
type bufConn struct {
	net.Conn // nil: only Write and the deadlines are used
	out      bytes.Buffer
}

func (c *bufConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *bufConn) SetWriteDeadline(time.Time) error { return nil }
func (c *bufConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bufConn) RemoteAddr() net.Addr             { return nil }
func (c *bufConn) Close() error                     { return nil }

func addCommandSeeds(f *testing.F) {
	sep := "\x00"
	for _, s := range [][]string{
		{"PING"}, {"PING", "x"}, {"ECHO", "e"}, {"QUIT"}, {"HELLO", "2", "SETNAME", "n"}, {"HELLO", "3"},
		{"AUTH", "default", "x"}, {"SELECT", "0"}, {"SELECT", "1"},
		{"CLIENT", "SETNAME", "n"}, {"CLIENT", "GETNAME"}, {"CLIENT", "SETINFO", "LIB-NAME", "x"}, {"CLIENT", "ID"},
		{"CLIENT", "LIST"}, {"CLIENT", "INFO"},
		{"COMMAND"}, {"COMMAND", "COUNT"}, {"COMMAND", "DOCS"}, {"COMMAND", "INFO", "get", "nosuch"}, {"COMMAND", "LIST"},
		{"CONFIG", "GET", "*"}, {"CONFIG", "GET", "[a"}, {"CONFIG", "SET", "x", "y"},
		{"GET", "k"}, {"SET", "k", "v"}, {"SET", "k", "v", "EX", "10", "NX", "GET"}, {"SET", "k", "v", "PXAT", "1", "XX"},
		{"SET", "k", "v", "KEEPTTL", "GET"}, {"SET", "k", "v", "EX", "9223372036854775807"},
		{"MGET", "k", "a", "b"}, {"MSET", "a", "1", "b", "2"}, {"MSET", "a"}, {"DEL", "a", "b"}, {"UNLINK", "k"},
		{"EXISTS", "a", "a"}, {"EXPIRE", "k", "10", "GT"}, {"PEXPIRE", "k", "-1"}, {"EXPIRE", "k", "-9223372036854775808"},
		{"PERSIST", "k"}, {"TTL", "k"}, {"PTTL", "k"}, {"DBSIZE"}, {"FLUSHALL", "ASYNC"},
		{"INFO"}, {"INFO", "tiers"}, {"INFO", "everything"},
		{"MODEL.ROLLOUT", "clip", "v2"}, {"MODEL.GET", "clip"}, {"MODEL.LIST"}, {"MODEL.PURGE", "clip"},
		{"SET", "{clip@v1}x", "v"}, {"GET", "{clip}y"}, {"SET", "{@v}x", "v"}, {"SET", "{clip@}x", "v"},
		{"nosuch", "a\r\nb"},
	} {
		f.Add(s[0], []byte(sep+strings.Join(s[1:], sep)))
	}
}

// FuzzCommands runs arbitrary argument vectors through a connection of a
// real server (a real Hybrid over bigcache and Pebble) and checks that each
// reply is exactly one well-formed RESP2 value, and that nothing panics.
func FuzzCommands(f *testing.F) {
	addCommandSeeds(f)
	ts := startServer(f, func(o *Options) { o.MaxValue = 1 << 20 })
	f.Fuzz(func(t *testing.T, name string, rest []byte) {
		args := append([][]byte{[]byte(name)}, argsFromBytes(rest)...)
		if len(rest) == 0 {
			args = args[:1]
		}
		if len(args) > 1 && len(args[1]) == 0 && len(rest) == 1 {
			args = args[:1]
		}
		bc := &bufConn{}
		c := newConn(ts.s, bc)
		c.authed = true
		quit := c.exec(args)
		if err := c.w.flush(time.Now()); err != nil {
			t.Fatal(err)
		}
		out := bc.out.Bytes()
		br := bufio.NewReader(bytes.NewReader(out))
		v, err := readReply(br)
		if err != nil {
			t.Fatalf("%q: reply %q is not RESP2: %v", args, out, err)
		}
		if br.Buffered() != 0 {
			t.Fatalf("%q: more than one reply: %q", args, out)
		}
		if quit && formatReply(v) != "+OK" {
			t.Fatalf("%q: quit after %s", args, formatReply(v))
		}
		// Time moves (expiry paths), a little.
		ts.clock.Advance(time.Duration(len(rest)) * time.Millisecond)
	})
}
