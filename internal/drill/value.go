package drill

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
)

// A drill value is
//
//	seq (8 bytes, big endian) | payload | sum (16 bytes)
//
// where payload is pseudo-random (ChaCha8 seeded by key and seq, so it does
// not compress: disk usage is what the sizes say) and sum is the first 16
// bytes of SHA-256(len(key) | key | seq | payload). A value served for the
// wrong key, torn, truncated, or mixed from two writes fails CheckValue; a
// good one tells which write (seq) it came from. The checksum trails the
// data so that WriteValue and CheckValueReader stream values of any size in
// constant memory.
const (
	seqLen = 8
	sumLen = 16
	// Overhead is the smallest value: a sequence number and a checksum
	// around an empty payload.
	Overhead = seqLen + sumLen
)

// Errors of CheckValue and CheckValueReader.
var (
	// ErrShort: the value is shorter than Overhead.
	ErrShort = errors.New("drill: value shorter than its sequence number and checksum")
	// ErrChecksum: the value is not one NewValue made for this key (wrong
	// key, torn or corrupt).
	ErrChecksum = errors.New("drill: value fails its key's checksum")
)

func newSum(key []byte) hash.Hash {
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(key)))
	h.Write(n[:])
	h.Write(key)
	return h
}

func payloadSource(key []byte, seq uint64) *rand.ChaCha8 {
	h := sha256.New()
	h.Write([]byte("drill payload\x00"))
	h.Write(key)
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h.Write(s[:])
	var seed [32]byte
	copy(seed[:], h.Sum(nil))
	return rand.NewChaCha8(seed)
}

// NewValue returns the value of size bytes (at least Overhead) that write
// seq of key stores.
func NewValue(key []byte, seq uint64, size int) []byte {
	var b bytes.Buffer
	b.Grow(max(size, Overhead))
	_ = WriteValue(&b, key, seq, int64(size)) // a bytes.Buffer does not fail
	return b.Bytes()
}

// WriteValue writes NewValue(key, seq, size) to w without holding it in
// memory.
func WriteValue(w io.Writer, key []byte, seq uint64, size int64) error {
	size = max(size, Overhead)
	sum := newSum(key)
	var hdr [seqLen]byte
	binary.BigEndian.PutUint64(hdr[:], seq)
	sum.Write(hdr[:])
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	src := payloadSource(key, seq)
	buf := make([]byte, min(size-Overhead, 64<<10))
	for left := size - Overhead; left > 0; {
		chunk := buf[:min(left, int64(len(buf)))]
		_, _ = src.Read(chunk)
		sum.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		left -= int64(len(chunk))
	}
	_, err := w.Write(sum.Sum(nil)[:sumLen])
	return err
}

// CheckValue verifies that v is a value NewValue made for key and returns
// its sequence number.
func CheckValue(key, v []byte) (seq uint64, err error) {
	if len(v) < Overhead {
		return 0, fmt.Errorf("%w: %d bytes", ErrShort, len(v))
	}
	sum := newSum(key)
	sum.Write(v[:len(v)-sumLen])
	if !bytes.Equal(sum.Sum(nil)[:sumLen], v[len(v)-sumLen:]) {
		return 0, fmt.Errorf("%w: %d bytes for key %.40q", ErrChecksum, len(v), key)
	}
	return binary.BigEndian.Uint64(v), nil
}

// CheckValueReader is CheckValue for a value of n bytes read from r, in
// constant memory. It reads exactly n bytes unless r fails.
func CheckValueReader(key []byte, r io.Reader, n int64) (seq uint64, err error) {
	if n < Overhead {
		if _, err := io.CopyN(io.Discard, r, n); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %d bytes", ErrShort, n)
	}
	br := bufio.NewReaderSize(io.LimitReader(r, n), 64<<10) // never reads past the value
	var hdr [seqLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, err
	}
	sum := newSum(key)
	sum.Write(hdr[:])
	if _, err := io.CopyN(sum, br, n-Overhead); err != nil {
		return 0, err
	}
	var got [sumLen]byte
	if _, err := io.ReadFull(br, got[:]); err != nil {
		return 0, err
	}
	if !bytes.Equal(sum.Sum(nil)[:sumLen], got[:]) {
		return 0, fmt.Errorf("%w: %d bytes for key %.40q", ErrChecksum, n, key)
	}
	return binary.BigEndian.Uint64(hdr[:]), nil
}
