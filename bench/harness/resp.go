package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// kvConn is one pipelined connection to a system under test. Requests are
// buffered by the send methods and written by flush; replies are read in
// order by the matching recv methods. It is the whole surface the load
// generator needs, so every system is driven by the same code.
type kvConn interface {
	sendGet(key []byte)
	sendSet(key, val []byte)
	flush() error
	// recvGet reads a GET reply: whether it was a hit, and the value's length.
	recvGet() (hit bool, n int, err error)
	recvSet() error
	Close() error
}

// serverError is an error reply from the server (RESP "-ERR …", memcached
// "SERVER_ERROR …"). The connection stays usable after one.
type serverError string

func (e serverError) Error() string { return string(e) }

// isServerError tells a server's refusal apart from an I/O failure.
func isServerError(err error) bool {
	var se serverError
	return errors.As(err, &se)
}

const ioBuf = 64 << 10

// respConn speaks RESP2 over a Unix socket with reused buffers: no
// allocation per request, so the client costs the 2-core machine as little
// as possible and each system is measured through the same path.
type respConn struct {
	c   net.Conn
	w   *bufio.Writer
	r   *bufio.Reader
	num []byte // scratch for formatting lengths
}

var _ kvConn = (*respConn)(nil)

func dialRESP(path string, timeout time.Duration) (*respConn, error) {
	return dialRESPNet("unix", path, timeout)
}

// dialRESPNet is dialRESP over any network ("tcp" for a server measured
// over loopback TCP).
func dialRESPNet(network, addr string, timeout time.Duration) (*respConn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &respConn{c: c, w: bufio.NewWriterSize(c, ioBuf), r: bufio.NewReaderSize(c, ioBuf), num: make([]byte, 0, 24)}, nil
}

func (c *respConn) Close() error { return c.c.Close() }

func (c *respConn) writeLen(prefix byte, n int) {
	c.w.WriteByte(prefix)
	c.num = strconv.AppendInt(c.num[:0], int64(n), 10)
	c.w.Write(c.num)
	c.w.WriteString("\r\n")
}

func (c *respConn) writeBulk(b []byte) {
	c.writeLen('$', len(b))
	c.w.Write(b)
	c.w.WriteString("\r\n")
}

func (c *respConn) sendGet(key []byte) {
	c.w.WriteString("*2\r\n$3\r\nGET\r\n")
	c.writeBulk(key)
}

func (c *respConn) sendSet(key, val []byte) {
	c.w.WriteString("*3\r\n$3\r\nSET\r\n")
	c.writeBulk(key)
	c.writeBulk(val)
}

// sendArgs queues any command.
func (c *respConn) sendArgs(args ...[]byte) {
	c.writeLen('*', len(args))
	for _, a := range args {
		c.writeBulk(a)
	}
}

func (c *respConn) flush() error { return c.w.Flush() }

// line reads one CRLF-terminated line without its CRLF. The slice is only
// valid until the next read.
func (c *respConn) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(l) < 3 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("resp: malformed line %q", l)
	}
	return l[:len(l)-2], nil
}

func (c *respConn) recvGet() (bool, int, error) {
	l, err := c.line()
	if err != nil {
		return false, 0, err
	}
	switch l[0] {
	case '$':
		n, err := strconv.Atoi(string(l[1:]))
		if err != nil {
			return false, 0, fmt.Errorf("resp: bad bulk length %q", l)
		}
		if n < 0 {
			return false, 0, nil
		}
		if _, err := c.r.Discard(n + 2); err != nil {
			return false, 0, err
		}
		return true, n, nil
	case '-':
		return false, 0, serverError(l[1:])
	}
	return false, 0, fmt.Errorf("resp: unexpected GET reply %q", l)
}

func (c *respConn) recvSet() error {
	l, err := c.line()
	if err != nil {
		return err
	}
	switch l[0] {
	case '+':
		return nil
	case '-':
		return serverError(l[1:])
	}
	return fmt.Errorf("resp: unexpected SET reply %q", l)
}

