package tiertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
)

// Factory opens a fresh, empty tier whose TTLs follow clock. The tier is
// closed by the suite (when it implements io.Closer-like Close() error) at
// the end of each case.
type Factory func(t *testing.T, clock tier.Clock) tier.Tier

// Start is the time every case's manual clock starts at.
var Start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Run runs every conformance case against tiers made by newTier.
func Run(t *testing.T, newTier Factory) {
	cases := []struct {
		name string
		fn   func(t *testing.T, tr tier.Tier, clock *tier.ManualClock)
	}{
		{"GetMissing", testGetMissing},
		{"SetGet", testSetGet},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"BinaryKeysAndValues", testBinary},
		{"EmptyValue", testEmptyValue},
		{"LargeValue8MiB", testLargeValue},
		{"TTL", testTTL},
		{"Concurrent", testConcurrent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := tier.NewManualClock(Start)
			tr := newTier(t, clock)
			t.Cleanup(func() {
				if c, ok := tr.(interface{ Close() error }); ok {
					if err := c.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				}
			})
			c.fn(t, tr, clock)
		})
	}
}

// Rec returns a record holding value with no expiry.
func Rec(value []byte) tier.Record { return tier.NewRecord(tier.Header{}, value) }

// MustGet returns the value stored under key, failing the test if there is none.
func MustGet(t testing.TB, tr tier.Tier, key []byte) []byte {
	t.Helper()
	r, err := tr.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", trunc(key), err)
	}
	if _, err := r.Header(); err != nil {
		t.Fatalf("Get(%q): returned a malformed record: %v", trunc(key), err)
	}
	return r.Value()
}

// MustMiss fails the test unless key is absent.
func MustMiss(t testing.TB, tr tier.Tier, key []byte) {
	t.Helper()
	if r, err := tr.Get(key); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Get(%q) = %d bytes, %v; want ErrNotFound", trunc(key), len(r), err)
	}
}

// MustSet stores value under key, failing the test on error.
func MustSet(t testing.TB, tr tier.Tier, key, value []byte) {
	t.Helper()
	if err := tr.Set(key, Rec(value)); err != nil {
		t.Fatalf("Set(%q, %d bytes): %v", trunc(key), len(value), err)
	}
}

func trunc(k []byte) []byte {
	if len(k) > 40 {
		return k[:40]
	}
	return k
}

// Value returns a deterministic value of n bytes for key that CheckValue
// can verify: the first 32 bytes (or fewer) are a SHA-256 over key, n and
// the rest, so a wrong, torn or swapped value is detected.
func Value(key []byte, n int, seed uint64) []byte {
	v := make([]byte, n)
	if n <= 32 {
		sum := digest(key, n, seed, nil)
		copy(v, sum[:])
		return v
	}
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	for i := 32; i < n; i += 8 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], r.Uint64())
		copy(v[i:], b[:])
	}
	sum := digest(key, n, 0, v[32:])
	copy(v, sum[:])
	return v
}

// CheckValue reports whether v is a value Value produced for key.
func CheckValue(key, v []byte) error {
	n := len(v)
	if n <= 32 {
		return nil // short values carry a seed-dependent digest; callers compare them directly
	}
	sum := digest(key, n, 0, v[32:])
	if !bytes.Equal(v[:32], sum[:]) {
		return fmt.Errorf("value of %q (%d bytes) fails its checksum", trunc(key), n)
	}
	return nil
}

