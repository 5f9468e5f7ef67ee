package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stx-registry/shared/tlsconf/tlstest"
)

// server starts an HTTPS server on 127.0.0.1 presenting a certificate issued
// by ca, answering /healthz with h. It returns the address and the server's
// certificate and CA files.
func server(t *testing.T, ca *tlstest.CA, h http.HandlerFunc) (addr netip.AddrPort, certFile, caFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, caFile := ca.Files(t, dir)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return netip.MustParseAddrPort(srv.Listener.Addr().String()), certFile, caFile
}

func healthy(w http.ResponseWriter, _ *http.Request) {
	w.Write([]byte(`{"status":"ok"}`))
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return ap
}

func TestProbe(t *testing.T) {
	ca := tlstest.NewCA(t)
	other := tlstest.NewCA(t)
	okAddr, okCert, okCA := server(t, ca, healthy)
	_, otherCert, otherCA := server(t, other, healthy)
	sickAddr, sickCert, _ := server(t, ca, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "{\"status\":\"root_directory /x is not a mount point\"}\n\x1b[31m", http.StatusServiceUnavailable)
	})
	slowAddr, slowCert, _ := server(t, ca, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	empty := filepath.Join(t.TempDir(), "empty.pem")
	tlstest.Write(t, empty, []byte("no certificate here\n"))

	tests := []struct {
		name       string
		addr       netip.AddrPort
		certFile   string
		timeout    time.Duration
		notRunning bool
		wantErr    string // "" for success
	}{
		{"pinned leaf", okAddr, okCert, time.Second, false, ""},
		{"chains to the configured CA", okAddr, okCA, time.Second, false, ""},
		{"other certificate", okAddr, otherCert, time.Second, false, "is not the configured tls_certificate"},
		{"other CA", okAddr, otherCA, time.Second, false, "is not the configured tls_certificate"},
		{"unhealthy", sickAddr, sickCert, time.Second, false, "status 503: {\"status\":\"root_directory /x is not a mount point\"}"},
		{"refused", refusedAddr(t), okCert, time.Second, true, "connection refused"},
		{"timeout", slowAddr, slowCert, 200 * time.Millisecond, false, "no answer within 200ms"},
		{"missing certificate file", okAddr, filepath.Join(t.TempDir(), "none.pem"), time.Second, false, "no such file"},
		{"no certificate in file", okAddr, empty, time.Second, false, "holds no PEM CERTIFICATE block"},
		{"invalid address", netip.AddrPort{}, okCert, time.Second, false, "invalid address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Probe(context.Background(), tt.addr, tt.certFile, tt.timeout)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Probe: %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Probe: %v, want an error containing %q", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrNotRunning); got != tt.notRunning {
				t.Errorf("errors.Is(err, ErrNotRunning) = %v, want %v", got, tt.notRunning)
			}
			if strings.ContainsAny(err.Error(), "\n\x1b") {
				t.Errorf("error %q holds control characters", err)
			}
		})
	}
}

func TestReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty reply"},
		{" ok \n", "ok"},
		{"a\nb\tc", "a b c"},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "…"},
		{strings.Repeat("x", 199) + "é", strings.Repeat("x", 199) + "…"},
	}
	for _, tt := range tests {
		if got := reason([]byte(tt.in)); got != tt.want {
			t.Errorf("reason(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
