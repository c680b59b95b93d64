package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/testutil"
)

// recycledValue is value number seq of key i: a header naming both, then a
// fill that depends on them, so that any byte of another value (or of a
// poisoned, recycled buffer) is detected.
func recycledValue(i, seq, size int) []byte {
	v := make([]byte, size)
	binary.LittleEndian.PutUint64(v, uint64(i))
	binary.LittleEndian.PutUint64(v[8:], uint64(seq))
	fill := byte(i*31 + seq*7 + 1)
	for j := 16; j < size; j++ {
		v[j] = fill
	}
	return v
}

// checkRecycledValue reports what is wrong with v as a value of key i.
func checkRecycledValue(i int, v []byte) error {
	if len(v) < 16 {
		return fmt.Errorf("key %d: %d bytes", i, len(v))
	}
	if got := int(binary.LittleEndian.Uint64(v)); got != i {
		return fmt.Errorf("key %d: value of key %d", i, got)
	}
	seq := int(binary.LittleEndian.Uint64(v[8:]))
	fill := byte(i*31 + seq*7 + 1)
	for j := 16; j < len(v); j++ {
		if v[j] != fill {
			return fmt.Errorf("key %d: value %d of %d bytes has %#x at %d, want %#x", i, seq, len(v), v[j], j, fill)
		}
	}
	return nil
}

// Clients writing, reading, replacing and deleting large values at once,
// with L1 too small for them all (evictions) and write-through (records
// held by the write queue too): every value read back is whole, although
// the buffers values are read into are recycled (and poisoned when freed)
// all along.
func TestRecycledBuffersNeverServedTwice(t *testing.T) {
	ts := startServer(t, nil)
	const keys, workers, ops = 900, 4, 1200 // ~50 MB of values: L1 (32 MiB) evicts
	key := func(i int) string { return "rv:" + strconv.Itoa(i) }
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ts.client(t, nil)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			fail := func(err error) { errs <- err }
			for n := range ops {
				i := rng.IntN(keys)
				size := 17<<10 + rng.IntN(80<<10) // every size pooled (≥ 16 KiB)
				seq := w*ops + n
				switch op := rng.IntN(20); {
				case op < 11:
					if err := c.Set(ctx, key(i), recycledValue(i, seq, size), 0).Err(); err != nil {
						fail(err)
						return
					}
				case op < 15:
					v, err := c.Get(ctx, key(i)).Bytes()
					if errors.Is(err, redis.Nil) {
						continue
					}
					if err == nil {
						err = checkRecycledValue(i, v)
					}
					if err != nil {
						fail(fmt.Errorf("GET: %w", err))
						return
					}
				case op < 17:
					idx := []int{i, (i + 1) % keys, (i + 2) % keys}
					vals, err := c.MGet(ctx, key(idx[0]), key(idx[1]), key(idx[2])).Result()
					if err != nil {
						fail(err)
						return
					}
					for k, v := range vals {
						if s, ok := v.(string); ok {
							if err := checkRecycledValue(idx[k], []byte(s)); err != nil {
								fail(fmt.Errorf("MGET: %w", err))
								return
							}
						}
					}
				case op < 19:
					old, err := c.SetArgs(ctx, key(i), recycledValue(i, seq, size), redis.SetArgs{Get: true}).Bytes()
					if errors.Is(err, redis.Nil) {
						continue
					}
					if err == nil {
						err = checkRecycledValue(i, old)
					}
					if err != nil {
						fail(fmt.Errorf("SET GET: %w", err))
						return
					}
				default:
					if err := c.Del(ctx, key(i)).Err(); err != nil {
						fail(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := ts.h.Buffers().Stats()
	t.Logf("buffers: %+v; L1 %+v", s, ts.l1.Stats())
	if s.Reused == 0 || ts.l1.Stats().Evictions == 0 {
		t.Fatalf("the test did not exercise recycling under eviction: buffers %+v, L1 %+v", s, ts.l1.Stats())
	}
}

// A client that asks for a large value and does not read the reply holds
// the value's buffer: replaced meanwhile by another client's writes, it is
// not reused until the reply is written, while the buffers of the other
// client's values are (the slow client does not stop recycling).
func TestRecycledBufferWaitsForSlowReader(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	c := ts.client(t, nil)
	const size = 2 << 20 // far more than a socket buffer (the server's write blocks), small enough for L1
	want := recycledValue(0, 0, size)
	if err := c.Set(ctx, "slow", want, 0).Err(); err != nil {
		t.Fatal(err)
	}
	slow := ts.dial(t)
	before := ts.s.cmds.total()
	slow.send("*2\r\n$3\r\nGET\r\n$4\r\nslow\r\n")
	// The GET must have run (and queued its reply) before the value is
	// replaced; commands are counted when they end, before the reply is
	// written.
	testutil.WaitFor(t, 10*time.Second, "the slow client's GET to run", func() bool {
		return ts.s.cmds.total() > before
	})
	retired := ts.h.Buffers().Stats().Retired
	// Replace the value (retiring its buffer) and keep writing values of
	// the same size, which would reuse it.
	for seq := 1; seq <= 8; seq++ {
		if err := c.Set(ctx, "slow", recycledValue(0, seq, size), 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := ts.h.Flush(); err != nil { // the write queue lets go of the records
			t.Fatal(err)
		}
	}
	if got := ts.h.Buffers().Stats(); got.Retired <= retired || got.Reused == 0 {
		t.Fatalf("buffers were not retired and reused meanwhile: %+v (retired before %d)", got, retired)
	}
	line, err := slow.br.ReadString('\n')
	if err != nil || line != "$"+strconv.Itoa(size)+"\r\n" {
		t.Fatalf("reply header %q, %v", line, err)
	}
	got := make([]byte, size+2)
	if _, err := io.ReadFull(slow.br, got); err != nil {
		t.Fatal(err)
	}
	if err := checkRecycledValue(0, got[:size]); err != nil || !bytes.Equal(got[:size], want) {
		t.Fatalf("the slow reader's value changed under it: %v", err)
	}
}
