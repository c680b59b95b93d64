package drill

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Drill 6: NATS access control, TLS and credentials.
//
// TestDrillNATSPermissions runs nats-server with testdata/nats-permissions.conf
// (the documented example): daemons connect as "daemon" and may only read
// the registry and announce themselves; "pipeline-clip" may roll out clip
// only; "pipeline-other" may roll out t5 only, and its rollout of clip — by
// tierctl and by nats.go's kv.Put — is refused with a permissions
// violation and changes neither the registry nor any daemon.
// TestDrillNATSTLS and TestDrillNATSCreds show a daemon following the
// registry over mutual TLS (--nats-tls-ca, --nats-tls-cert, --nats-tls-key,
// with a CA and certificates made by the test), and with a JWT credentials
// file (--nats-creds) against a server in operator mode.

const permissionsConf = "testdata/nats-permissions.conf"

// natsClient connects to url with opts; it is closed at the end of the
// test. Asynchronous errors (permissions violations) are collected.
type natsClient struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu        sync.Mutex // guards asyncErrs
	asyncErrs []error
}

func connectNATS(t testing.TB, url string, opts ...nats.Option) *natsClient {
	t.Helper()
	c := &natsClient{}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		c.mu.Lock()
		c.asyncErrs = append(c.asyncErrs, err)
		c.mu.Unlock()
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c.nc, c.js = nc, js
	return c
}

func (c *natsClient) errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.asyncErrs...)
}

