package disktier

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/tiercache/tiercache/tier"
)

// Pebble key layout. Every Pebble key starts with a namespace byte; the byte
// values are ordered d < m < p < q so that each namespace is one contiguous
// span:
//
//	d | gen (8 bytes, big endian) | key  -> the record (when not inline)
//	m | ...                              -> meta (see below)
//	p | key                              -> pointer record (see pointer)
//	q | gen (8 bytes, big endian) | key  -> empty: the eviction index of gen
//
// d and q are grouped by generation first so that dropping a generation is
// one range delete each, and so that the Pebble files holding a generation
// hold nothing else (spanPolicy cuts every output file at a generation
// boundary): once a generation is range-deleted, Pebble deletes its files
// whole (delete-only compactions) instead of rewriting them.
const (
	nsData  = 'd'
	nsMeta  = 'm'
	nsPtr   = 'p'
	nsQueue = 'q'
)

// Meta keys.
var (
	metaVersion  = []byte("mv") // layout version, one byte
	metaKeys     = []byte("mk") // number of p keys, 8 bytes
	metaExpiring = []byte("me") // number of p keys whose pointer has an expiry (see ptrExpires), 8 bytes; absent before it was added
	metaGen      = []byte("mg") // mg | gen (8B BE) -> bytes written to gen, 8 bytes
	metaRecount  = []byte("mr") // mr | id (8B BE) -> empty: a DropRange whose key count is not applied yet (id 0: a store that had no metaExpiring)
	metaUser     = []byte("mu") // mu | name -> PutMeta value
	metaEnd      = []byte{'m' + 1}
)

// layoutVersion is stored under metaVersion.
const layoutVersion = 1

// genPrefix returns ns | gen, the first key of a generation's span.
func genPrefix(ns byte, gen uint64) []byte {
	k := make([]byte, 9)
	k[0] = ns
	binary.BigEndian.PutUint64(k[1:], gen)
	return k
}

// genEnd returns the first key after the span of gen in namespace ns.
func genEnd(ns byte, gen uint64) []byte {
	if gen == math.MaxUint64 {
		return []byte{ns + 1}
	}
	return genPrefix(ns, gen+1)
}

func appendPtrKey(dst, key []byte) []byte {
	return append(append(dst, nsPtr), key...)
}

func appendGenKey(dst []byte, ns byte, gen uint64, key []byte) []byte {
	dst = append(dst, ns)
	dst = binary.BigEndian.AppendUint64(dst, gen)
	return append(dst, key...)
}

// ptrEnd returns the end of p|[.., end): p|end, or the end of the p
// namespace when end is nil (no upper bound).
func ptrEnd(end []byte) []byte {
	if end == nil {
		return []byte{nsPtr + 1}
	}
	return appendPtrKey(nil, end)
}

// genKeyEnd is ptrEnd for the d and q namespaces of gen.
func genKeyEnd(ns byte, gen uint64, end []byte) []byte {
	if end == nil {
		return genEnd(ns, gen)
	}
	return appendGenKey(nil, ns, gen, end)
}

func metaGenKey(gen uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), metaGen...), gen)
}

func metaRecountKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), metaRecount...), id)
}

func metaUserKey(name string) []byte {
	return append(append([]byte(nil), metaUser...), name...)
}

// keyBuf is a pooled scratch buffer for building Pebble keys on the read
// path: Pebble does not retain the key it is given, so a hit costs no
// allocation besides the copy of the record.
type keyBuf struct{ b []byte }

var keyBufs = sync.Pool{New: func() any { return &keyBuf{b: make([]byte, 0, 128)} }}

// Pointer record, the value of p|key (all integers little endian):
//
//	off size field
//	  0    1 kind: ptrInline or ptrInGen
//	  1    8 generation the entry was written in
//	  9    8 expiry of the record, Unix milliseconds (0 = never)
//	 17    8 length of the record
//	 25    - the record itself, for ptrInline only
//
// The expiry is copied from the record so that expired entries are found
// (on reads and by the TTL sweep) without reading a record kept apart; the
// length lets DropRange's background count fix the byte accounting.
const (
	ptrInline  = 0xA1
	ptrInGen   = 0xA2
	ptrHdrSize = 25
)

