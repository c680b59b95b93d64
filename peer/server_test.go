package peer

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/lease"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

// frames speaks the protocol by hand, for tests of what a server does
// with what no Client sends.
type frames struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialFrames(t testing.TB, addr string) *frames {
	nc := rawConn(t, addr)
	return &frames{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (f *frames) send(kind byte, parts ...[]byte) {
	f.t.Helper()
	bw := bufio.NewWriter(f.nc)
	if err := writeFrame(bw, kind, parts...); err != nil {
		f.t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *frames) sendRaw(b []byte) {
	f.t.Helper()
	if _, err := f.nc.Write(b); err != nil {
		f.t.Fatal(err)
	}
}

func (f *frames) reply() (byte, []byte) {
	f.t.Helper()
	kind, n, err := readHeader(f.br)
	if err != nil {
		f.t.Fatalf("reading a reply: %v", err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(f.br, body); err != nil {
		f.t.Fatal(err)
	}
	return kind, body
}

// wantClosed checks that the server closed the connection after what it
// sent.
func (f *frames) wantClosed() {
	f.t.Helper()
	if b := readAll(f.t, &bufConn{Conn: f.nc, br: f.br}); len(b) != 0 {
		f.t.Fatalf("%d more bytes before the connection closed", len(b))
	}
}

// bufConn reads through the buffered reader of a frames.
type bufConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.br.Read(b) }

func (f *frames) hello(password string) {
	f.t.Helper()
	f.send(opHello, []byte{protocolVersion}, []byte(password))
	if kind, body := f.reply(); kind != stOK {
		f.t.Fatalf("hello: status %d %q", kind, body)
	}
}

// A connection that does not authenticate first gets one error and is
// closed; one that does is served.
func TestAuth(t *testing.T) {
	h := openHybrid(t)
	s := startServer(t, ServerOptions{Store: h, NodeID: "a", Password: "s3cret"})
	addr := s.Addr().String()
	mustSet(t, h, []byte("k"), []byte("v"))

	for _, tc := range []struct {
		name  string
		first func(*frames)
		want  string
	}{
		{"GetFirst", func(f *frames) { f.send(opGet, []byte("k")) }, "authentication required"},
		{"WrongPassword", func(f *frames) { f.send(opHello, []byte{protocolVersion}, []byte("guess")) }, "invalid password"},
		{"NoPassword", func(f *frames) { f.send(opHello, []byte{protocolVersion}) }, "invalid password"},
		{"OtherVersion", func(f *frames) { f.send(opHello, []byte{9}, []byte("s3cret")) }, "protocol version"},
		{"NotTheProtocol", func(f *frames) { f.sendRaw([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")) }, "authentication required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := dialFrames(t, addr)
			tc.first(f)
			kind, body := f.reply()
			if kind != stError || !strings.Contains(string(body), tc.want) {
				t.Fatalf("reply %d %q, want an error saying %q", kind, body, tc.want)
			}
			f.wantClosed()
		})
	}
	if st := s.Stats(); st.AuthFailures != 5 || st.Gets != 0 {
		t.Fatalf("stats %+v: want 5 refused connections, no GET", st)
	}

	f := dialFrames(t, addr)
	f.send(opHello, []byte{protocolVersion}, []byte("s3cret"))
	if kind, body := f.reply(); kind != stOK || string(body) != "\x01a" {
		t.Fatalf("hello: %d %q, want OK with version 1 and node id a", kind, body)
	}
	f.send(opGet, []byte("k"))
	if kind, body := f.reply(); kind != stOK || string(tier.Record(body).Value()) != "v" {
		t.Fatalf("GET: %d %q", kind, body)
	}
	f.send(opHello, []byte{protocolVersion}, []byte("s3cret"))
	if kind, _ := f.reply(); kind != stError {
		t.Fatalf("a second hello answered %d, want an error", kind)
	}
	f.send(opPing)
	if kind, _ := f.reply(); kind != stOK {
		t.Fatalf("PING after an error reply: %d", kind)
	}
}

// A connection cannot make the server buffer more than the bounds: before
// authenticating a hello of 4 KiB, after it one request of MaxValue and
// 256 KiB. A frame over the bound is refused before its body is sent.
func TestRequestBound(t *testing.T) {
	h := openHybrid(t)
	s := startServer(t, ServerOptions{Store: h, MaxValue: 1 << 20})
	addr := s.Addr().String()
	header := func(kind byte, n int) []byte {
		b := make([]byte, frameHeader)
		putHeader(b, kind, n)
		return b
	}

	f := dialFrames(t, addr)
	f.sendRaw(header(opHello, 1<<20))
	if kind, body := f.reply(); kind != stError || !strings.Contains(string(body), "authentication required") {
		t.Fatalf("a 1 MiB hello: %d %q", kind, body)
	}
	f.wantClosed()

	f = dialFrames(t, addr)
	f.hello("")
	f.sendRaw(header(opSet, 1<<30))
	if kind, body := f.reply(); kind != stError || !strings.Contains(string(body), "exceeds") {
		t.Fatalf("a 1 GiB SET: %d %q", kind, body)
	}
	f.wantClosed()

	f = dialFrames(t, addr)
	f.hello("")
	f.sendRaw([]byte{0, 0, 0, 0, opPing})
	f.wantClosed()

	f = dialFrames(t, addr)
	f.hello("")
	f.sendRaw(appendSet(nil, []byte("big"), value(1<<20+1, 0), 0, ""))
	if kind, body := f.reply(); kind != stError || !strings.Contains(string(body), "exceeds") {
		t.Fatalf("a value over MaxValue: %d %q", kind, body)
	}
	f.sendRaw(appendSet(nil, []byte("big"), value(1<<20, 0), 0, ""))
	if kind, body := f.reply(); kind != stOK {
		t.Fatalf("a value of MaxValue: %d %q", kind, body)
	}
	if r, err := h.Get([]byte("big")); err != nil || len(r.Value()) != 1<<20 {
		t.Fatalf("the value of MaxValue was not stored: %v", err)
	}
}

// The server's limits reject options that could not work.
func TestServerOptionsValidate(t *testing.T) {
	h := openHybrid(t)
	_, err := NewServer(ServerOptions{MaxValue: 8 << 20, MaxInflight: 1 << 20, MaxConns: -1})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"Listen is required", "Store is required", "MaxInflight", "MaxConns"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: does not say %q", err, want)
		}
	}
	o := ServerOptions{Listen: "127.0.0.1:0", Store: h}
	o.EnsureDefaults()
	if o.Buffers != h.Buffers() {
		t.Fatalf("the Hybrid is not the default buffer pool")
	}
}

// A forwarded SET is stored only under the owner's version of its model. A
// malformed scope is an error reply: a correct peer never sends one.
func TestServerSet(t *testing.T) {
	h := openHybrid(t)
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "m", "v1")}, 1); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, ServerOptions{Store: h})
	f := dialFrames(t, s.Addr().String())
	f.hello("")
	for _, tc := range []struct {
		key, tag string
		want     byte
	}{
		{"plain", "", stOK},
		{"{m}k", "v1", stOK},
		{"{m}old", "v0", stStale},
		{"{m}unknown", "", stStale},
		{"{m@v1}k", "v1", stOK},
		{"{m@v0}k", "v0", stStale},
		{"{m@v1}lying", "v0", stStale},
		{"{new}k", "", stOK},
		{"{new}ahead", "v9", stStale},
		{"{new@v9}k", "v9", stOK},
		{"{@v1}bad", "v1", stError},
	} {
		f.sendRaw(appendSet(nil, []byte(tc.key), []byte("value of "+tc.key), 0, tc.tag))
		kind, body := f.reply()
		if kind != tc.want {
			t.Errorf("SET %q tagged %q: status %d %q, want %d", tc.key, tc.tag, kind, body, tc.want)
		}
		r, err := h.Get([]byte(tc.key))
		switch {
		case tc.want == stOK && err != nil:
			t.Errorf("SET %q tagged %q: not stored: %v", tc.key, tc.tag, err)
		case tc.want == stOK:
			if hdr, _ := r.Header(); hdr.Tag != tc.tag {
				t.Errorf("SET %q: stored under %q, want %q", tc.key, hdr.Tag, tc.tag)
			}
		case err == nil:
			t.Errorf("SET %q tagged %q: stored", tc.key, tc.tag)
		}
	}
	if st := s.Stats(); st.Sets != 5 || st.Stale != 5 || st.Errors != 1 {
		t.Fatalf("stats %+v: want 5 sets, 5 stale, 1 error", st)
	}
}

