//go:build linux

package main

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// econn is one connection of the epoll loop.
type econn struct {
	fd      int
	in, out []byte
	sent    int  // bytes of out already written
	waiting bool // registered for EPOLLOUT
	args    [][]byte
}

// serveEpoll runs Redis' model: one thread, level-triggered epoll, one read
// per ready connection, every whole command answered, one write. A reply the
// socket does not take at once waits for EPOLLOUT; the connection is not
// read again until it is sent.
func (s *store) serveEpoll(socket string) error {
	runtime.LockOSThread()
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: socket}); err != nil {
		return err
	}
	if err := unix.Listen(lfd, 511); err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return err
	}
	conns := make(map[int]*econn)
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	drop := func(c *econn) {
		_ = unix.Close(c.fd)
		delete(conns, c.fd)
	}
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				nfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				if err != nil {
					continue
				}
				conns[nfd] = &econn{fd: nfd}
				_ = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, nfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(nfd)})
				continue
			}
			c := conns[fd]
			if c == nil {
				continue
			}
			if c.waiting { // EPOLLOUT: finish the pending reply
				if !s.flush(ep, c) {
					drop(c)
				}
				continue
			}
			k, err := unix.Read(fd, buf)
			if err == unix.EAGAIN {
				continue
			}
			if k <= 0 {
				drop(c)
				continue
			}
			c.in = append(c.in, buf[:k]...)
			used := 0
			for {
				args, u, err := parse(c.in[used:], c.args)
				c.args = args
				if err != nil {
					drop(c)
					break
				}
				if u == 0 {
					break
				}
				c.out = s.exec(args, c.out)
				used += u
			}
			if conns[fd] == nil {
				continue
			}
			c.in = append(c.in[:0], c.in[used:]...)
			if len(c.out) > 0 && !s.flush(ep, c) {
				drop(c)
			}
		}
	}
}

// flush writes c's pending reply; what the socket does not take waits for
// EPOLLOUT. It reports false when the connection is gone.
func (s *store) flush(ep int, c *econn) bool {
	for c.sent < len(c.out) {
		w, err := unix.Write(c.fd, c.out[c.sent:])
		if err == unix.EAGAIN {
			if !c.waiting {
				c.waiting = true
				return unix.EpollCtl(ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(c.fd)}) == nil
			}
			return true
		}
		if err != nil {
			return false
		}
		c.sent += w
	}
	c.out, c.sent = c.out[:0], 0
	if c.waiting {
		c.waiting = false
		return unix.EpollCtl(ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)}) == nil
	}
	return true
}
