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
//	opLeaseGet u64 ttlMs, u64 waitMs, u32 n,     -> n answers, in order:
//	          n × (u32 K, key[K])                   u8 leaseHit, u32 R, the record[R];
//	                                                u8 leaseGranted, u16 T, token[T];
//	                                                or u8 leaseMiss
//	opLeaseRelease u16 T, token[T], key          -> u8 1 if the token held the lease
//
// opGet answers stNotFound for an absent key, opSet stStale for a value
// whose tag is not the owner's version of its model (see Server).
// opLeaseGet answers stStale for a {MODEL@X}… key the owner's registry
// holds stale (no lease for a value that could not be stored), and
// stFull, with the bound as a u64, when the owner's lease table is full.
// Any request may be answered stError with a message.
const protocolVersion = 1

// Requests. The numbers are the protocol: never reuse one.
const (
	opHello  = 1
	opPing   = 2
	opGet    = 3
	opSet    = 4
	opDelete = 5
	opExpire = 6
	// 0x10-0x1f are leases at the owner (LEASE.GET taken at the key's
	// owner, its waiters woken by the SET that reaches it). A lease
	// request may wait: the client sends it on a connection of its own,
	// so that the replies pipelined behind it are not delayed.
	opLeaseGet     = 0x10
	opLeaseRelease = 0x11
)

// An opLeaseGet answer's kinds.
const (
	leaseHit     = 0
	leaseGranted = 1
	leaseMiss    = 2
)

// Reply statuses.
const (
	stOK       = 0
	stNotFound = 1
	stStale    = 2
	stError    = 3
	stFull     = 4 // opLeaseGet: the owner's lease table is at its bound
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

// leaseGetFixed is the size of an opLeaseGet body's fixed fields.
const leaseGetFixed = 8 + 8 + 4

// appendLeaseGet appends the frame of a lease request for keys.
func appendLeaseGet(b []byte, keys [][]byte, ttlMs, waitMs int64) []byte {
	n := leaseGetFixed
	for _, k := range keys {
		n += 4 + len(k)
	}
	var h [frameHeader]byte
	putHeader(h[:], opLeaseGet, n)
	b = append(b, h[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(ttlMs))
	b = binary.LittleEndian.AppendUint64(b, uint64(waitMs))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
	}
	return b
}

// parseLeaseGet parses an opLeaseGet body; the keys point into it.
func parseLeaseGet(body []byte) (keys [][]byte, ttlMs, waitMs int64, err error) {
	if len(body) < leaseGetFixed {
		return nil, 0, 0, fmt.Errorf("%w: LEASE.GET of %d bytes", ErrProtocol, len(body))
	}
	ttlMs = int64(binary.LittleEndian.Uint64(body))
	waitMs = int64(binary.LittleEndian.Uint64(body[8:]))
	n := int(binary.LittleEndian.Uint32(body[16:]))
	rest := body[leaseGetFixed:]
	if ttlMs <= 0 || waitMs < 0 || ttlMs > maxLeaseMs || waitMs > maxLeaseMs || n < 1 || n > len(rest)/4 {
		return nil, 0, 0, fmt.Errorf("%w: LEASE.GET of %d keys, ttl %d ms, wait %d ms", ErrProtocol, n, ttlMs, waitMs)
	}
	keys = make([][]byte, n)
	for i := range keys {
		if len(rest) < 4 {
			return nil, 0, 0, fmt.Errorf("%w: LEASE.GET truncated at key %d", ErrProtocol, i)
		}
		k := int(binary.LittleEndian.Uint32(rest))
		if k > len(rest)-4 {
			return nil, 0, 0, fmt.Errorf("%w: LEASE.GET key of %d bytes in %d", ErrProtocol, k, len(rest)-4)
		}
		keys[i], rest = rest[4:4+k], rest[4+k:]
	}
	if len(rest) != 0 {
		return nil, 0, 0, fmt.Errorf("%w: LEASE.GET with %d bytes after its keys", ErrProtocol, len(rest))
	}
	return keys, ttlMs, waitMs, nil
}

// maxLeaseMs bounds a lease request's TTL and wait: time.Duration's range.
const maxLeaseMs = (1<<63 - 1) / 1_000_000

// appendLeaseRelease appends the frame of a lease release.
func appendLeaseRelease(b []byte, key []byte, token string) []byte {
	var h [frameHeader]byte
	putHeader(h[:], opLeaseRelease, 2+len(token)+len(key))
	b = append(b, h[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(token)))
	b = append(b, token...)
	return append(b, key...)
}

func parseLeaseRelease(body []byte) (key []byte, token string, err error) {
	if len(body) < 2 {
		return nil, "", fmt.Errorf("%w: LEASE.RELEASE of %d bytes", ErrProtocol, len(body))
	}
	t := int(binary.LittleEndian.Uint16(body))
	if t > len(body)-2 {
		return nil, "", fmt.Errorf("%w: LEASE.RELEASE token of %d bytes in %d", ErrProtocol, t, len(body)-2)
	}
	return body[2+t:], string(body[2 : 2+t]), nil
}
