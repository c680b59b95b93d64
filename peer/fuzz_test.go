package peer

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzServer feeds an authenticated connection arbitrary bytes, split in
// two writes at an arbitrary point, then closes its writing side: the
// server must answer or refuse what it can parse, never panic, and close
// the connection once the input ends.
func FuzzServer(f *testing.F) {
	f.Add(appendKeyOp(nil, opGet, []byte("k")), uint16(3))
	f.Add(appendSet(nil, []byte("{m}k"), []byte("value"), 0, "v1"), uint16(7))
	f.Add(appendSet(appendKeyOp(nil, opDelete, []byte("k")), []byte("k"), nil, 1, ""), uint16(0))
	f.Add(appendExpire(nil, []byte("k"), 1, 0xff), uint16(9))
	f.Add([]byte{1, 0, 0, 0, opPing, 0, 0, 0, 0, opGet}, uint16(5))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, opSet, 1, 2, 3}, uint16(2))
	f.Add([]byte{15, 0, 0, 0, opSet, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(4))

	h := openHybrid(f)
	s := startServer(f, ServerOptions{Store: h, MaxValue: 1 << 20, IOTimeout: time.Second})
	addr := s.Addr().String()
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		at := 0
		if len(in) > 0 {
			at = int(split) % len(in)
		}
		hello := appendKeyOp(nil, opHello, []byte{protocolVersion})
		for _, part := range [][]byte{append(hello, in[:at]...), in[at:]} {
			if _, err := nc.Write(part); err != nil {
				return // the server refused and closed already
			}
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, nc); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server kept the connection open after its input ended")
			}
		}
	})
}
