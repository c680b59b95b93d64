package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"time"
)

// mcConn speaks memcached's text protocol (get, set) over a Unix socket,
// pipelined like respConn. gomemcache cannot pipeline, and the comparison
// must drive every system the same way.
type mcConn struct {
	c   net.Conn
	w   *bufio.Writer
	r   *bufio.Reader
	num []byte
}

var _ kvConn = (*mcConn)(nil)

func dialMemcache(path string, timeout time.Duration) (*mcConn, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, err
	}
	return &mcConn{c: c, w: bufio.NewWriterSize(c, ioBuf), r: bufio.NewReaderSize(c, ioBuf), num: make([]byte, 0, 24)}, nil
}

func (c *mcConn) Close() error { return c.c.Close() }

func (c *mcConn) sendGet(key []byte) {
	c.w.WriteString("get ")
	c.w.Write(key)
	c.w.WriteString("\r\n")
}

func (c *mcConn) sendSet(key, val []byte) {
	c.w.WriteString("set ")
	c.w.Write(key)
	c.w.WriteString(" 0 0 ")
	c.num = strconv.AppendInt(c.num[:0], int64(len(val)), 10)
	c.w.Write(c.num)
	c.w.WriteString("\r\n")
	c.w.Write(val)
	c.w.WriteString("\r\n")
}

func (c *mcConn) flush() error { return c.w.Flush() }

func (c *mcConn) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("memcache: malformed line %q", l)
	}
	return l[:len(l)-2], nil
}

// mcError turns memcached's error lines into serverErrors.
func mcError(l []byte) error {
	if bytes.HasPrefix(l, []byte("SERVER_ERROR")) || bytes.HasPrefix(l, []byte("CLIENT_ERROR")) || bytes.Equal(l, []byte("ERROR")) {
		return serverError(l)
	}
	return nil
}

func (c *mcConn) recvGet() (bool, int, error) {
	l, err := c.line()
	if err != nil {
		return false, 0, err
	}
	if bytes.Equal(l, []byte("END")) {
		return false, 0, nil
	}
	if err := mcError(l); err != nil {
		return false, 0, err
	}
	// VALUE <key> <flags> <bytes>
	if !bytes.HasPrefix(l, []byte("VALUE ")) {
		return false, 0, fmt.Errorf("memcache: unexpected get reply %q", l)
	}
	sp := bytes.LastIndexByte(l, ' ')
	n, err := strconv.Atoi(string(l[sp+1:]))
	if err != nil {
		return false, 0, fmt.Errorf("memcache: bad length in %q", l)
	}
	if _, err := c.r.Discard(n + 2); err != nil {
		return false, 0, err
	}
	l, err = c.line()
	if err != nil {
		return false, 0, err
	}
	if !bytes.Equal(l, []byte("END")) {
		return false, 0, fmt.Errorf("memcache: expected END, got %q", l)
	}
	return true, n, nil
}

func (c *mcConn) recvSet() error {
	l, err := c.line()
	if err != nil {
		return err
	}
	if bytes.Equal(l, []byte("STORED")) {
		return nil
	}
	if err := mcError(l); err != nil {
		return err
	}
	return fmt.Errorf("memcache: unexpected set reply %q", l)
}

// version asks for the server's version: memcached's readiness probe.
func (c *mcConn) version() (string, error) {
	c.w.WriteString("version\r\n")
	if err := c.flush(); err != nil {
		return "", err
	}
	l, err := c.line()
	if err != nil {
		return "", err
	}
	if !bytes.HasPrefix(l, []byte("VERSION ")) {
		return "", fmt.Errorf("memcache: unexpected version reply %q", l)
	}
	return string(l[8:]), nil
}
