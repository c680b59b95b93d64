package server

import (
	"net"
	"strconv"
	"time"

	"github.com/tiercache/tiercache/internal/bufpool"
)

// deadlineSlack is the most a write deadline lags behind the write timeout
// (see writer.flush).
const deadlineSlack = time.Second

// bigBulk is the size above which a bulk reply is written straight from the
// value (writev) instead of being copied into the output buffer.
const bigBulk = 32 << 10

// writer buffers replies. Small replies are appended to buf; a large bulk
// string is queued by reference and sent with writev, so a 64 MiB value is
// never copied into (nor leaves behind) a connection buffer.
type writer struct {
	conn    net.Conn
	timeout time.Duration
	armed   time.Time   // when the write deadline was last set (to armed+timeout)
	buf     []byte      // pending small output
	bufs    net.Buffers // pending output, in order, when a large bulk is queued
	pending int         // bytes queued in bufs
	err     error       // first write error: later writes are dropped

	// Large values queued by reference may live in recycled buffers (see
	// package bufpool): the writer holds a share of each (held) until it
	// is sent, so that the connection's guard can be unpinned before a
	// write that may block (see conn.flush). A value whose buffer was retired
	// already cannot be held that way: then the guard stays pinned until
	// the flush (mustPin).
	pool    *bufpool.Pool
	held    [][]byte
	mustPin bool
}

func (w *writer) queued() int { return len(w.buf) + w.pending }

func (w *writer) simple(s string) {
	w.buf = append(w.buf, '+')
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, '\r', '\n')
}

func (w *writer) error(s string) {
	w.buf = append(w.buf, '-')
	for i := 0; i < len(s); i++ { // an error reply is one line
		if s[i] == '\r' || s[i] == '\n' {
			w.buf = append(w.buf, ' ')
		} else {
			w.buf = append(w.buf, s[i])
		}
	}
	w.buf = append(w.buf, '\r', '\n')
}

func (w *writer) int(n int64) {
	w.buf = append(w.buf, ':')
	w.buf = strconv.AppendInt(w.buf, n, 10)
	w.buf = append(w.buf, '\r', '\n')
}

func (w *writer) array(n int) {
	w.buf = append(w.buf, '*')
	w.buf = strconv.AppendInt(w.buf, int64(n), 10)
	w.buf = append(w.buf, '\r', '\n')
}

func (w *writer) null() { w.buf = append(w.buf, "$-1\r\n"...) }

func (w *writer) bulkString(s string) {
	w.buf = append(w.buf, '$')
	w.buf = strconv.AppendInt(w.buf, int64(len(s)), 10)
	w.buf = append(w.buf, '\r', '\n')
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, '\r', '\n')
}

// bulk writes b as a bulk string. b must not change until the next flush.
func (w *writer) bulk(b []byte) {
	w.buf = append(w.buf, '$')
	w.buf = strconv.AppendInt(w.buf, int64(len(b)), 10)
	w.buf = append(w.buf, '\r', '\n')
	if len(b) < bigBulk {
		w.buf = append(w.buf, b...)
		w.buf = append(w.buf, '\r', '\n')
		return
	}
	if size, ok := w.pool.Retain(b); !ok {
		w.mustPin = true
	} else if size > 0 {
		w.held = append(w.held, b)
	}
	w.bufs = append(w.bufs, w.buf, b)
	w.pending += len(w.buf) + len(b)
	w.buf = []byte{'\r', '\n'}
}

// drop forgets the queued output and lets go of the values held.
func (w *writer) drop() {
	clear(w.bufs) // drop the references to the values
	w.bufs, w.pending = w.bufs[:0], 0
	w.buf = nil
	for i, b := range w.held {
		w.pool.Release(b)
		w.held[i] = nil
	}
	w.held, w.mustPin = w.held[:0], false
}

// flush sends everything queued, with the write timeout as a deadline: a
// client that does not read its replies is disconnected rather than
// holding memory forever. now is the time of the command just run.
//
// Setting a deadline costs a timer update in the runtime's poller, so it is
// moved forward at most once per deadlineSlack: a write that blocks is cut
// off between timeout-deadlineSlack and timeout after it started.
func (w *writer) flush(now time.Time) error {
	if w.err != nil {
		w.drop()
		return w.err
	}
	if len(w.buf) == 0 && w.pending == 0 {
		return nil
	}
	if w.timeout > 0 && now.Sub(w.armed) >= min(w.timeout/10, deadlineSlack) {
		w.armed = now
		_ = w.conn.SetWriteDeadline(now.Add(w.timeout))
	}
	if w.pending == 0 {
		_, w.err = w.conn.Write(w.buf)
	} else {
		if len(w.buf) > 0 {
			w.bufs = append(w.bufs, w.buf)
		}
		bufs := w.bufs
		_, w.err = bufs.WriteTo(w.conn)
		w.drop()
	}
	if cap(w.buf) > 64<<10 {
		w.buf = nil // do not keep a buffer grown by one large reply
	}
	w.buf = w.buf[:0]
	return w.err
}
