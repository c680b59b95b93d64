package tier

import (
	"encoding/binary"
)

// L2 keys. The disk tier stores each entry under a logical key built from the
// user key so that every entry of one model, and of one model epoch, is
// contiguous and can be dropped with a range delete:
//
//	plain key:  0x00 | user key
//	model key:  0x01 | uvarint(len(MODEL)) | MODEL | epoch (8 bytes, big endian) | user key
//
// The length prefix makes the model prefix unambiguous whatever bytes MODEL
// holds; the big-endian epoch orders a model's epochs so that "every epoch
// before E" is one range.
const (
	lkeyPlain = 0x00
	lkeyModel = 0x01
)

// PlainKey returns the L2 key of a plain (unscoped) user key.
func PlainKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = lkeyPlain
	copy(k[1:], key)
	return k
}

// ModelKey returns the L2 key of a model-scoped user key written under epoch.
func ModelKey(model string, epoch uint64, key []byte) []byte {
	k := modelPrefix(make([]byte, 0, 1+binary.MaxVarintLen64+len(model)+8+len(key)), model)
	k = binary.BigEndian.AppendUint64(k, epoch)
	return append(k, key...)
}

// ModelRange returns [start, end) covering every L2 key of model with an
// epoch in [fromEpoch, toEpoch). toEpoch 0 means "no upper bound".
func ModelRange(model string, fromEpoch, toEpoch uint64) (start, end []byte) {
	p := modelPrefix(nil, model)
	start = binary.BigEndian.AppendUint64(append([]byte(nil), p...), fromEpoch)
	if toEpoch == 0 {
		return start, PrefixEnd(p)
	}
	return start, binary.BigEndian.AppendUint64(append([]byte(nil), p...), toEpoch)
}

// parseL2Key splits an L2 key into its user key and, for a model key, its
// model and epoch. ok is false for a key no PlainKey or ModelKey returns.
func parseL2Key(lk []byte) (key []byte, model string, epoch uint64, scoped, ok bool) {
	if len(lk) == 0 {
		return nil, "", 0, false, false
	}
	switch lk[0] {
	case lkeyPlain:
		return lk[1:], "", 0, false, true
	case lkeyModel:
		n, w := binary.Uvarint(lk[1:])
		rest := lk[1:]
		if w <= 0 || uint64(len(rest)-w) < n+8 {
			return nil, "", 0, false, false
		}
		rest = rest[w:]
		model = string(rest[:n])
		epoch = binary.BigEndian.Uint64(rest[n:])
		return rest[n+8:], model, epoch, true, true
	}
	return nil, "", 0, false, false
}

func modelPrefix(dst []byte, model string) []byte {
	dst = append(dst, lkeyModel)
	dst = binary.AppendUvarint(dst, uint64(len(model)))
	return append(dst, model...)
}

// PrefixEnd returns the smallest key greater than every key starting with
// p: the exclusive upper bound of p's span, as a range delete or an
// iterator's UpperBound takes it. The result is a new slice. p must hold a
// byte below 0xff, which every L2 key does (it starts with a namespace
// byte); a prefix of 0xff bytes only, or an empty one, has no such bound
// and PrefixEnd panics.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	panic("tier: PrefixEnd of an empty or all-0xff prefix")
}
