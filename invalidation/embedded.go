package invalidation

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// startEmbedded starts the in-process NATS server with JetStream that
// Embedded asks for, and waits until it accepts connections.
func startEmbedded(o *Options, log *zap.Logger) (*natsserver.Server, error) {
	hp, err := parseListen(o.EmbeddedListen)
	if err != nil {
		return nil, fmt.Errorf("invalidation: NATS listen address %q: %w", o.EmbeddedListen, err)
	}
	addr := net.JoinHostPort(hp.host, strconv.Itoa(max(hp.port, 0)))
	if hp.port > 0 {
		// nats-server reports a busy port only in its log; check first so
		// that it is one clear start-up error.
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("invalidation: embedded NATS server: %w", err)
		}
		_ = ln.Close()
	}
	sopts := &natsserver.Options{
		ServerName: "tiercache-" + serverName(o.NodeID),
		Host:       hp.host,
		Port:       hp.port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true, // the daemon handles signals
	}
	if o.User != "" && o.Password != "" {
		sopts.Username, sopts.Password = o.User, o.Password
	}
	s, err := natsserver.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("invalidation: embedded NATS server: %w", err)
	}
	sl := &serverLogger{log: log.Named("nats-server").Sugar()}
	s.SetLoggerV2(sl, false, false, false)
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("invalidation: embedded NATS server did not start on %s: %s", addr, sl.lastError())
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("invalidation: embedded NATS server: JetStream did not start (store %s): %s", o.StoreDir, sl.lastError())
	}
	log.Info("embedded NATS server listening", zap.String("url", s.ClientURL()), zap.String("store_dir", o.StoreDir))
	return s, nil
}

// serverName makes a node id usable as a NATS server name (no spaces).
func serverName(id string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, id)
}

// serverLogger sends nats-server's log to zap: notices at debug level (the
// daemon logs what matters itself), warnings and errors as they are. It
// keeps the last error so a failed start can say why.
type serverLogger struct {
	log  *zap.SugaredLogger
	mu   sync.Mutex // guards last
	last string
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debugf(format, v...) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warnf(format, v...) }
func (l *serverLogger) Debugf(string, ...any)           {}
func (l *serverLogger) Tracef(string, ...any)           {}

func (l *serverLogger) Errorf(format string, v ...any) {
	l.record(format, v...)
	l.log.Errorf(format, v...)
}

func (l *serverLogger) Fatalf(format string, v ...any) {
	l.record(format, v...)
	l.log.Errorf(format, v...)
}

func (l *serverLogger) record(format string, v ...any) {
	l.mu.Lock()
	l.last = fmt.Sprintf(format, v...)
	l.mu.Unlock()
}

func (l *serverLogger) lastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == "" {
		return "no error logged"
	}
	return l.last
}
