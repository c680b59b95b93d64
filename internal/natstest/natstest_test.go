package natstest

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/tiercache/tiercache/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestProxy connects through a proxy, cuts it and restores it.
func TestProxy(t *testing.T) {
	s := RunServer(t, nil)
	p := Proxy(t, s.ClientURL())
	var disconnected, reconnected = make(chan struct{}, 1), make(chan struct{}, 1)
	nc, err := nats.Connect(p.URL(),
		nats.ReconnectWait(20*time.Millisecond),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	<-disconnected
	testutil.CheckFor(t, time.Second, func() error {
		if nc.IsConnected() {
			return errors.New("connected through a cut proxy")
		}
		return nil
	})
	p.Restore()
	<-reconnected
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream is off")
	}
}
