package drill

import (
	"bytes"
	"errors"
	"testing"
)

// TestValue checks the checker the drills rely on: every value a drill
// writes is verified against its key, and a wrong, torn or truncated value
// must be caught.
func TestValue(t *testing.T) {
	key := []byte("drill:42")
	for _, size := range []int{0, Overhead, Overhead + 1, 1000, 200 << 10} {
		v := NewValue(key, 7, size)
		if want := max(size, Overhead); len(v) != want {
			t.Fatalf("size %d: len %d, want %d", size, len(v), want)
		}
		if seq, err := CheckValue(key, v); err != nil || seq != 7 {
			t.Fatalf("size %d: CheckValue = %d, %v", size, seq, err)
		}
		if seq, err := CheckValueReader(key, bytes.NewReader(append(v, "\r\nnext"...)), int64(len(v))); err != nil || seq != 7 {
			t.Fatalf("size %d: CheckValueReader = %d, %v", size, seq, err)
		}
		if _, err := CheckValue([]byte("drill:43"), v); !errors.Is(err, ErrChecksum) {
			t.Fatalf("size %d: value checked for another key: %v", size, err)
		}
	}

	a, b := NewValue(key, 1, 4096), NewValue(key, 2, 4096)
	if bytes.Equal(a[8:], b[8:]) {
		t.Fatal("two writes of a key made the same payload")
	}
	torn := append(append([]byte(nil), a[:2048]...), b[2048:]...)
	if _, err := CheckValue(key, torn); !errors.Is(err, ErrChecksum) {
		t.Fatalf("torn value: %v", err)
	}
	if _, err := CheckValueReader(key, bytes.NewReader(torn), int64(len(torn))); !errors.Is(err, ErrChecksum) {
		t.Fatalf("torn value, streamed: %v", err)
	}
	if _, err := CheckValue(key, a[:len(a)-1]); !errors.Is(err, ErrChecksum) {
		t.Fatalf("truncated value: %v", err)
	}
	if _, err := CheckValue(key, a[:Overhead-1]); !errors.Is(err, ErrShort) {
		t.Fatalf("short value: %v", err)
	}
	flipped := append([]byte(nil), a...)
	flipped[1000] ^= 1
	if _, err := CheckValue(key, flipped); !errors.Is(err, ErrChecksum) {
		t.Fatalf("flipped bit: %v", err)
	}
}
