// Package tlsconf builds the one TLS configuration both daemons serve with,
// and keeps its certificate fresh. The certificate and key files are PEM; the
// certificate file may hold a chain, leaf first. They are checked when loaded
// (the key matches the leaf, the leaf is within its validity period) and
// reloaded without a restart: on SIGHUP through Reload, and by noticing
// changed files during handshakes, at most one stat per second. A reload
// that fails keeps the previous pair and logs an error. TLS 1.2 is limited to
// ECDHE key exchange with AEAD ciphers; TLS 1.3 suites are all AEAD already.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
)

// cipherSuites12 are the only TLS 1.2 suites offered: forward secret (ECDHE)
// and authenticated encryption (GCM, ChaCha20-Poly1305).
var cipherSuites12 = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig returns a new server tls.Config that takes its certificate
// from r. minVersion is tls.VersionTLS12 or tls.VersionTLS13; any other value
// is treated as tls.VersionTLS12, so a zero value never means "anything".
func (r *Reloader) ServerConfig(minVersion uint16) *tls.Config {
	if minVersion != tls.VersionTLS13 {
		minVersion = tls.VersionTLS12
	}
	return &tls.Config{
		MinVersion:     minVersion,
		CipherSuites:   slices.Clone(cipherSuites12),
		GetCertificate: r.getCertificate,
	}
}

// ClientConfig returns a client tls.Config that trusts only the PEM
// certificates in caFile, for health probes and tests.
func ClientConfig(caFile string) (*tls.Config, error) {
	data, err := readPEM(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("tls ca file %s holds no PEM certificate", caFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// ParseMinVersion maps a configured minimum version, "1.2" or "1.3", to its
// tls constant.
func ParseMinVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls version %q not supported, use 1.2 or 1.3", s)
}
