package peer

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// The protocol between peers: framed messages over TCP (optionally TLS),
// one request after another on a connection, each answered in order, so
// a client may pipeline. Every message is a frame:
//
//	u32 n   length of what follows (little endian), at least 1
//	u8  op  for a request (opGet, ...), a status for a reply (stOK, ...)
//	n-1     the body
//
// The first request on a connection is opHello, and the server answers
// nothing else until one succeeds: an unauthenticated connection may
// send at most maxHelloFrame bytes and gets one error reply, then is
// closed. After it, requests are bounded by the server's MaxValue
// (maxRequest): a larger frame is refused unread and the connection
// closed, and large bodies are read into memory only within the server's
// MaxInflight budget.
//
// Request bodies and the bodies of their stOK replies:
//
//	opHello   u8 protocolVersion, password       -> u8 protocolVersion, node id
//	opPing    (empty)                            -> (empty)
//	opGet     key                                -> the tier.Record, as stored
//	opSet     u64 expireAt, u16 T, u32 K,        -> (empty)
//	          tag[T], key[K], value
//	opDelete  key                                -> u8 1 if the key had a value
//	opExpire  u64 expireAt, u8 cond, key         -> u8 1 if the expiry changed
//
// opGet answers stNotFound for an absent key, opSet stStale for a value
// whose tag is not the owner's version of its model (see Server). Any
// request may be answered stError with a message.
const protocolVersion = 1

// Requests. The numbers are the protocol: never reuse one.
const (
	opHello  = 1
	opPing   = 2
	opGet    = 3
	opSet    = 4
	opDelete = 5
	opExpire = 6
	// 0x10-0x1f are reserved for leases at the owner (LEASE.GET taken at
	// the key's owner, its waiters woken by the SET that reaches it). A
	// lease request may wait: the client will send it on a connection of
	// its own, so that the replies pipelined behind it are not delayed.
)

// Reply statuses.
const (
	stOK       = 0
	stNotFound = 1
	stStale    = 2
	stError    = 3
)

// Frame limits.
const (
	frameHeader = 5 // u32 length and the op or status byte
	// maxHelloFrame bounds what a connection can send before it has
	// authenticated: the protocol version and a password.
	maxHelloFrame = 4 << 10
	// maxOverhead is the room a frame needs around its value: a SET's
	// fixed fields, key and tag, or a record's header and tag. Keys are
	// at most 64 KiB (disktier.MaxKeyLen) and tags at most 64 KiB
	// (tier.MaxTagLen).
	maxOverhead = 256 << 10
	// setFixed is the size of a SET body's fixed fields.
	setFixed = 8 + 2 + 4
	// smallFrame is the largest body read into a connection's own buffer;
	// larger ones take the server's MaxInflight budget.
	smallFrame = 64 << 10
)

// maxRequest is the largest request body accepted by a server whose
// largest value is maxValue, and the largest reply body a client whose
// largest value is maxValue reads.
func maxRequest(maxValue int) int { return maxValue + maxOverhead }

// putHeader writes a frame header for a body of n bytes into b.
func putHeader(b []byte, kind byte, n int) {
	binary.LittleEndian.PutUint32(b, uint32(n+1))
	b[4] = kind
}

// writeFrame writes a frame of kind whose body is the concatenation of
// parts to w.
func writeFrame(w *bufio.Writer, kind byte, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var h [frameHeader]byte
	putHeader(h[:], kind, n)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// readHeader reads a frame header and returns its kind and body length.
func readHeader(r *bufio.Reader) (kind byte, n int, err error) {
	h, err := r.Peek(frameHeader)
	if err != nil {
		if err == io.EOF && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	size := binary.LittleEndian.Uint32(h)
	kind = h[4]
	_, _ = r.Discard(frameHeader)
	if size == 0 {
		return 0, 0, fmt.Errorf("%w: empty frame", ErrProtocol)
	}
	return kind, int(size - 1), nil
}

// setRequest is an opSet body.
type setRequest struct {
	expireAt   int64
	tag        []byte
	key, value []byte
}

// appendSet appends the frame of a SET request.
func appendSet(b []byte, key, value []byte, expireAt int64, tag string) []byte {
	n := setFixed + len(tag) + len(key) + len(value)
	var h [frameHeader]byte
	putHeader(h[:], opSet, n)
	b = append(b, h[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(expireAt))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(tag)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, tag...)
	b = append(b, key...)
	return append(b, value...)
}

func parseSet(body []byte) (setRequest, error) {
	if len(body) < setFixed {
		return setRequest{}, fmt.Errorf("%w: SET of %d bytes", ErrProtocol, len(body))
	}
	expireAt := int64(binary.LittleEndian.Uint64(body))
	t := int(binary.LittleEndian.Uint16(body[8:]))
	k := int(binary.LittleEndian.Uint32(body[10:]))
	rest := body[setFixed:]
	if t+k > len(rest) {
		return setRequest{}, fmt.Errorf("%w: SET with a tag of %d and a key of %d bytes in %d", ErrProtocol, t, k, len(rest))
	}
	return setRequest{expireAt: expireAt, tag: rest[:t], key: rest[t : t+k], value: rest[t+k:]}, nil
}

// appendExpire appends the frame of an EXPIRE request.
func appendExpire(b []byte, key []byte, expireAt int64, cond byte) []byte {
	var h [frameHeader]byte
	putHeader(h[:], opExpire, 9+len(key))
	b = append(b, h[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(expireAt))
	b = append(b, cond)
	return append(b, key...)
}

func parseExpire(body []byte) (key []byte, expireAt int64, cond byte, err error) {
	if len(body) < 9 {
		return nil, 0, 0, fmt.Errorf("%w: EXPIRE of %d bytes", ErrProtocol, len(body))
	}
	return body[9:], int64(binary.LittleEndian.Uint64(body)), body[8], nil
}

// appendKeyOp appends the frame of a request whose body is a key (DELETE).
func appendKeyOp(b []byte, op byte, key []byte) []byte {
	var h [frameHeader]byte
	putHeader(h[:], op, len(key))
	b = append(b, h[:]...)
	return append(b, key...)
}