// createBuckets creates the registry and members buckets as an operator
// would before starting daemons that may not create them.
func createBuckets(t testing.TB, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "tiercache-models", History: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "tiercache-members", History: 1,
		TTL: 15 * time.Second, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestDrillNATSPermissions(t *testing.T) {
	opts, err := server.ProcessConfigFile(permissionsConf)
	if err != nil {
		t.Fatalf("%s: %v", permissionsConf, err)
	}
	ns := newNATSServer(t, opts)
	ctx := context.Background()

	admin := connectNATS(t, ns.url(), nats.UserInfo("admin", "admin-pw"))
	registry := createBuckets(t, admin.js)

	auth := []string{"--nats-user", "daemon", "--nats-password", "daemon-pw"}
	a := modelDaemon(t, "node-a", ns.url(), auth...)
	b := modelDaemon(t, "node-b", ns.url(), auth...)
	ds := []*daemon{a, b}
	for _, d := range ds {
		waitFor(t, 30*time.Second, d.name+" to connect as daemon", func() bool { return natsConnected(d) })
	}

	// pipeline-clip rolls clip out and waits for the daemons.
	clipURL := ns.url("pipeline-clip", "pipeline-clip-pw")
	if code, out, errs, _ := tierctl(t, "--nats", clipURL, "rollout", "clip", "v1", "--wait", "20s"); code != 0 {
		t.Fatalf("pipeline-clip: tierctl rollout clip v1 --wait: exit %d\n%s%s", code, out, errs)
	}
	waitVersion(t, 1, ds...)
	for _, d := range ds {
		if err := d.admin.Set(ctx, "{clip@v1}k", NewValue([]byte("{clip@v1}k"), 1, 1000), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// pipeline-other may not: by tierctl and by nats.go.
	otherURL := ns.url("pipeline-other", "pipeline-other-pw")
	// The refusal is reported as one at once (NATS says so asynchronously;
	// without watching for it, the publish would wait for its timeout).
	code, out, errs, took := tierctl(t, "--nats", otherURL, "--timeout", "30s", "rollout", "clip", "v9")
	if code == 0 {
		t.Errorf("pipeline-other: tierctl rollout clip v9 succeeded: %s", out)
	}
	tierctlRefusal := strings.TrimSpace(errs)
	if !strings.Contains(tierctlRefusal, "permissions violation") {
		t.Errorf("pipeline-other: tierctl rollout clip v9 failed with %q, not with the permissions violation", tierctlRefusal)
	}
	other := connectNATS(t, otherURL)
	kvOther, err := other.js.KeyValue(ctx, "tiercache-models")
	if err != nil {
		t.Fatalf("pipeline-other: binding the registry: %v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, putErr := kvOther.Put(pctx, "clip", []byte("v9"))
	cancel()
	if putErr == nil {
		t.Errorf("pipeline-other: kv.Put clip v9 succeeded")
	}
	var violation error
	waitFor(t, 10*time.Second, "the permissions violation to reach pipeline-other", func() bool {
		for _, err := range other.errors() {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"$KV.tiercache-models.clip"`) {
				violation = err
			}
		}
		return violation != nil
	})
	// ... while its own model goes through, and pipeline-clip's t5 does not.
	if code, out, errs, _ := tierctl(t, "--nats", otherURL, "rollout", "t5", "x1"); code != 0 {
		t.Errorf("pipeline-other: tierctl rollout t5 x1: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs, _ := tierctl(t, "--nats", clipURL, "--timeout", "30s", "rollout", "t5", "x2"); code == 0 {
		t.Errorf("pipeline-clip: tierctl rollout t5 x2 succeeded")
	} else if !strings.Contains(errs, "permissions violation") {
		t.Errorf("pipeline-clip: tierctl rollout t5 x2 failed with %q, not with the permissions violation", errs)
	}

	// A daemon cannot change the registry either.
	start := time.Now()
	daemonErr := a.admin.Do(ctx, "MODEL.ROLLOUT", "clip", "v8").Err()
	if daemonErr == nil {
		t.Errorf("MODEL.ROLLOUT clip v8 on a daemon succeeded")
	} else if !strings.Contains(daemonErr.Error(), "permissions violation") {
		t.Errorf("MODEL.ROLLOUT clip v8 on a daemon failed with %q, not with the permissions violation", daemonErr)
	}
	daemonTook := time.Since(start)

	// Nothing changed.
	e, err := registry.Get(ctx, "clip")
	if err != nil || string(e.Value()) != "v1" {
		t.Errorf("the registry has clip at %q (%v), want v1", e.Value(), err)
	}
	for _, d := range ds {
		waitFor(t, 10*time.Second, d.name+" to apply t5", func() bool {
			v, err := d.admin.Do(ctx, "MODEL.GET", "t5").Text()
			return err == nil && v == "x1"
		})
		if v, err := modelVersion(ctx, d.admin); err != nil || v != 1 {
			t.Errorf("%s reports clip v%d (%v), want v1", d.name, v, err)
		}
		v, err := d.admin.Get(ctx, "{clip@v1}k").Bytes()
		if err != nil {
			t.Errorf("%s: GET {clip@v1}k: %v", d.name, err)
		} else if _, err := CheckValue([]byte("{clip@v1}k"), v); err != nil {
			t.Errorf("%s: GET {clip@v1}k: %v", d.name, err)
		}
	}
	waitMembers(t, ns.url("admin", "admin-pw"), len(ds))
	// The daemons needed no more than the configuration grants: the only
	// permissions violation in their logs is the refused MODEL.ROLLOUT.
	for _, d := range ds {
		for _, line := range strings.Split(d.allLogs(), "\n") {
			if strings.Contains(strings.ToLower(line), "permissions violation") && !strings.Contains(line, `$KV.tiercache-models.clip`) {
				t.Errorf("%s was refused something the configuration should grant: %s", d.name, line)
			}
		}
	}
	t.Logf("permissions drill (%s): daemons follow the registry as \"daemon\"; pipeline-clip rolled out clip v1 with --wait; pipeline-other's rollout of clip refused: tierctl exit %d after %v (%q), kv.Put: %v, async error: %v; pipeline-other's t5 went through and pipeline-clip's t5 was refused; MODEL.ROLLOUT on a daemon refused after %v: %v; registry and daemons still at clip v1",
		permissionsConf, code, took.Round(time.Millisecond), tierctlRefusal, putErr, violation, daemonTook.Round(time.Millisecond), daemonErr)
}

// testPKI is a CA and certificates signed by it, as PEM files.
type testPKI struct {
	dir                   string
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tiercache drill CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p.caFile = p.writePEM(t, "ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return p.writePEM(t, name+".pem", "CERTIFICATE", der), p.writePEM(t, name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p *testPKI) writePEM(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDrillNATSTLS(t *testing.T) {
	pki := newTestPKI(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.caFile, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tc.MinVersion = tls.VersionTLS12
	ns := newNATSServer(t, &server.Options{TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 10})
	ctx := context.Background()

	tlsFlags := []string{"--nats-tls-ca", pki.caFile, "--nats-tls-cert", pki.clientCert, "--nats-tls-key", pki.clientKey}
	d := modelDaemon(t, "node-tls", ns.url(), tlsFlags...)
	waitFor(t, 30*time.Second, "the daemon to connect over TLS", func() bool { return natsConnected(d) })
	if code, out, errs, _ := tierctl(t, append([]string{"--nats", ns.url()}, append(tlsFlags, "rollout", "clip", "v2", "--wait", "20s")...)...); code != 0 {
		t.Fatalf("tierctl rollout over TLS: exit %d\n%s%s", code, out, errs)
	}
	waitVersion(t, 2, d)
	if err := d.admin.Set(ctx, "{clip@v1}k", "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "STALE") {
		t.Errorf("SET {clip@v1}k after the rollout over TLS: %v, want STALE", err)
	}

	// A client without a certificate is refused by the server.
	_, plainErr := nats.Connect(ns.url(), nats.RootCAs(pki.caFile), nats.MaxReconnects(0), nats.Timeout(3*time.Second))
	if plainErr == nil {
		t.Errorf("a client without a certificate connected to a server that verifies them")
	}
	t.Logf("TLS drill: daemon connected with --nats-tls-ca/--nats-tls-cert/--nats-tls-key to a server verifying client certificates (CA and certificates made in the test); tierctl rolled out over TLS and the daemon applied it; a client without a certificate was refused (%v)", plainErr)
}

func TestDrillNATSCreds(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, err := okp.PublicKey()
	must(err)
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "drill-operator"

	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		akp, err := nkeys.CreateAccount()
		must(err)
		apub, err := akp.PublicKey()
		must(err)
		ac := jwt.NewAccountClaims(apub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		must(err)
		return akp, apub, ajwt
	}
	_, sysPub, sysJWT := account("SYS", false)
	akp, apub, ajwt := account("TIERCACHE", true)
	oc.SystemAccount = sysPub
	resolver := &server.MemAccResolver{}
	must(resolver.Store(sysPub, sysJWT))
	must(resolver.Store(apub, ajwt))

	user := func(name string) string {
		ukp, err := nkeys.CreateUser()
		must(err)
		upub, err := ukp.PublicKey()
		must(err)
		uc := jwt.NewUserClaims(upub)
		uc.Name = name
		ujwt, err := uc.Encode(akp)
		must(err)
		seed, err := ukp.Seed()
		must(err)
		creds, err := jwt.FormatUserConfig(ujwt, seed)
		must(err)
		path := filepath.Join(dir, name+".creds")
		must(os.WriteFile(path, creds, 0o600))
		return path
	}
	daemonCreds, pipelineCreds := user("daemon"), user("pipeline")

	ns := newNATSServer(t, &server.Options{
		TrustedOperators: []*jwt.OperatorClaims{oc},
		AccountResolver:  resolver,
		SystemAccount:    sysPub,
	})
	d := modelDaemon(t, "node-creds", ns.url(), "--nats-creds", daemonCreds)
	waitFor(t, 30*time.Second, "the daemon to connect with its creds file", func() bool { return natsConnected(d) })
	if code, out, errs, _ := tierctl(t, "--nats", ns.url(), "--nats-creds", pipelineCreds, "rollout", "clip", "v3", "--wait", "20s"); code != 0 {
		t.Fatalf("tierctl rollout with a creds file: exit %d\n%s%s", code, out, errs)
	}
	waitVersion(t, 3, d)
	_, anonErr := nats.Connect(ns.url(), nats.MaxReconnects(0), nats.Timeout(3*time.Second))
	if anonErr == nil {
		t.Errorf("a client without credentials connected to the operator-mode server")
	}
	t.Logf("creds drill: daemon connected with --nats-creds (user JWT signed by an account of an operator made in the test, server in operator mode); tierctl --nats-creds rolled out and the daemon applied it; a client without credentials was refused (%v)", anonErr)
}

// TestDrillNATSNKey: nats-server authenticating users by NKey (no JWTs);
// the daemon connects with --nats-nkey, tierctl rolls out with its own
// seed, and a client with an NKey the server does not know is refused.
func TestDrillNATSNKey(t *testing.T) {
	dir := t.TempDir()
	user := func(name string) (pub, seedFile string) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, err = kp.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		seed, err := kp.Seed()
		if err != nil {
			t.Fatal(err)
		}
		seedFile = filepath.Join(dir, name+".nk")
		if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		return pub, seedFile
	}
	daemonPub, daemonSeed := user("daemon")
	pipelinePub, pipelineSeed := user("pipeline")
	_, strangerSeed := user("stranger")
	ns := newNATSServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: daemonPub}, {Nkey: pipelinePub}}})

	d := modelDaemon(t, "node-nkey", ns.url(), "--nats-nkey", daemonSeed)
	waitFor(t, 30*time.Second, "the daemon to connect with its NKey", func() bool { return natsConnected(d) })
	if code, out, errs, _ := tierctl(t, "--nats", ns.url(), "--nats-nkey", pipelineSeed, "rollout", "clip", "v4", "--wait", "20s"); code != 0 {
		t.Fatalf("tierctl rollout with an NKey: exit %d\n%s%s", code, out, errs)
	}
	waitVersion(t, 4, d)
	opt, err := nats.NkeyOptionFromSeed(strangerSeed)
	if err != nil {
		t.Fatal(err)
	}
	_, strangerErr := nats.Connect(ns.url(), opt, nats.MaxReconnects(0), nats.Timeout(3*time.Second))
	if strangerErr == nil {
		t.Errorf("a client with an unknown NKey connected")
	}
	code, _, errs, _ := tierctl(t, "--nats", ns.url(), "--nats-nkey", strangerSeed, "--timeout", "10s", "rollout", "clip", "v5")
	if code == 0 {
		t.Errorf("tierctl with an unknown NKey rolled out")
	}
	t.Logf("nkey drill: daemon connected with --nats-nkey to a server authenticating users by NKey; tierctl --nats-nkey rolled out and the daemon applied it; a client with an unknown NKey was refused (%v; tierctl exit %d: %s)", strangerErr, code, strings.TrimSpace(errs))
}