type pointer struct {
	kind     byte
	gen      uint64
	expireAt int64
	size     uint64
}

func (p pointer) inline() bool { return p.kind == ptrInline }

func (p pointer) expired(nowMs int64) bool { return p.expireAt != 0 && p.expireAt <= nowMs }

// ptrExpires reports whether the pointer record v counts in
// Stats().Expiring: its expiry field is not 0. The field is read whether or
// not the rest of v is well formed, so that a pointer damaged elsewhere (a
// corrupt inline record, say) is counted as it was when written; v too short
// to hold the field never counts. Every path that creates, overwrites,
// removes or counts pointers uses this one predicate.
func ptrExpires(v []byte) bool {
	return len(v) >= ptrHdrSize && binary.LittleEndian.Uint64(v[9:]) != 0
}

// appendPointer encodes a pointer to r in gen, with r inline if inline.
func appendPointer(dst []byte, gen uint64, r tier.Record, inline bool) []byte {
	kind := byte(ptrInGen)
	if inline {
		kind = ptrInline
	}
	dst = append(dst, kind)
	dst = binary.LittleEndian.AppendUint64(dst, gen)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.ExpireAt()))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(r)))
	if inline {
		dst = append(dst, r...)
	}
	return dst
}

// decodePointer parses a pointer record read from disk. A malformed one is
// an error wrapping tier.ErrCorrupt, never a panic.
func decodePointer(v []byte) (pointer, error) {
	if len(v) < ptrHdrSize {
		return pointer{}, fmt.Errorf("%w: pointer record of %d bytes", tier.ErrCorrupt, len(v))
	}
	p := pointer{
		kind:     v[0],
		gen:      binary.LittleEndian.Uint64(v[1:]),
		expireAt: int64(binary.LittleEndian.Uint64(v[9:])),
		size:     binary.LittleEndian.Uint64(v[17:]),
	}
	switch p.kind {
	case ptrInline:
		if uint64(len(v)-ptrHdrSize) != p.size {
			return pointer{}, fmt.Errorf("%w: inline pointer says %d bytes, holds %d", tier.ErrCorrupt, p.size, len(v)-ptrHdrSize)
		}
	case ptrInGen:
		if len(v) != ptrHdrSize {
			return pointer{}, fmt.Errorf("%w: pointer record of %d bytes", tier.ErrCorrupt, len(v))
		}
	default:
		return pointer{}, fmt.Errorf("%w: pointer kind %#x", tier.ErrCorrupt, p.kind)
	}
	return p, nil
}

// entryCost estimates the bytes an entry adds to its generation on disk: the
// record, its key in up to three namespaces, the pointer header and Pebble's
// per-key trailers. It is an over-estimate on purpose: the accounting must
// err on the side of evicting early.
func entryCost(keyLen, recLen int, inline bool) int64 {
	if inline {
		return int64(recLen + 2*keyLen + 2*9 + ptrHdrSize + 2*16)
	}
	return int64(recLen + 3*keyLen + 3*9 + ptrHdrSize + 3*16)
}

// spanPolicy is Pebble's SpanPolicyFunc. Pebble ends an output file (of a
// flush or a compaction) at the end key returned here, so every file holds
// keys of one namespace, and in d and q of one generation: a generation's
// files are then deleted whole when it is dropped. It also keeps the small
// values of m, p and q inside the sstables (never in blob files, whose
// lifetime would then span generations); records in d are separated into
// blob files, aligned with generations too, so compactions move keys and
// value handles rather than multi-MB values.
func spanPolicy(start []byte) (pebble.SpanPolicy, []byte, error) {
	inPlace := pebble.SpanPolicy{ValueStoragePolicy: pebble.ValueStorageLowReadLatency}
	if len(start) == 0 || start[0] < nsData {
		return inPlace, []byte{nsData}, nil
	}
	switch c := start[0]; {
	case c == nsData || c == nsQueue:
		var g [8]byte
		copy(g[:], start[1:])
		end := genEnd(c, binary.BigEndian.Uint64(g[:]))
		if c == nsData {
			return pebble.SpanPolicy{}, end, nil
		}
		return inPlace, end, nil
	case c < nsQueue:
		return inPlace, []byte{c + 1}, nil
	default:
		return inPlace, nil, nil
	}
}
