package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/tidwall/redcon"

	"github.com/tiercache/tiercache/internal/bufpool"
)

// loopReader returns the same bytes over and over, as a client sending the
// same command forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// BenchmarkReader compares the server's RESP reader with redcon's, on SET
// commands with values of typical embedding sizes: it is what justifies a
// hand-written reader (exact-size buffers, the in-flight budget, streaming
// discard of oversized values) over a library one. Large values are read
// into recycled buffers, as in the daemon.
func BenchmarkReader(b *testing.B) {
	for _, size := range []int{1 << 10, 118 << 10, 4 << 20} {
		cmd := encodeArgs([][]byte{[]byte("SET"), []byte("embedding:0123456789"), bytes.Repeat([]byte{'v'}, size)})
		name := fmt.Sprintf("%dKB", size>>10)
		b.Run("tiercache/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(cmd)))
			budget := newBudget(1<<30, smallCommand, smallReserve)
			rd := newReader(&loopReader{data: cmd}, budget, context.Background(), 64<<20, 1<<30, 1<<20, bufpool.New(bufpool.Options{}))
			for b.Loop() {
				args, err := rd.readCommand()
				if err != nil || len(args) != 3 || len(args[2]) != size {
					b.Fatalf("%d args, %v", len(args), err)
				}
			}
			rd.release()
		})
		b.Run("redcon/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(cmd)))
			rd := redcon.NewReader(&loopReader{data: cmd})
			for b.Loop() {
				c, err := rd.ReadCommand()
				if err != nil || len(c.Args) != 3 || len(c.Args[2]) != size {
					b.Fatalf("%d args, %v", len(c.Args), err)
				}
			}
		})
	}
}

var _ io.Reader = (*loopReader)(nil)
