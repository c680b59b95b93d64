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

func TestRecordInPlace(t *testing.T) {
	value := bytes.Repeat([]byte{0xab}, 100<<10)
	for _, tc := range []struct {
		name    string
		h       Header
		room    int
		inPlace bool
	}{
		{"plain", Header{ExpireAt: 5}, ValueHeadroom, true},
		{"tag fits", Header{Epoch: 3, Tag: string(bytes.Repeat([]byte("v"), ValueHeadroom-HeaderSize))}, ValueHeadroom, true},
		{"tag too long", Header{Tag: string(bytes.Repeat([]byte("v"), ValueHeadroom-HeaderSize+1))}, ValueHeadroom, false},
		{"no room", Header{}, HeaderSize - 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, tc.room+len(value))
			v := buf[tc.room:]
			copy(v, value)
			r := newRecordIn(tc.h, buf, v)
			if r.Verify() == nil && len(value) > 0 {
				t.Fatal("newRecordIn sealed the record")
			}
			r.Seal()
			if want := NewRecord(tc.h, value); !bytes.Equal(r, want) {
				t.Fatalf("record differs from NewRecord's")
			}
			if shared := &r[len(r)-1] == &buf[len(buf)-1]; shared != tc.inPlace {
				t.Fatalf("built in place: %v, want %v", shared, tc.inPlace)
			}
		})
	}
	// A spare buffer that does not hold the value is not used.
	buf := make([]byte, ValueHeadroom+len(value))
	r := newRecordIn(Header{}, buf, value)
	if !bytes.Equal(r.Value(), value) || &r[len(r)-1] == &buf[len(buf)-1] {
		t.Fatal("a spare buffer that is not the value's was used")
	}
	if r := newRecordIn(Header{}, buf, nil); r.Check() != nil || len(r.Value()) != 0 {
		t.Fatal("empty value")
	}
}
