package invalidation

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/internal/testutil"
	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestOptionsDefaults(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if o.URLs != Embedded || o.EmbeddedListen != "127.0.0.1:4222" || o.Bucket != "tiercache-models" ||
		o.MembersBucket != "tiercache-members" || o.Replicas != 1 || o.HeartbeatInterval != time.Second ||
		o.MemberTTL != 5*time.Second || o.SyncTimeout != 5*time.Second || o.Logger == nil {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{
		URLs:              "nats://alice:s3cr3t-pw@host:99999,,ftp://h",
		Bucket:            "a.b",
		MembersBucket:     "a.b",
		Replicas:          7,
		TLSCert:           "cert.pem",
		HeartbeatInterval: time.Second,
		MemberTTL:         time.Second,
		SyncTimeout:       -1,
		ReconnectWait:     time.Second,
	}
	err := o.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"Cache is required", "node id is required", "NATS URL nats://host:99999: port", "URL #2 is empty",
		`scheme "ftp"`, `models bucket "a.b"`, "must differ", "replicas 7", "TLS certificate needs its key",
		"sync timeout -1ns", "member TTL 1s must be at least twice",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "alice") {
		t.Errorf("error reveals credentials: %q", msg)
	}
	// A URL that does not parse is named by position only: the parse error
	// would quote it, password and all.
	o = Options{URLs: "nats://alice:s3cr3t-pw@[::1", NodeID: "n", Cache: nil}
	o.EnsureDefaults()
	if err := o.Validate(); err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "URL #1 is malformed") {
		t.Fatalf("malformed URL: %v", err)
	}
	o = Options{URLs: Embedded, NodeID: "n"}
	o.EnsureDefaults()
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "store directory is required") {
		t.Fatalf("embedded without a store: %v", err)
	}
	// "off" is not a host name: a daemon without NATS starts no Cluster.
	o = Options{URLs: "off", NodeID: "n"}
	o.EnsureDefaults()
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), `NATS URL "off"`) {
		t.Fatalf("URLs off: %v", err)
	}
	for addr, want := range map[string]string{
		"10.0.0.7:7000":  "",
		"[fd00::7]:7000": "",
		"cache-a:7000":   "",
		"10.0.0.7":       "missing port",
		":7000":          "no host",
		"0.0.0.0:7000":   "not an address other daemons can dial",
		"[::]:7000":      "not an address other daemons can dial",
		"10.0.0.7:0":     `port "0"`,
		"10.0.0.7:70000": `port "70000"`,
		"10.0.0.7:http":  `port "http"`,
	} {
		o := Options{URLs: "nats://h:4222", NodeID: "n", Cache: (*tier.Registry)(nil), PeerAddr: addr}
		o.EnsureDefaults()
		err := o.Validate()
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "peer address")) {
			t.Errorf("PeerAddr %q: %v, want %q", addr, err, want)
		}
	}
	if got := RedactURLs("nats://alice:pw@h1:4222, tls://tok@h2:4443,h3:4222"); got != "nats://h1:4222,tls://h2:4443,nats://h3:4222" {
		t.Fatalf("RedactURLs = %q", got)
	}
}

// TestNoCredentialsInLogs runs daemons with credentials given every way,
// and a wrong password, and checks that no log line and no INFO field
// reveals any of them.
func TestNoCredentialsInLogs(t *testing.T) {
	const user, pass, wrong = "alice-user", "s3cr3t-pw", "wr0ng-pw"
	srv := natstest.RunServer(t, &natsserver.Options{Username: user, Password: pass})
	core, logs := observer.New(zap.DebugLevel)
	logger := zap.New(core)
	port := srv.Addr().String()[strings.LastIndexByte(srv.Addr().String(), ':')+1:]
	ctx := context.Background()

	inURL := testOptions(t, fmt.Sprintf("nats://%s:%s@127.0.0.1:%s", user, pass, port), "models")
	inURL.Logger = logger
	a := newDaemon(t, "a", inURL)
	a.waitSynced()
	a.rollout("clip", "v1")

	asOptions := testOptions(t, srv.ClientURL(), "models")
	asOptions.User, asOptions.Password = user, pass
	asOptions.Logger = logger
	b := newDaemon(t, "b", asOptions)
	b.waitSynced()
	b.waitModel("clip", "v1")

	bad := testOptions(t, fmt.Sprintf("nats://%s:%s@127.0.0.1:%s", user, wrong, port), "models")
	bad.Logger = logger
	bad.SyncTimeout = 200 * time.Millisecond
	c := newDaemon(t, "c", bad)
	c.waitSynced()
	if _, err := c.c.Rollout(ctx, tiertest.Rollout(t, "clip", "v2")); err == nil || strings.Contains(err.Error(), wrong) {
		t.Fatalf("Rollout with a wrong password: %v", err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if logs.FilterMessageSnippet("reconnect attempt failed").Len() == 0 {
			return fmt.Errorf("no failed attempt logged yet")
		}
		return nil
	})

	emb := testOptions(t, Embedded, "models")
	emb.EmbeddedListen = "127.0.0.1:0"
	emb.StoreDir = t.TempDir()
	emb.User, emb.Password = user, pass
	emb.Logger = logger
	e := newDaemon(t, "e", emb)
	e.waitSynced()
	e.rollout("clip", "v1")
	joined := testOptions(t, strings.Replace(e.c.URL(), "nats://", fmt.Sprintf("nats://%s:%s@", user, pass), 1), "models")
	joined.Logger = logger
	f := newDaemon(t, "f", joined)
	f.waitSynced()
	f.waitModel("clip", "v1")

	for _, d := range []*daemon{a, b, c, e, f} {
		for _, kv := range d.c.Status().Fields() {
			if strings.Contains(kv[1], pass) || strings.Contains(kv[1], wrong) || strings.Contains(kv[1], user) {
				t.Errorf("%s: INFO %s:%s reveals credentials", d.name, kv[0], kv[1])
			}
		}
	}
	for _, d := range []*daemon{a, b, c, e, f} {
		d.stop()
	}
	if logs.Len() < 10 {
		t.Fatalf("only %d log entries", logs.Len())
	}
	for _, entry := range logs.All() {
		line := entry.Message + " " + fmt.Sprint(entry.ContextMap())
		for _, secret := range []string{pass, wrong, user} {
			if strings.Contains(line, secret) {
				t.Errorf("log entry reveals %q: %s", secret, line)
			}
		}
	}
}

// TestStartErrors checks the start-up errors that name a file.
func TestStartErrors(t *testing.T) {
	h := openCache(t, t.TempDir())
	defer h.Close()
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{URLs: "nats://127.0.0.1:4222", Creds: "/nonexistent/user.creds"}, "NATS creds file"},
		{Options{URLs: "nats://127.0.0.1:4222", TLSCA: "/nonexistent/ca.pem"}, "NATS TLS CA"},
		{Options{URLs: "nats://127.0.0.1:4222", TLSCert: "/nonexistent/c.pem", TLSKey: "/nonexistent/k.pem"}, "NATS TLS certificate"},
		{Options{URLs: Embedded, EmbeddedListen: "127.0.0.1:99999", StoreDir: t.TempDir()}, "listen address"},
	} {
		tc.opts.NodeID, tc.opts.Cache = "n", h
		c, err := Start(tc.opts)
		if err == nil {
			c.Close()
			t.Errorf("Start(%+v) succeeded", tc.opts)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start: %v; want it to mention %q", err, tc.want)
		}
	}
}
