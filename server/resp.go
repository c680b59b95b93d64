package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/tiercache/tiercache/internal/bufpool"
	"github.com/tiercache/tiercache/tier"
)

// Protocol errors close the connection after their reply, as in Redis.
type protocolError string

func (e protocolError) Error() string { return "ERR Protocol error: " + string(e) }

var (
	errInvalidMultibulk = protocolError("invalid multibulk length")
	errInvalidBulk      = protocolError("invalid bulk length")
	errUnbalancedQuotes = protocolError("unbalanced quotes in request")
	errInlineTooBig     = protocolError("too big inline request")
	errMultibulkTooBig  = protocolError("too big mbulk count string")
	errBulkTooBig       = protocolError("too big bulk count string")
)

// commandError is a reply to a command that was read in full (and then
// discarded) because it broke a limit: the connection stays usable.
type commandError string

func (e commandError) Error() string { return string(e) }

// ProtoMaxBulkLen is Redis' protocol limit on a bulk string's length
// (proto-max-bulk-len, 512 MiB): a longer one is a protocol error, answered
// at once, and the connection is closed. Lengths from MaxValue up to it
// are read and discarded instead (the connection stays usable). A MaxValue
// above it raises the limit to MaxValue, as raising proto-max-bulk-len
// does in Redis.
const ProtoMaxBulkLen = 512 << 20

// maxInline is the longest inline command (and the longest "*N" or "$N"
// header line) accepted, as Redis' PROTO_INLINE_MAX_SIZE.
const maxInline = 64 << 10

// reader reads RESP commands (arrays of bulk strings, or inline commands)
// from a connection. Bulk strings are read straight into buffers of their
// exact size, so one large value does not leave a large buffer behind; the
// bytes of a command's arguments are taken from the server-wide in-flight
// budget before they are allocated, and given back by release.
type reader struct {
	br       *bufio.Reader
	budget   *budget
	ctx      context.Context // cancelled at shutdown: stops waiting for budget
	maxValue int64
	maxArgs  int
	maxCmd   int64 // largest total of one command's arguments (the whole budget)

	args   [][]byte
	spares [][]byte // per argument: its buffer with headroom, or nil
	lane   lane     // the budget lane held is taken from
	held   int64    // budget held by the current command

	// bufs is where arguments of spareMin bytes or more are read (values
	// that the cache may keep): see package bufpool. May be nil.
	bufs *bufpool.Pool

	// arena holds the current command's arguments under spareMin bytes
	// (keys, small values, options), so that they cost no allocation: it
	// is reused by the next command. Nothing keeps such an argument past
	// its command: the writer copies bulk replies under bigBulk, and the
	// cache copies keys and small values.
	arena []byte
}

// maxArena is the largest arena kept between commands; one grown beyond it
// by a command with many small arguments is dropped after it.
const maxArena = 64 << 10

func newReader(r io.Reader, budget *budget, ctx context.Context, maxValue, maxCmd int64, maxArgs int, bufs *bufpool.Pool) *reader {
	return &reader{br: bufio.NewReaderSize(r, 16<<10), budget: budget, ctx: ctx, maxValue: maxValue, maxArgs: maxArgs, maxCmd: maxCmd, bufs: bufs}
}

// buffered reports whether more input is already buffered (pipelining: the
// replies are flushed only when it is not).
func (r *reader) buffered() bool { return r.br.Buffered() > 0 }

// finish tells the buffer pool that the command read last has ended: the
// buffers its large arguments were read into are reused once nothing else
// holds them. The connection calls it with its guard still pinned.
func (r *reader) finish() {
	for i, b := range r.spares {
		if b != nil {
			r.bufs.Done(b)
			r.spares[i] = nil
		}
	}
}

// release returns the budget the last command held and drops references to
// its arguments.
func (r *reader) release() {
	r.finish() // a command that was not run (too large, or cut off)
	if r.held > 0 {
		r.budget.release(r.lane, r.held)
		r.held = 0
	}
	clear(r.args)
	clear(r.spares)
	if cap(r.args) > 1024 {
		r.args = nil // a huge command must not pin its argument slice
		r.spares = nil
	}
	r.args = r.args[:0]
	r.spares = r.spares[:0]
	if cap(r.arena) > maxArena {
		r.arena = nil
	}
	r.arena = r.arena[:0]
}

