package peer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/testutil"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue returns a certificate for a daemon at 127.0.0.1, usable by its
// peer server and its client, with its PEM encodings.
func (ca *testCA) issue(t testing.TB, name string) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM, keyPEM
}

// Mutual TLS: a peer with a certificate of the fleet's CA is served; a
// plain client, a client without a certificate and a client of another
// CA are refused.
func TestTLS(t *testing.T) {
	ca := newCA(t, "fleet CA")
	certA, _, _ := ca.issue(t, "a")
	serverTLS, _ := MutualTLS(certA, ca.pool())
	h := openHybrid(t)
	s := startServer(t, ServerOptions{Store: h, NodeID: "a", TLS: serverTLS})
	ring := NewRing([]Member{{ID: "a", Addr: s.Addr().String()}, {ID: "b", Addr: "b.invalid:1"}})
	k := keyOf(t, ring, "a", "k")
	v := value(118_000, 1)
	mustSet(t, h, k, v)

	// b's certificate comes from PEM files, as the daemon's flags give it.
	_, certPEM, keyPEM := ca.issue(t, "b")
	dir := t.TempDir()
	files := map[string][]byte{"b.crt": certPEM, "b.key": keyPEM, "ca.crt": ca.pem}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, clientTLS, err := LoadMutualTLS(filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	good := newClient(t, ClientOptions{Ring: ring, Self: "b", TLS: clientTLS, Timeout: 10 * time.Second})
	wantHit(t, good, k, v)
	if st := good.Stats(); st.BytesIn < 118_000 {
		t.Fatalf("stats %+v", st)
	}

	other := newCA(t, "another CA")
	certX, _, _ := other.issue(t, "x")
	_, otherTLS := MutualTLS(certX, other.pool())
	noCert := &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS13}
	for name, cfg := range map[string]*tls.Config{"Plain": nil, "NoCertificate": noCert, "OtherCA": otherTLS} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, ClientOptions{Ring: ring, Self: "b", TLS: cfg, Timeout: 10 * time.Second})
			if _, ok := c.Get(k); ok {
				t.Fatal("hit")
			}
			if st := c.Stats(); st.Errors != 1 || st.Timeouts != 0 {
				t.Fatalf("stats %+v, want one error", st)
			}
		})
	}
	// In TLS 1.3 the client finishes its handshake before the server has
	// checked its certificate: the server counts the refusal after it.
	testutil.WaitFor(t, 10*time.Second, "the refused handshakes to be counted", func() bool { return s.Stats().AuthFailures == 3 })
	if st := s.Stats(); st.Gets != 1 {
		t.Fatalf("server stats %+v: want 1 GET", st)
	}

	if _, _, err := LoadMutualTLS(filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key"), filepath.Join(dir, "b.key")); err == nil {
		t.Fatal("a CA file without a certificate was accepted")
	}
}

// A password and TLS together: both must hold.
func TestClientAuth(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		so := ServerOptions{Password: "s3cret"}
		var clientTLS *tls.Config
		if withTLS {
			ca := newCA(t, "CA")
			cert, _, _ := ca.issue(t, "peer")
			so.TLS, clientTLS = MutualTLS(cert, ca.pool())
		}
		p := newPair(t, func(o *ServerOptions) { o.Password, o.TLS = so.Password, so.TLS }, func(o *ClientOptions) {
			o.Password, o.TLS, o.Timeout = "s3cret", clientTLS, 10*time.Second
		})
		k := keyOf(t, p.ring, "a", "k")
		mustSet(t, p.a, k, []byte("v"))
		wantHit(t, p.b, k, []byte("v"))

		wrong := newClient(t, ClientOptions{Ring: p.ring, Self: "b", Password: "guess", TLS: clientTLS, Timeout: 10 * time.Second})
		if _, ok := wrong.Get(k); ok {
			t.Fatal("hit with a wrong password")
		}
		if st := wrong.Stats(); st.Errors != 1 || st.PeersLive != 0 {
			t.Fatalf("TLS %v: stats %+v, want one error and the breaker open", withTLS, st)
		}
		if st := p.server.Stats(); st.AuthFailures != 1 || st.Gets != 1 {
			t.Fatalf("TLS %v: server stats %+v", withTLS, st)
		}
	}
}
