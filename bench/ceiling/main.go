package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// store is the whole data model: every value ever SET, by key.
type store struct {
	mu sync.RWMutex
	m  map[string][]byte
}

// exec runs one command and appends its RESP reply to out.
func (s *store) exec(args [][]byte, out []byte) []byte {
	switch {
	case len(args) == 3 && is(args[0], "SET"):
		v := append([]byte(nil), args[2]...)
		s.mu.Lock()
		s.m[string(args[1])] = v
		s.mu.Unlock()
		return append(out, "+OK\r\n"...)
	case len(args) == 2 && is(args[0], "GET"):
		s.mu.RLock()
		v, ok := s.m[string(args[1])]
		s.mu.RUnlock()
		if !ok {
			return append(out, "$-1\r\n"...)
		}
		out = append(out, '$')
		out = strconv.AppendInt(out, int64(len(v)), 10)
		out = append(out, "\r\n"...)
		out = append(out, v...)
		return append(out, "\r\n"...)
	case len(args) > 0 && is(args[0], "CONFIG"):
		// redis-benchmark asks for CONFIG GET save and appendonly.
		return append(out, "*0\r\n"...)
	default:
		return append(out, "-ERR ceiling answers SET and GET only\r\n"...)
	}
}

// is reports whether a command name is name, in any case.
func is(arg []byte, name string) bool { return strings.EqualFold(string(arg), name) }

var errProtocol = errors.New("protocol error")

// parse reads one RESP array of bulk strings from in. It returns the
// arguments (aliasing in) and the bytes consumed, or n == 0 when in does
// not yet hold a whole command.
func parse(in []byte, args [][]byte) ([][]byte, int, error) {
	count, p, err := header(in, '*')
	if p == 0 || err != nil {
		return args, 0, err
	}
	args = args[:0]
	for range count {
		size, q, err := header(in[p:], '$')
		if q == 0 || err != nil {
			return args, 0, err
		}
		p += q
		if len(in) < p+size+2 {
			return args, 0, nil
		}
		args = append(args, in[p:p+size])
		p += size + 2
	}
	return args, p, nil
}

// header parses "<kind><decimal>\r\n" at the start of in.
func header(in []byte, kind byte) (int, int, error) {
	for i := 1; i < len(in); i++ {
		if in[i] == '\n' {
			if in[0] != kind || i < 3 || in[i-1] != '\r' {
				return 0, 0, errProtocol
			}
			n, err := strconv.Atoi(string(in[1 : i-1]))
			if err != nil || n < 0 || n > 512<<20 {
				return 0, 0, errProtocol
			}
			return n, i + 1, nil
		}
	}
	return 0, 0, nil
}

// serveConn is the goroutine-per-connection loop: read what has arrived,
// answer every whole command in it, write the answers in one call.
func (s *store) serveConn(c net.Conn) {
	defer c.Close()
	var in, out []byte
	var args [][]byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		in = append(in, buf[:n]...)
		used := 0
		for {
			a, u, err := parse(in[used:], args)
			if err != nil {
				return
			}
			if u == 0 {
				break
			}
			args = a
			out = s.exec(args, out)
			used += u
		}
		in = append(in[:0], in[used:]...)
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

func main() {
	socket := flag.String("socket", "/tmp/ceiling.sock", "Unix socket to listen on")
	loop := flag.String("loop", "goroutines", "goroutines or epoll")
	flag.Parse()
	s := &store{m: make(map[string][]byte)}
	_ = os.Remove(*socket)
	var err error
	switch *loop {
	case "goroutines":
		err = s.serveGoroutines(*socket)
	case "epoll":
		go func() {
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
			<-stop
			_ = os.Remove(*socket)
			os.Exit(0)
		}()
		err = s.serveEpoll(*socket)
	default:
		err = fmt.Errorf("-loop %q: want goroutines or epoll", *loop)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

// serveGoroutines listens on socket until SIGINT or SIGTERM.
func (s *store) serveGoroutines(socket string) error {
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
		<-stop
		l.Close()
	}()
	return s.accept(l)
}

// accept serves every connection of l, each on its own goroutine, until l
// is closed.
func (s *store) accept(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.serveConn(c)
	}
}