// readCommand reads the next command. It returns a commandError for a
// command that was read and discarded (too large), a protocolError for
// input that cannot be parsed (the caller replies and closes), or an I/O
// error.
func (r *reader) readCommand() ([][]byte, error) {
	r.release()
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] != '*' {
			args, err := r.readInline()
			if err != nil || len(args) > 0 {
				return args, err
			}
			continue // empty line: ignored, as Redis does
		}
		break
	}
	line, err := r.readLine(errMultibulkTooBig)
	if err != nil {
		return nil, err
	}
	n, ok := parseHeader(line)
	if !ok || n > int64(r.maxArgs) {
		return nil, errInvalidMultibulk
	}
	if n <= 0 {
		return r.args, nil // "*0" and "*-1": nothing to run
	}
	var tooBig error
	for i := int64(0); i < n; i++ {
		line, err := r.readLine(errBulkTooBig)
		if err != nil {
			return nil, err
		}
		if line[0] != '$' {
			return nil, protocolError(fmt.Sprintf("expected '$', got '%c'", line[0]))
		}
		size, ok := parseHeader(line)
		if !ok || size < 0 || size > max(r.maxValue, ProtoMaxBulkLen) {
			return nil, errInvalidBulk
		}
		if tooBig == nil {
			switch {
			case size > r.maxValue:
				tooBig = commandError(fmt.Sprintf("ERR value too large (%d bytes; max-value is %d)", size, r.maxValue))
			case r.held+size > r.maxCmd:
				tooBig = commandError(fmt.Sprintf("ERR command too large (more than %d bytes of arguments)", r.maxCmd))
			}
		}
		if tooBig != nil {
			if _, err := r.br.Discard(int(size)); err != nil {
				return nil, err
			}
		} else {
			arg, spare, err := r.readBulk(size)
			if err != nil {
				return nil, err
			}
			r.args = append(r.args, arg)
			r.spares = append(r.spares, spare)
		}
		if err := r.readCRLF(); err != nil {
			return nil, err
		}
	}
	if tooBig != nil {
		r.release()
		return nil, tooBig
	}
	return r.args, nil
}

// spareMin is the smallest argument read with tier.ValueHeadroom bytes of
// room in front of it, so that a SET can build its record around the
// value instead of copying it (see tier.SetArgs.Spare). The room is not
// taken from the budget (at most 256 bytes per 16 KiB).
const spareMin = 16 << 10

// readBulk reads size bytes into a new buffer, after taking them from the
// in-flight budget (waiting for other connections to give some back).
func (r *reader) readBulk(size int64) ([]byte, []byte, error) {
	if err := r.take(size); err != nil {
		return nil, nil, err
	}
	var buf, arg []byte
	if size >= spareMin {
		buf = r.bufs.Get(int(tier.ValueHeadroom + size))
		arg = buf[tier.ValueHeadroom:]
	} else {
		n := len(r.arena)
		if cap(r.arena)-n < int(size) {
			// The arguments read so far keep the old arena.
			r.arena = make([]byte, 0, max(2*cap(r.arena), int(size), 4<<10))
			n = 0
		}
		r.arena = r.arena[:n+int(size)]
		arg = r.arena[n : n+int(size) : n+int(size)]
	}
	if _, err := io.ReadFull(r.br, arg); err != nil {
		r.bufs.Done(buf) // nil for arena arguments: ignored
		return nil, nil, err
	}
	return arg, buf, nil
}