// reply is a decoded RESP reply for control commands: nil, a string (simple
// or bulk), an int64, an []any, or a serverError.
type reply = any

// recv decodes one reply of any type.
func (c *respConn) recv() (reply, error) {
	l, err := c.line()
	if err != nil {
		return nil, err
	}
	switch l[0] {
	case '+':
		return string(l[1:]), nil
	case '-':
		return serverError(l[1:]), nil
	case ':':
		return strconv.ParseInt(string(l[1:]), 10, 64)
	case '$':
		n, err := strconv.Atoi(string(l[1:]))
		if err != nil {
			return nil, fmt.Errorf("resp: bad bulk length %q", l)
		}
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(string(l[1:]))
		if err != nil {
			return nil, fmt.Errorf("resp: bad array length %q", l)
		}
		if n < 0 {
			return nil, nil
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = c.recv(); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("resp: unexpected reply %q", l)
}

// do sends one command and returns its reply; an error reply is returned
// as a serverError error.
func (c *respConn) do(args ...string) (reply, error) {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	c.sendArgs(bs...)
	if err := c.flush(); err != nil {
		return nil, err
	}
	r, err := c.recv()
	if err != nil {
		return nil, err
	}
	if se, ok := r.(serverError); ok {
		return nil, se
	}
	return r, nil
}

// doString is do for commands whose reply is a string (or nil: "").
func (c *respConn) doString(args ...string) (string, error) {
	r, err := c.do(args...)
	if err != nil {
		return "", err
	}
	switch v := r.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	}
	return "", fmt.Errorf("resp: %s: unexpected reply %v", args[0], r)
}

// The first element of a LEASE.GET reply, as recvLease reports it.
const (
	leaseHit     = 'h' // ["hit", VALUE]
	leaseGranted = 'l' // ["lease", TOKEN]: the caller computes and SETs
	leaseMiss    = 'm' // ["miss", nil]: WAIT ran out
)

// sendLeaseGet queues LEASE.GET key ttl-ms WAIT ms.
func (c *respConn) sendLeaseGet(key []byte, ttl, wait time.Duration) {
	c.w.WriteString("*5\r\n$9\r\nLEASE.GET\r\n")
	c.writeBulk(key)
	c.writeBulk(strconv.AppendInt(c.num[:0], ttl.Milliseconds(), 10))
	c.w.WriteString("$4\r\nWAIT\r\n")
	c.writeBulk(strconv.AppendInt(c.num[:0], wait.Milliseconds(), 10))
}

// recvLease reads a LEASE.GET reply: leaseHit (the value is discarded),
// leaseGranted with the token, or leaseMiss; an error reply (--max-leases
// reached) is a serverError.
func (c *respConn) recvLease() (kind byte, token string, err error) {
	l, err := c.line()
	if err != nil {
		return 0, "", err
	}
	switch {
	case l[0] == '-':
		return 0, "", serverError(l[1:])
	case string(l) != "*2":
		return 0, "", fmt.Errorf("resp: unexpected LEASE.GET reply %q", l)
	}
	st, err := c.recv()
	if err != nil {
		return 0, "", err
	}
	s, _ := st.(string)
	switch s {
	case "hit":
		if _, _, err := c.recvGet(); err != nil {
			return 0, "", err
		}
		return leaseHit, "", nil
	case "lease":
		tok, err := c.recv()
		if err != nil {
			return 0, "", err
		}
		t, ok := tok.(string)
		if !ok {
			return 0, "", fmt.Errorf("resp: LEASE.GET granted a lease with token %v", tok)
		}
		return leaseGranted, t, nil
	case "miss":
		if _, err := c.recv(); err != nil {
			return 0, "", err
		}
		return leaseMiss, "", nil
	}
	return 0, "", fmt.Errorf("resp: LEASE.GET answered status %v", st)
}