// taggedStore is a Hybrid with a SetTagged that records its calls.
type taggedStore struct {
	*tier.Hybrid
	calls []string
}

func (s *taggedStore) SetTagged(key, value []byte, expireAt int64, tag string) error {
	s.calls = append(s.calls, string(key)+"@"+tag)
	return &tier.StaleError{Model: "m", Current: "v2"}
}

// The Store decides forwarded SETs alone: its SetTagged's StaleError is the
// reply.
func TestServerTaggedSetter(t *testing.T) {
	st := &taggedStore{Hybrid: openHybrid(t)}
	s := startServer(t, ServerOptions{Store: st})
	f := dialFrames(t, s.Addr().String())
	f.hello("")
	f.sendRaw(appendSet(nil, []byte("{m}k"), []byte("v"), 0, "v1"))
	if kind, body := f.reply(); kind != stStale || string(body) != "STALE m is at v2" {
		t.Fatalf("status %d %q, want the StaleError", kind, body)
	}
	if len(st.calls) != 1 || st.calls[0] != "{m}k@v1" {
		t.Fatalf("SetTagged calls %q", st.calls)
	}
}

// Forwarded deletes and expiries apply to the owner's copy.
func TestServerDeleteExpire(t *testing.T) {
	h := openHybrid(t)
	s := startServer(t, ServerOptions{Store: h})
	f := dialFrames(t, s.Addr().String())
	f.hello("")
	mustSet(t, h, []byte("a"), []byte("1"))
	mustSet(t, h, []byte("b"), []byte("2"))
	at := time.Now().Add(time.Hour).UnixMilli()

	// Pipelined: three requests in one write, three replies in order.
	var b []byte
	b = appendKeyOp(b, opDelete, []byte("a"))
	b = appendKeyOp(b, opDelete, []byte("a"))
	b = appendExpire(b, []byte("b"), at, byte(tier.ExpireAlways))
	f.sendRaw(b)
	for i, want := range []string{"\x01", "\x00", "\x01"} {
		if kind, body := f.reply(); kind != stOK || string(body) != want {
			t.Fatalf("reply %d: %d %q, want %q", i, kind, body, want)
		}
	}
	if _, err := h.Get([]byte("a")); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("a not deleted: %v", err)
	}
	if r, err := h.Get([]byte("b")); err != nil || r.ExpireAt() != at {
		t.Fatalf("b's expiry not set: %v", err)
	}
	f.sendRaw(appendExpire(nil, []byte("b"), at+1000, byte(tier.ExpireLT)))
	if kind, body := f.reply(); kind != stOK || string(body) != "\x00" {
		t.Fatalf("EXPIRE LT later: %d %q", kind, body)
	}
	f.send(opExpire, []byte{1, 2})
	if kind, _ := f.reply(); kind != stError {
		t.Fatalf("a short EXPIRE answered %d", kind)
	}
	f.send(99)
	if kind, _ := f.reply(); kind != stError {
		t.Fatalf("an unknown request answered %d", kind)
	}
	if st := s.Stats(); st.Deletes != 2 || st.Expires != 2 || st.Errors != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Servable is the fencing rule: a record is served only under the