func digest(key []byte, n int, seed uint64, rest []byte) [32]byte {
	h := sha256.New()
	h.Write(key)
	_ = binary.Write(h, binary.LittleEndian, uint64(n))
	_ = binary.Write(h, binary.LittleEndian, seed)
	h.Write(rest)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func testGetMissing(t *testing.T, tr tier.Tier, _ *tier.ManualClock) {
	MustMiss(t, tr, []byte("nope"))
	if err := tr.Delete([]byte("nope")); err != nil {
		t.Fatalf("Delete of an absent key: %v", err)
	}
}

func testSetGet(t *testing.T, tr tier.Tier, _ *tier.ManualClock) {
	for i := range 50 {
		k := fmt.Appendf(nil, "key-%d", i)
		MustSet(t, tr, k, Value(k, 100+i*37, 1))
	}
	for i := range 50 {
		k := fmt.Appendf(nil, "key-%d", i)
		if got, want := MustGet(t, tr, k), Value(k, 100+i*37, 1); !bytes.Equal(got, want) {
			t.Fatalf("Get(%s): value differs", k)
		}
	}
}

func testOverwrite(t *testing.T, tr tier.Tier, _ *tier.ManualClock) {
	k := []byte("k")
	sizes := []int{10, 5000, 100, 200 << 10, 1}
	for i, n := range sizes {
		MustSet(t, tr, k, Value(k, n, uint64(i)))
		if got := MustGet(t, tr, k); !bytes.Equal(got, Value(k, n, uint64(i))) {
			t.Fatalf("after overwrite %d (%d bytes): got %d bytes, wrong value", i, n, len(got))
		}
	}
}

func testDelete(t *testing.T, tr tier.Tier, _ *tier.ManualClock) {
	a, b := []byte("a"), []byte("b")
	MustSet(t, tr, a, []byte("1"))
	MustSet(t, tr, b, []byte("2"))
	if err := tr.Delete(a); err != nil {
		t.Fatal(err)
	}
	MustMiss(t, tr, a)
	if got := MustGet(t, tr, b); string(got) != "2" {
		t.Fatalf("b = %q after deleting a", got)
	}
	MustSet(t, tr, a, []byte("3"))
	if got := MustGet(t, tr, a); string(got) != "3" {
		t.Fatalf("a = %q after re-set", got)
	}
}

func testBinary(t *testing.T, tr tier.Tier, _ *tier.ManualClock) {
	keys := [][]byte{
		{0}, {0, 0}, {0xff, 0xfe, 0}, []byte("{"), []byte("}"), []byte("{}x"),
		[]byte("\r\n$-1\r\n"), bytes.Repeat([]byte{0xaa}, 1000), []byte("ключ"),
	}
	for i, k := range keys {
		v := make([]byte, 256)
		for j := range v {
			v[j] = byte(j + i)
		}
		MustSet(t, tr, k, v)
	}
	for i, k := range keys {
		got := MustGet(t, tr, k)
		for j := range got {
			if got[j] != byte(j+i) || len(got) != 256 {
				t.Fatalf("key %q: value differs at %d", k, j)
			}
		}
	}
}

func testEmptyValue(t *testing.T, tr tier.Tier, _ *tier.ManualClock) {
	k := []byte("empty")
	MustSet(t, tr, k, nil)
	if got := MustGet(t, tr, k); len(got) != 0 {
		t.Fatalf("got %d bytes, want 0", len(got))
	}
	MustSet(t, tr, []byte(""), []byte("empty key"))
	if got := MustGet(t, tr, []byte("")); string(got) != "empty key" {
		t.Fatalf("empty key: got %q", got)
	}
}

func testLargeValue(t *testing.T, tr tier.Tier, _ *tier.ManualClock) {
	k := []byte("large")
	v := Value(k, 8<<20, 7)
	MustSet(t, tr, k, v)
	if got := MustGet(t, tr, k); !bytes.Equal(got, v) {
		t.Fatalf("8 MiB value differs (got %d bytes)", len(got))
	}
}

func testTTL(t *testing.T, tr tier.Tier, clock *tier.ManualClock) {
	k, forever := []byte("ttl"), []byte("forever")
	exp := clock.Now().Add(1500 * time.Millisecond).UnixMilli()
	if err := tr.Set(k, tier.NewRecord(tier.Header{ExpireAt: exp}, []byte("soon gone"))); err != nil {
		t.Fatal(err)
	}
	MustSet(t, tr, forever, []byte("stays"))
	r, err := tr.Get(k)
	if err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	if r.ExpireAt() != exp {
		t.Fatalf("ExpireAt = %d, want %d", r.ExpireAt(), exp)
	}
	clock.Advance(1499 * time.Millisecond)
	MustGet(t, tr, k)
	clock.Advance(time.Millisecond)
	MustMiss(t, tr, k)
	clock.Advance(time.Hour)
	MustMiss(t, tr, k)
	if got := MustGet(t, tr, forever); string(got) != "stays" {
		t.Fatalf("forever = %q", got)
	}
	// Overwriting with no TTL makes the key persistent again.
	if err := tr.Set(k, tier.NewRecord(tier.Header{ExpireAt: clock.Now().Add(time.Second).UnixMilli()}, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	MustSet(t, tr, k, []byte("y"))
	clock.Advance(time.Minute)
	if got := MustGet(t, tr, k); string(got) != "y" {
		t.Fatalf("after persist overwrite: %q", got)
	}
}

func testConcurrent(t *testing.T, tr tier.Tier, _ *tier.ManualClock) {
	const workers, ops, keys = 8, 400, 64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for range ops {
				k := fmt.Appendf(nil, "c-%d", r.IntN(keys))
				switch x := r.IntN(10); {
				case x < 5:
					got, err := tr.Get(k)
					if errors.Is(err, tier.ErrNotFound) {
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					if err := CheckValue(k, got.Value()); err != nil {
						errc <- err
						return
					}
				case x < 9:
					if err := tr.Set(k, Rec(Value(k, 33+r.IntN(20000), r.Uint64()))); err != nil {
						errc <- err
						return
					}
				default:
					if err := tr.Delete(k); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

// Rollout returns the registry change that rolls model out to version,
// failing the test if they are invalid.
func Rollout(t testing.TB, model, version string) tier.ModelChange {
	t.Helper()
	ch, err := tier.NewRollout(model, version)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// Purge returns the registry change that purges model, failing the test if
// the name is invalid.
func Purge(t testing.TB, model string) tier.ModelChange {
	t.Helper()
	ch, err := tier.NewPurge(model)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}
