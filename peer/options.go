package peer

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tiercache/tiercache/internal/bufpool"
)

// DefaultMaxValue is the default of both options' MaxValue: the daemon's
// --max-value default.
const DefaultMaxValue = 64 << 20

// ServerOptions configure a Server. The zero value of every field but
// Listen and Store selects its documented default; EnsureDefaults fills
// them in and Validate reports every problem at once. NewServer calls both
// on a copy.
type ServerOptions struct {
	// Listen is the TCP address to listen on ("127.0.0.1:0" picks a free
	// port; Server.Addr tells which). Required.
	Listen string
	// NodeID is this daemon's node id. The server tells it to every peer
	// that connects, and a client refuses a server whose id is not the
	// member it dialled (a daemon that took over another's address).
	// Default "": not told.
	NodeID string
	// Store is the cache the server answers from. Required.
	Store Store
	// Leases, when set, is this daemon's lease table (the RESP server's,
	// a *lease.Table): a forwarded SET that is stored completes the key's
	// lease there and wakes its waiters with the value, as a client's SET
	// does, so that a lease taken at the owner ends when the holder's SET
	// reaches it. Default nil: none.
	Leases Leases
	// Buffers is the pool the Store's records may live in: the server
	// pins a guard of it from a lookup until the record is written to the
	// peer. Default: the Store's Buffers(), when it has that method
	// (*tier.Hybrid does); nil otherwise.
	Buffers *bufpool.Pool

	// Password, when set, must be sent by every peer before anything
	// else; a connection that does not gets one error reply and is
	// closed. Default none.
	Password string
	// TLS, when set, makes the server speak TLS. For mutual TLS it must set
	// ClientAuth to tls.RequireAndVerifyClientCert and ClientCAs (see
	// MutualTLS). Default nil: plain TCP.
	TLS *tls.Config

	// MaxValue is the largest value a SET may carry; a request frame
	// larger than MaxValue plus 256 KiB (room for the key and the tag) is
	// refused unread and its connection closed. Default DefaultMaxValue.
	MaxValue int
	// MaxInflight bounds the bytes of request bodies larger than 64 KiB
	// held in memory at once, across connections; a connection whose
	// request does not fit waits. Bodies up to 64 KiB are read into a
	// buffer of the connection's own, so the server's memory for requests
	// is at most MaxInflight + MaxConns × 128 KiB (that buffer and the
	// connection's 32 KiB reader and writer). Only forwarded SETs
	// are that large, and nobody waits for them: default one largest
	// request (MaxValue and 256 KiB) plus 16 MiB, room for a hundred 118 KB
	// values besides it; at least one largest request.
	MaxInflight int64
	// MaxConns bounds the connections served at once; a connection past
	// it is closed at once. Default 1024.
	MaxConns int
	// AuthTimeout is how long a new connection has to complete the TLS
	// handshake and authenticate. Default 5s.
	AuthTimeout time.Duration
	// IOTimeout bounds how long a request's body may take to arrive once
	// its header has, and a reply to be written: a peer that stalls
	// mid-frame does not hold its budget for longer. Default 10s.
	IOTimeout time.Duration
	// Logger receives the server's log lines. Default: discard.
	Logger *zap.Logger
}

