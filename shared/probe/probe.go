// Package probe checks that a daemon of this project answers over TLS: one
// HTTPS GET /healthz to its listen address, trusting exactly the certificate
// the daemon is configured to serve. The OCF resource agents run it through
// "stx-registry probe" and "stx-token-server probe", so that monitor needs
// no curl and tells "not running" from "running but broken".
package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"stx-registry/shared/tlsconf"
)

const (
	// maxBodyBytes bounds the /healthz reply read; both daemons answer with
	// a short JSON object.
	maxBodyBytes = 4 << 10
	// maxReasonBytes bounds how much of an unhealthy reply is quoted in the
	// error, so that the one line an agent logs stays one short line.
	maxReasonBytes = 200
	// healthPath is the liveness endpoint of both daemons.
	healthPath = "/healthz"
)

// ErrNotRunning is returned when nothing listens on the address (the
// connection is refused): the daemon is stopped, not broken.
var ErrNotRunning = errors.New("not running: connection refused")

// Probe sends GET https://addr/healthz and returns nil on 200. The peer must
// present the leaf certificate of certFile (the daemon's tls_certificate), or
// one that chains to a certificate in certFile; host names are not checked
// because the certificate is pinned. A refused connection is ErrNotRunning;
// a TLS mismatch, another status or a timeout is another error.
func Probe(ctx context.Context, addr netip.AddrPort, certFile string, timeout time.Duration) error {
	if !addr.IsValid() {
		return fmt.Errorf("probe: invalid address %v", addr)
	}
	pinned, err := tlsconf.ReadCertificates(certFile)
	if err != nil {
		return fmt.Errorf("probe: tls_certificate: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The standard verification is replaced by pinning in
			// VerifyPeerCertificate, which always runs.
			InsecureSkipVerify:    true,
			VerifyPeerCertificate: pinnedVerifier(pinned),
		},
		DisableKeepAlives: true,
		Proxy:             nil, // never through a proxy from the environment
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	url := "https://" + addr.String() + healthPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("probe %s: %w", addr, ErrNotRunning)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("probe %s: no answer within %v", url, timeout)
		}
		return fmt.Errorf("probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("probe %s: reading the reply: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: status %d: %s", url, resp.StatusCode, reason(body))
	}
	return nil
}

// pinnedVerifier accepts the peer when its leaf is byte for byte the first
// pinned certificate, or when the leaf chains to any pinned certificate.
func pinnedVerifier(pinned []*x509.Certificate) func([][]byte, [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) == 0 {
			return errors.New("probe: the server sent no certificate")
		}
		if bytes.Equal(rawCerts[0], pinned[0].Raw) {
			return nil
		}
		leaf, err := x509.ParseCertificate(rawCerts[0])
		if err != nil {
			return fmt.Errorf("probe: server certificate: %w", err)
		}
		roots := x509.NewCertPool()
		for _, c := range pinned {
			roots.AddCert(c)
		}
		inter := x509.NewCertPool()
		for _, raw := range rawCerts[1:] {
			if c, err := x509.ParseCertificate(raw); err == nil {
				inter.AddCert(c)
			}
		}
		_, err = leaf.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("probe: the server's certificate (subject %q) is not the configured tls_certificate and does not chain to it: %w", leaf.Subject.String(), err)
		}
		return nil
	}
}

// reason quotes an unhealthy reply as one printable line of bounded length.
func reason(body []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(string(body)))
	if len(s) > maxReasonBytes {
		s = strings.ToValidUTF8(s[:maxReasonBytes], "") + "…"
	}
	if s == "" {
		return "empty reply"
	}
	return s
}
