package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Socket errors, checked with errors.Is.
var (
	// errSocketInUse: a live daemon answers on the socket path.
	errSocketInUse = errors.New("in use by a live daemon")
	// errNotSocket: something other than a socket is at the socket path;
	// it is never removed.
	errNotSocket = errors.New("exists and is not a socket")
)

// unixSocket is the daemon's listening Unix socket.
type unixSocket struct {
	path string
	ln   *net.UnixListener
	// file is the socket file as created: close removes path only while it
	// still names this file, never a successor's socket.
	file fs.FileInfo
	// replacedStale is set when a dead daemon's socket file was removed.
	replacedStale bool
}

// inspectSocket checks what is at path before a socket is created there.
// It returns (nil, nil) when nothing is; the file's FileInfo when it is a
// socket nobody listens on (a dead daemon's, to be replaced); or an error
// wrapping errSocketInUse when a daemon answers, errNotSocket when the path
// is something else.
func inspectSocket(path string) (stale fs.FileInfo, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, pathErr(err))
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("socket %s %w; not replacing it", path, errNotSocket)
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	switch {
	case err == nil:
		c.Close()
		return nil, fmt.Errorf("socket %s %w", path, errSocketInUse)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fi, nil // nobody listens: a dead daemon's
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil // removed meanwhile
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, os.ErrDeadlineExceeded):
		// The listen queue is full: alive, but busy.
		return nil, fmt.Errorf("socket %s %w", path, errSocketInUse)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = errno
	}
	return nil, fmt.Errorf("socket %s exists and cannot be probed: %w", path, err)
}

// removeStale removes the stale socket file fi at path, unless path names
// another file by now (a daemon that started meanwhile).
func removeStale(path string, fi fs.FileInfo) error {
	now, err := os.Lstat(path)
	if err != nil || !os.SameFile(fi, now) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("socket %s is a dead daemon's and cannot be removed: %w", path, pathErr(err))
	}
	return nil
}

// listenUnix creates a listening socket at path with permissions mode.
//
// The socket is bound in a fresh directory next to path that only this
// user can enter (0700), given its mode there, and then hard-linked onto
// path: it is never reachable with the permissions the umask gave it. A
// link, unlike a rename, never replaces what is at path, so two daemons
// starting at once cannot take each other's socket: the loser finds the
// winner alive. A dead daemon's socket file at path is removed first.
func listenUnix(path string, mode fs.FileMode) (*unixSocket, error) {
	s := &unixSocket{path: path}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".tc-")
	if err != nil {
		return nil, fmt.Errorf("socket %s: cannot create a private directory next to it: %w", path, pathErr(err))
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	if len(tmp) > maxSocketPath {
		return nil, fmt.Errorf("socket %s: the directory is too deep: the temporary socket %s would exceed %d bytes", path, tmp, maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	// The socket file is removed by close, and only while it is ours.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*unixSocket, error) {
		ln.Close()
		return nil, err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("socket %s: %w", path, err))
	}
	mine, err := os.Lstat(tmp)
	if err != nil {
		return fail(fmt.Errorf("socket %s: %w", path, err))
	}
	for attempt := 0; ; attempt++ {
		err := os.Link(tmp, path)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return fail(fmt.Errorf("socket %s: %w", path, pathErr(err)))
		}
		if attempt == 3 {
			// Something keeps recreating path.
			return fail(fmt.Errorf("socket %s: %w", path, pathErr(err)))
		}
		stale, err := inspectSocket(path)
		if err != nil {
			return fail(err)
		}
		if stale != nil {
			if err := removeStale(path, stale); err != nil {
				return fail(err)
			}
			s.replacedStale = true
		}
	}
	s.ln, s.file = ln, mine
	return s, nil
}

// close closes the listener (if the server has not already) and removes
// the socket file if path still names it.
func (s *unixSocket) close() error {
	s.ln.Close()
	now, err := os.Lstat(s.path)
	if err != nil || !os.SameFile(s.file, now) {
		return nil
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing socket %s: %w", s.path, err)
	}
	return nil
}
