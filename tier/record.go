package tier

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Record layout (all integers little endian):
//
//	off size field
//	  0    1 format version (RecordVersion)
//	  1    1 flags (FlagClean, ...)
//	  2    2 length of the version tag, T
//	  4    4 CRC-32C of bytes [8, 8+T+24+len(value)) i.e. everything after it
//	         (0 until the record is sealed on its way to disk: see Seal)
//	  8    8 expiry, Unix milliseconds; 0 = never
//	 16    8 model epoch the record was written under
//	 24    8 length of the value, V
//	 32    T version tag (the model version the record was written under)
//	32+T   V value
//
// The checksum covers the expiry, epoch, lengths, tag and value, so a flipped
// bit anywhere after the first eight bytes is detected; a flipped bit in the
// first eight bytes changes the version, the tag length or the checksum itself
// and is detected too (wrong version, bad length or checksum mismatch). The
// flags byte is the one exception: it is advisory (see FlagClean) and is
// rewritten in place when a record moves between tiers.

// RecordVersion is the format version written in the first byte of every record.
const RecordVersion = 1

// HeaderSize is the size of a record header without its version tag.
const HeaderSize = 32

// MaxTagLen is the longest version tag a record can carry.
const MaxTagLen = 1<<16 - 1

// Flags of a record.
const (
	// FlagClean marks a record that is known to be in L2 already (it was
	// promoted from there or written through), so demoting it is unnecessary.
	FlagClean = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the metadata stored in front of every value.
type Header struct {
	// ExpireAt is the expiry in Unix milliseconds; 0 means the record never expires.
	ExpireAt int64
	// Epoch is the model epoch the record was written under (0 for plain keys
	// and for models the registry never knew).
	Epoch uint64
	// Tag is the model version the record was written under ("" for plain keys).
	Tag string
	// Flags holds FlagClean and future flags.
	Flags uint8
}

// Record is an encoded entry: a header followed by the value. Both tiers store
// records as they are, so moving an entry between tiers costs one copy.
type Record []byte

// NewRecord encodes h and value into a new record. It panics if the tag is
// longer than MaxTagLen (a programmer error: tags are model versions checked
// at the edge).
func NewRecord(h Header, value []byte) Record {
	r := newRecord(h, value)
	r.Seal()
	return r
}

// newRecord is NewRecord without the checksum (see Seal).
func newRecord(h Header, value []byte) Record {
	if len(h.Tag) > MaxTagLen {
		panic("tier: version tag too long")
	}
	r := make(Record, HeaderSize+len(h.Tag)+len(value))
	copy(r[HeaderSize+len(h.Tag):], value)
	h.encode(r)
	return r
}

// Seal computes the checksum of r and writes it into r's header.
//
// The write path builds records unsealed (newRecordIn): memory is trusted
// (L1 never verifies), and a record overwritten or dropped before it reaches
// the disk never needs a checksum, so computing it on every SET would cost
// a pass over the value for nothing. The disk tier seals the copy it writes
// instead. Seal modifies r: call it only on a record nothing else reads,
// such as that copy.
func (r Record) Seal() {
	binary.LittleEndian.PutUint32(r[4:], crc32.Checksum(r[8:], castagnoli))
}

// encode writes h in front of the value that fills the rest of r, with a
// zero checksum (see Seal).
func (h Header) encode(r Record) {
	r[0] = RecordVersion
	r[1] = h.Flags
	binary.LittleEndian.PutUint16(r[2:], uint16(len(h.Tag)))
	binary.LittleEndian.PutUint64(r[8:], uint64(h.ExpireAt))
	binary.LittleEndian.PutUint64(r[16:], h.Epoch)
	binary.LittleEndian.PutUint64(r[24:], uint64(len(r)-HeaderSize-len(h.Tag)))
	copy(r[HeaderSize:], h.Tag)
	binary.LittleEndian.PutUint32(r[4:], 0)
}

// ValueHeadroom is the room a caller may leave in front of a value it read
// (see SetArgs.Spare) so that the record can be built around the value in
// place instead of copying it: the header and a version tag of up to
// ValueHeadroom-HeaderSize bytes fit.
const ValueHeadroom = 256

// newRecordIn encodes h and value like NewRecord, but unsealed (see Seal),
// and in buf when value is buf's tail and the room in front of it holds
// the header and tag: then no copy of the value is made and the record
// shares buf's memory.
func newRecordIn(h Header, buf, value []byte) Record {
	need := HeaderSize + len(h.Tag)
	off := len(buf) - len(value)
	if len(value) == 0 || off < need || &buf[off] != &value[0] {
		return newRecord(h, value)
	}
	r := Record(buf[off-need:])
	h.encode(r)
	return r
}

// Size returns the encoded size of a record with this header and a value of n bytes.
func (h Header) Size(n int) int { return HeaderSize + len(h.Tag) + n }

// Expired reports whether a record with this header is expired at nowMs.
func (h Header) Expired(nowMs int64) bool { return h.ExpireAt != 0 && h.ExpireAt <= nowMs }

// Expired reports whether r is expired at nowMs. It must only be called on a
// record that parsed.
func (r Record) Expired(nowMs int64) bool {
	e := r.ExpireAt()
	return e != 0 && e <= nowMs
}

// parse checks the structure of r (version and lengths) without the checksum.
func (r Record) parse() (tagLen int, err error) {
	if len(r) < HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, header needs %d", ErrCorrupt, len(r), HeaderSize)
	}
	if r[0] != RecordVersion {
		return 0, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, r[0], RecordVersion)
	}
	tagLen = int(binary.LittleEndian.Uint16(r[2:]))
	vlen := binary.LittleEndian.Uint64(r[24:])
	if rest := uint64(len(r) - HeaderSize); uint64(tagLen) > rest || vlen != rest-uint64(tagLen) {
		return 0, fmt.Errorf("%w: lengths (tag %d, value %d) do not match record size %d", ErrCorrupt, tagLen, vlen, len(r))
	}
	return tagLen, nil
}

