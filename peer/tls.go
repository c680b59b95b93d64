package peer

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// MutualTLS returns the server and client configurations of mutual TLS
// between peers that each present cert and trust the certificate
// authorities in cas: the server requires and verifies the client's
// certificate, the client verifies the server's against the host of the
// address it dials (see ClientOptions.TLS). TLS 1.3 at least.
func MutualTLS(cert tls.Certificate, cas *x509.CertPool) (server, client *tls.Config) {
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    cas,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	client = &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      cas,
		MinVersion:   tls.VersionTLS13,
	}
	return server, client
}

// LoadMutualTLS is MutualTLS with the certificate, its key and the
// authorities read from PEM files (--peer-tls-cert, --peer-tls-key,
// --peer-tls-ca).
func LoadMutualTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("peer: TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("peer: TLS CA: %w", err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("peer: TLS CA: no certificate in %s", caFile)
	}
	server, client = MutualTLS(cert, cas)
	return server, client, nil
}
