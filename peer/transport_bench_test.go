package peer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tidwall/redcon"
)

// BenchmarkTransport measures the choice of protocol between peers: the
// package's framing (Server and Client) against RESP served by
// tidwall/redcon and read by go-redis, both answering GETs from the same
// Hybrid's L1 over loopback TCP, one client, in the same run. The figures
// are in the package documentation.
//
//	go test ./peer -run '^$' -bench BenchmarkTransport -benchtime 3000x -count 5
func BenchmarkTransport(b *testing.B) {
	p := newPair(b, nil, func(o *ClientOptions) { o.Timeout = 10 * time.Second })

	rs := redcon.NewServer("127.0.0.1:0", func(conn redcon.Conn, cmd redcon.Command) {
		if !strings.EqualFold(string(cmd.Args[0]), "get") || len(cmd.Args) != 2 {
			conn.WriteError("ERR unknown command")
			return
		}
		r, err := p.a.Get(cmd.Args[1])
		if err != nil {
			conn.WriteNull()
			return
		}
		conn.WriteBulk(r)
	}, nil, nil)
	started := make(chan error, 1)
	served := make(chan error, 1)
	go func() { served <- rs.ListenServeAndSignal(started) }()
	if err := <-started; err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		rs.Close()
		<-served
	})
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr().String(), PoolSize: 1, ReadTimeout: 10 * time.Second})
	b.Cleanup(func() { rc.Close() })
	ctx := context.Background()

	for _, size := range []int{118_000, 4 << 20} {
		k := keyOf(b, p.ring, "a", fmt.Sprintf("transport%d:", size))
		mustSet(b, p.a, k, value(size, 2))
		b.Run(fmt.Sprintf("framed/%s", sizeName(size)), func(b *testing.B) {
			run(b, size, func() bool {
				r, ok := p.b.Get(k)
				return ok && len(r.Value()) == size
			})
		})
		b.Run(fmt.Sprintf("resp/%s", sizeName(size)), func(b *testing.B) {
			run(b, size, func() bool {
				v, err := rc.Get(ctx, string(k)).Bytes()
				return err == nil && len(v) >= size
			})
		})
	}
}