// Check verifies the structure of r (format version and lengths) without
// the checksum and without allocating; the accessors (ExpireAt, Epoch,
// Flags, Value) may be used on r once it returns nil.
func (r Record) Check() error {
	_, err := r.parse()
	return err
}

// Header decodes the header of r without verifying the checksum (memory is
// trusted; use Verify for records read from disk). A short or malformed
// record is an error wrapping ErrCorrupt, never a panic.
func (r Record) Header() (Header, error) {
	tagLen, err := r.parse()
	if err != nil {
		return Header{}, err
	}
	return Header{
		Flags:    r[1],
		ExpireAt: int64(binary.LittleEndian.Uint64(r[8:])),
		Epoch:    binary.LittleEndian.Uint64(r[16:]),
		Tag:      string(r[HeaderSize : HeaderSize+tagLen]),
	}, nil
}

// Verify checks the structure and the checksum of r.
func (r Record) Verify() error {
	if _, err := r.parse(); err != nil {
		return err
	}
	if got, want := crc32.Checksum(r[8:], castagnoli), binary.LittleEndian.Uint32(r[4:]); got != want {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	return nil
}

// ExpireAt returns the expiry of r without decoding the rest of the header.
// It must only be called on a record that parsed.
func (r Record) ExpireAt() int64 { return int64(binary.LittleEndian.Uint64(r[8:])) }

// Epoch returns the model epoch of r. It must only be called on a record that parsed.
func (r Record) Epoch() uint64 { return binary.LittleEndian.Uint64(r[16:]) }

// Flags returns the flags of r. It must only be called on a record that parsed.
func (r Record) Flags() uint8 { return r[1] }

// SetFlags overwrites the flags byte in place. Flags are not covered by the
// checksum, so this keeps the record valid.
func (r Record) SetFlags(f uint8) { r[1] = f }

// Value returns the value of r, aliasing r. It must only be called on a
// record that parsed.
func (r Record) Value() []byte {
	tagLen := int(binary.LittleEndian.Uint16(r[2:]))
	return r[HeaderSize+tagLen:]
}