// EnsureDefaults fills in the default of every unset field and returns o.
func (o *ServerOptions) EnsureDefaults() *ServerOptions {
	if o.Buffers == nil {
		if h, ok := o.Store.(bufpool.Holder); ok {
			o.Buffers = h.Buffers()
		}
	}
	if o.MaxValue == 0 {
		o.MaxValue = DefaultMaxValue
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = int64(maxRequest(o.MaxValue)) + 16<<20
	}
	if o.MaxConns == 0 {
		o.MaxConns = 1024
	}
	if o.AuthTimeout == 0 {
		o.AuthTimeout = 5 * time.Second
	}
	if o.IOTimeout == 0 {
		o.IOTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Validate reports every problem with o at once, in one error wrapping
// ErrInvalidOptions. It expects EnsureDefaults to have run.
func (o *ServerOptions) Validate() error {
	var p problems
	if o.Listen == "" {
		p.add("Listen is required")
	}
	if o.Store == nil {
		p.add("Store is required")
	}
	if o.MaxValue < 0 {
		p.add("MaxValue %d is negative", o.MaxValue)
	}
	if o.MaxInflight < int64(maxRequest(o.MaxValue)) {
		p.add("MaxInflight %d is below one largest request (%d: MaxValue and 256 KiB)", o.MaxInflight, maxRequest(o.MaxValue))
	}
	if o.MaxConns < 1 {
		p.add("MaxConns %d is below 1", o.MaxConns)
	}
	if o.AuthTimeout < 0 {
		p.add("AuthTimeout %v is negative", o.AuthTimeout)
	}
	if o.IOTimeout < 0 {
		p.add("IOTimeout %v is negative", o.IOTimeout)
	}
	if len(o.Password) > maxHelloFrame-16 {
		p.add("Password is longer than %d bytes", maxHelloFrame-16)
	}
	if o.Logger == nil {
		p.add("Logger is nil")
	}
	return p.err()
}

// ClientOptions configure a Client. The zero value of every field but
// Ring and Self selects its documented default; EnsureDefaults fills them
// in and Validate reports every problem at once. NewClient calls both on
// a copy.
type ClientOptions struct {
	// Ring decides the owner of each key. Required. The client follows
	// its updates.
	Ring *Ring
	// Self is this daemon's member id: keys it owns are never asked for
	// nor forwarded. Required.
	Self string

	// Password is sent to every peer when connecting. Default none.
	Password string
	// TLS, when set, makes the client speak TLS: RootCAs to verify peers
	// and, for mutual TLS, Certificates (see MutualTLS). When ServerName
	// is empty, each peer is verified against the host of its address.
	// Default nil: plain TCP.
	TLS *tls.Config

	// Timeout is the longest a Get waits for an owner, connecting
	// included, before it is a miss. Default 100ms: a 64 MiB value takes
	// about 55 ms at 10 Gbit/s and a 118 KB one well under a millisecond,
	// while a miss costs the caller a computation (an encoder run, tens
	// of milliseconds to seconds); a dead owner costs one Timeout, after
	// which its breaker is open.
	Timeout time.Duration
	// ForwardTimeout is the longest a batch of forwarded writes waits for
	// its owner. Nobody waits for it but the peer's queue, so it is more
	// lenient than Timeout. Default 1s.
	ForwardTimeout time.Duration
	// MaxValue is the largest value accepted from a peer; a larger reply
	// is a protocol error. Default DefaultMaxValue.
	MaxValue int
	// MaxConns bounds the connections to one peer; a Get that finds them
	// all busy waits for one, within its Timeout. Default 16.
	MaxConns int
	// MaxLeaseConns bounds the connections to one peer that carry lease
	// requests (LEASE.GET taken at the owner), which wait up to their
	// WAIT, so each holds one; a lease request that finds them all busy
	// is taken locally. At most MaxConns of them are kept idle. Default
	// 256.
	MaxLeaseConns int
	// QueueBytes bounds the bytes of forwarded writes waiting to be sent,
	// across peers; a write that does not fit is dropped and counted. A
	// write larger than QueueBytes is queued only when nothing else is.
	// Default 64 MiB.
	QueueBytes int64
	// ProbeInterval is how long after a peer failed the client first
	// pings it; the interval doubles after each failed ping up to
	// MaxProbeInterval. Default 100ms.
	ProbeInterval time.Duration
	// MaxProbeInterval is the longest interval between pings of a failed
	// peer. Default 2s.
	MaxProbeInterval time.Duration
	// Now tells the time a record's expiry is compared with. Default
	// time.Now.
	Now func() time.Time
	// Logger receives the client's log lines: peers failing and coming
	// back. Default: discard.
	Logger *zap.Logger
}

// EnsureDefaults fills in the default of every unset field and returns o.
func (o *ClientOptions) EnsureDefaults() *ClientOptions {
	if o.Timeout == 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.ForwardTimeout == 0 {
		o.ForwardTimeout = time.Second
	}
	if o.MaxValue == 0 {
		o.MaxValue = DefaultMaxValue
	}
	if o.MaxConns == 0 {
		o.MaxConns = 16
	}
	if o.MaxLeaseConns == 0 {
		o.MaxLeaseConns = 256
	}
	if o.QueueBytes == 0 {
		o.QueueBytes = 64 << 20
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = 100 * time.Millisecond
	}
	if o.MaxProbeInterval == 0 {
		o.MaxProbeInterval = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Validate reports every problem with o at once, in one error wrapping
// ErrInvalidOptions. It expects EnsureDefaults to have run.
func (o *ClientOptions) Validate() error {
	var p problems
	if o.Ring == nil {
		p.add("Ring is required")
	}
	if o.Self == "" {
		p.add("Self is required")
	}
	if len(o.Password) > maxHelloFrame-16 {
		p.add("Password is longer than %d bytes", maxHelloFrame-16)
	}
	if o.Timeout < 0 {
		p.add("Timeout %v is negative", o.Timeout)
	}
	if o.ForwardTimeout < 0 {
		p.add("ForwardTimeout %v is negative", o.ForwardTimeout)
	}
	if o.MaxValue < 0 {
		p.add("MaxValue %d is negative", o.MaxValue)
	}
	if o.MaxConns < 1 {
		p.add("MaxConns %d is below 1", o.MaxConns)
	}
	if o.MaxLeaseConns < 1 {
		p.add("MaxLeaseConns %d is below 1", o.MaxLeaseConns)
	}
	if o.QueueBytes < 0 {
		p.add("QueueBytes %d is negative", o.QueueBytes)
	}
	if o.ProbeInterval < 0 {
		p.add("ProbeInterval %v is negative", o.ProbeInterval)
	}
	if o.MaxProbeInterval < o.ProbeInterval {
		p.add("MaxProbeInterval %v is below ProbeInterval %v", o.MaxProbeInterval, o.ProbeInterval)
	}
	if o.Now == nil {
		p.add("Now is nil")
	}
	if o.Logger == nil {
		p.add("Logger is nil")
	}
	return p.err()
}

// problems collects what Validate finds.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(p, "; "))
}
