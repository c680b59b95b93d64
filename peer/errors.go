package peer

import "errors"

// Errors of the package, grouped by when they happen. Each is checked with
// errors.Is; most are wrapped with detail. Client.Get never returns an
// error: a request that failed is a miss, counted in Stats.
var (
	// ErrInvalidOptions is wrapped by the error of NewServer or NewClient
	// (and of the options' Validate) that lists every problem found.
	ErrInvalidOptions = errors.New("peer: invalid options")

	// ErrClosed is returned by operations on a closed Server or Client.
	ErrClosed = errors.New("peer: closed")
	// ErrAuth is wrapped by the error of a connection the server refused:
	// a wrong password, or a request before authenticating.
	ErrAuth = errors.New("peer: authentication refused")
	// ErrProtocol is wrapped by errors about a malformed or oversized
	// frame; the connection it came on is closed.
	ErrProtocol = errors.New("peer: protocol error")
	// ErrRemote wraps the message of an error reply.
	ErrRemote = errors.New("peer: error reply")
	// ErrWrongPeer is wrapped by the error of a connection whose server
	// answered with another node id than the member dialled (a daemon
	// that took over the address of another).
	ErrWrongPeer = errors.New("peer: wrong peer")
)