// take takes size more bytes for the current command from its lane of the
// budget, waiting if they are not free.
func (r *reader) take(size int64) error {
	if size == 0 {
		return nil
	}
	total := r.held + size
	lane := r.budget.laneOf(total)
	if lane == r.lane || r.held == 0 {
		if r.budget.tryAcquire(lane, size) {
			r.lane, r.held = lane, total
			return nil
		}
	} else if r.budget.tryAcquire(lane, total) { // the command outgrew the small lane
		r.budget.release(r.lane, r.held)
		r.lane, r.held = lane, total
		return nil
	}
	// Waiting while holding budget for this command's earlier arguments
	// could deadlock: two connections, each holding part of the budget,
	// each waiting for the other's. So give back what is held and wait for
	// the command's whole total at once (at most maxCmd, the whole lane):
	// no reader waits while holding budget. The arguments already read
	// stay in memory meanwhile.
	if r.held > 0 {
		r.budget.release(r.lane, r.held)
		r.held = 0
	}
	if err := r.budget.acquire(r.ctx, lane, total); err != nil {
		return err
	}
	r.lane, r.held = lane, total
	return nil
}

// spare returns the buffer argument i was read into when it has room in
// front of it (tier.ValueHeadroom), or nil.
func (r *reader) spare(i int) []byte {
	if i < len(r.spares) {
		return r.spares[i]
	}
	return nil
}

func (r *reader) readCRLF() error {
	b, err := r.br.Peek(2)
	if err != nil {
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errInvalidBulk
	}
	_, err = r.br.Discard(2)
	return err
}

// readLine reads a header line ("*3", "$5") with its line ending (at least
// the '\n'); it is valid until the next read. tooBig is the error for a
// line that does not fit the buffer.
func (r *reader) readLine(tooBig protocolError) ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, tooBig
	}
	return line, err
}

// parseHeader parses the number of a header line ("*3\r\n", "$5\r\n"):
// a line without CRLF is invalid, as one without a valid number (Redis
// answers "invalid multibulk length" or "invalid bulk length" to both).
func parseHeader(line []byte) (int64, bool) {
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return 0, false
	}
	return parseInt(line[1 : len(line)-2])
}

// readInline reads a command typed as one line of space-separated words
// (telnet style), with Redis' quoting rules.
func (r *reader) readInline() ([][]byte, error) {
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxInline {
			return nil, errInlineTooBig
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
	line = bytes.TrimRight(line, "\r\n")
	args, err := splitArgs(line)
	if err != nil {
		return nil, err
	}
	for _, a := range args {
		if int64(len(a)) > r.maxValue { // MaxValue holds for inline commands too
			return nil, commandError(fmt.Sprintf("ERR value too large (%d bytes; max-value is %d)", len(a), r.maxValue))
		}
	}
	r.args = append(r.args, args...)
	return r.args, nil
}

// splitArgs splits an inline command as Redis' sdssplitargs does: words
// separated by spaces, "double quotes" with \n \r \t \b \a \\ \" \xHH
// escapes, 'single quotes' with \' only.
func splitArgs(line []byte) ([][]byte, error) {
	var args [][]byte
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i >= len(line) {
			return args, nil
		}
		var cur []byte
		inDQ, inSQ, done := false, false, false
		for !done {
			if i >= len(line) {
				if inDQ || inSQ {
					return nil, errUnbalancedQuotes
				}
				break
			}
			c := line[i]
			switch {
			case inDQ:
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					v, _ := strconv.ParseUint(string(line[i+2:i+4]), 16, 8)
					cur = append(cur, byte(v))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					switch line[i] {
					case 'n':
						cur = append(cur, '\n')
					case 'r':
						cur = append(cur, '\r')
					case 't':
						cur = append(cur, '\t')
					case 'b':
						cur = append(cur, '\b')
					case 'a':
						cur = append(cur, '\a')
					default:
						cur = append(cur, line[i])
					}
				case c == '"':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return nil, errUnbalancedQuotes // closing quote must be followed by a space
					}
					done = true
				default:
					cur = append(cur, c)
				}
			case inSQ:
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					cur = append(cur, '\'')
				case c == '\'':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return nil, errUnbalancedQuotes
					}
					done = true
				default:
					cur = append(cur, c)
				}
			default:
				switch {
				case isSpace(c):
					done = true
				case c == '"':
					inDQ = true
				case c == '\'':
					inSQ = true
				default:
					cur = append(cur, c)
				}
			}
			i++
		}
		if cur == nil {
			cur = []byte{}
		}
		args = append(args, cur)
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// parseInt parses a decimal int64 as Redis' string2ll: an optional '-',
// digits, no spaces, no '+', no leading zeros.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}