// reader's version of its model.
func TestServable(t *testing.T) {
	h := openHybrid(t)
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "m", "v2")}, 1); err != nil {
		t.Fatal(err)
	}
	rec := func(tag string) tier.Record { return tier.NewRecord(tier.Header{Tag: tag}, []byte("x")) }
	for _, tc := range []struct {
		key, tag string
		want     bool
	}{
		{"plain", "", true},
		{"plain", "v2", false},
		{"{m}k", "v2", true},
		{"{m}k", "v1", false},
		{"{m}k", "", false},
		{"{m@v2}k", "v2", true},
		{"{m@v1}k", "v1", false},
		{"{m@v2}k", "v1", false},
		{"{other}k", "", true},
		{"{other}k", "v1", false},
		{"{other@v1}k", "v1", true},
		{"{other@v1}k", "", false},
		{"{@v1}k", "v1", false},
	} {
		if got := Servable([]byte(tc.key), rec(tc.tag), h); got != tc.want {
			t.Errorf("Servable(%q, tagged %q) = %v, want %v", tc.key, tc.tag, got, tc.want)
		}
	}
	if Servable([]byte("plain"), tier.Record("short"), h) {
		t.Error("a malformed record is servable")
	}
}

// A forwarded SET that is stored completes the owner's lease of its key
// and wakes its waiters with the value; a stale one does not.
func TestServerSetCompletesLease(t *testing.T) {
	h := openHybrid(t)
	if err := h.ApplyModels([]tier.ModelChange{tiertest.Rollout(t, "m", "v2")}, 1); err != nil {
		t.Fatal(err)
	}
	leases := lease.New(lease.Options{})
	defer leases.Close()
	s := startServer(t, ServerOptions{Store: h, Leases: leases})
	f := dialFrames(t, s.Addr().String())
	f.hello("")
	key := []byte("{m}k")
	tok, _, err := leases.Acquire(key, time.Hour, nil)
	if tok == "" || err != nil {
		t.Fatalf("no lease: %v", err)
	}
	notify := make(chan struct{}, 1)
	w := lease.NewWaiter(notify, time.Hour)
	if _, q, err := leases.Acquire(key, time.Hour, w); !q || err != nil {
		t.Fatalf("not queued: %v", err)
	}
	f.sendRaw(appendSet(nil, key, []byte("old"), 0, "v1"))
	if kind, _ := f.reply(); kind != stStale {
		t.Fatalf("stale SET: status %d", kind)
	}
	if st := leases.Stats(); st.Active != 1 || st.Waiting != 1 {
		t.Fatalf("a stale SET completed the lease: %+v", st)
	}
	f.sendRaw(appendSet(nil, key, []byte("computed"), 0, "v2"))
	if kind, body := f.reply(); kind != stOK {
		t.Fatalf("SET: status %d %q", kind, body)
	}
	<-notify
	leases.Leave(key, w, false)
	if st, v, _ := w.Outcome(); st != lease.Hit || string(v) != "computed" {
		t.Errorf("the waiter: %v %q, want the forwarded value", st, v)
	}
	if leases.Release(key, tok) {
		t.Error("the lease outlived the forwarded SET")
	}
}
