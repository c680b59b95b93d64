package tier

import (
	"bytes"
	"errors"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{},
		{ExpireAt: 1767322245000, Epoch: 7, Tag: "v2", Flags: FlagClean},
		{Tag: string(bytes.Repeat([]byte("x"), MaxTagLen))},
	} {
		for _, v := range [][]byte{nil, {0}, []byte("hello"), bytes.Repeat([]byte{0xee}, 1<<20)} {
			r := NewRecord(h, v)
			if err := r.Verify(); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			got, err := r.Header()
			if err != nil {
				t.Fatal(err)
			}
			if got != h {
				t.Fatalf("header %+v, want %+v", got, h)
			}
			if !bytes.Equal(r.Value(), v) || len(r) != h.Size(len(v)) {
				t.Fatalf("value or size differs")
			}
			if r.ExpireAt() != h.ExpireAt || r.Epoch() != h.Epoch || r.Flags() != h.Flags {
				t.Fatalf("accessors differ from header")
			}
		}
	}
}

func TestRecordDetectsCorruption(t *testing.T) {
	r := NewRecord(Header{ExpireAt: 5, Epoch: 9, Tag: "v1"}, []byte("some embedding bytes"))
	for i := range r {
		if i == 1 {
			continue // flags are advisory and not covered
		}
		for _, bit := range []byte{1, 0x80} {
			c := append(Record(nil), r...)
			c[i] ^= bit
			if err := c.Verify(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flipping bit %#x of byte %d: Verify = %v, want ErrCorrupt", bit, i, err)
			}
		}
	}
	for n := range HeaderSize + 2 {
		if _, err := r[:n].Header(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: Header = %v", n, err)
		}
	}
	c := append(Record(nil), r...)
	c.SetFlags(FlagClean)
	if err := c.Verify(); err != nil {
		t.Fatalf("flags changed in place: %v", err)
	}
}

func TestExpired(t *testing.T) {
	h := Header{ExpireAt: 1000}
	if h.Expired(999) || !h.Expired(1000) || (Header{}).Expired(1<<62) {
		t.Fatal("Expired is wrong")
	}
}

func FuzzRecord(f *testing.F) {
	f.Add([]byte(NewRecord(Header{ExpireAt: 1, Epoch: 2, Tag: "v"}, []byte("value"))))
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := Record(b)
		h, herr := r.Header()
		verr := r.Verify()
		if herr != nil {
			if verr == nil {
				t.Fatal("Verify accepted a record Header rejects")
			}
			return
		}
		_ = r.Value()
		if verr == nil {
			// A valid record re-encodes to itself.
			if again := NewRecord(h, r.Value()); !bytes.Equal(again, r) {
				t.Fatalf("re-encoding differs")
			}
		}
	})
}
