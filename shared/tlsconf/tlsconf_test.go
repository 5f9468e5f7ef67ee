package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stx-registry/shared/tlsconf/tlstest"
)

var (
	hourAgo  = time.Now().Add(-time.Hour)
	tomorrow = time.Now().Add(24 * time.Hour)
)

// pairFiles writes a certificate for key issued by ca, and the key, into dir.
func pairFiles(t *testing.T, dir string, ca *tlstest.CA, key crypto.Signer, keyPEM []byte) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	tlstest.Write(t, certFile, ca.Issue(t, key, hourAgo, tomorrow))
	tlstest.Write(t, keyFile, keyPEM)
	return certFile, keyFile
}

func TestNewKeyKinds(t *testing.T) {
	ca := tlstest.NewCA(t)
	tests := []struct {
		kind   string
		encode func(crypto.Signer) []byte
	}{
		{"p256", func(k crypto.Signer) []byte { return tlstest.KeyPEM(t, k) }},
		{"p384", func(k crypto.Signer) []byte { return tlstest.KeyPEM(t, k) }},
		{"rsa2048", func(k crypto.Signer) []byte { return tlstest.KeyPEM(t, k) }},
		{"ed25519", func(k crypto.Signer) []byte { return tlstest.KeyPEM(t, k) }},
		{"p384", func(k crypto.Signer) []byte { // openssl ecparam -genkey output
			der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
			if err != nil {
				t.Fatal(err)
			}
			return append([]byte("-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n"),
				pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
		}},
		{"rsa2048", func(k crypto.Signer) []byte {
			der := x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))
			return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			key := tlstest.Key(t, tt.kind)
			certFile, keyFile := pairFiles(t, t.TempDir(), ca, key, tt.encode(key))
			r, err := New(certFile, keyFile, discard())
			if err != nil {
				t.Fatal(err)
			}
			addr := serveTLS(t, r.ServerConfig(tls.VersionTLS12))
			got := handshake(t, addr, ca.PEM)
			if !got.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Error("server presented a different key")
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	key := tlstest.Key(t, "p256")
	other := tlstest.Key(t, "p256")
	certFile := filepath.Join(dir, "cert.pem")
	keyFile := filepath.Join(dir, "key.pem")
	expired := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	future := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}})
	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		want    string
		missing string // remove this file instead
	}{
		{name: "mismatch", cert: ca.Issue(t, key, hourAgo, tomorrow), key: tlstest.KeyPEM(t, other),
			want: "tls_key " + keyFile + " does not match tls_certificate " + certFile},
		{name: "expired", cert: ca.Issue(t, key, expired.Add(-time.Hour), expired), key: tlstest.KeyPEM(t, key),
			want: "tls_certificate " + certFile + " expired on 2026-01-02T03:04:05Z"},
		{name: "not yet valid", cert: ca.Issue(t, key, future, future.Add(time.Hour)), key: tlstest.KeyPEM(t, key),
			want: "tls_certificate " + certFile + " is not valid before " + future.Format(time.RFC3339)},
		{name: "no cert", cert: []byte("hello\n"), key: tlstest.KeyPEM(t, key),
			want: "tls_certificate " + certFile + ": holds no PEM CERTIFICATE block"},
		{name: "bad cert", cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0}}), key: tlstest.KeyPEM(t, key),
			want: "tls_certificate " + certFile + ": certificate 1: "},
		{name: "long chain", cert: bytes.Repeat(ca.PEM, maxChain+1), key: tlstest.KeyPEM(t, key),
			want: "more than 10 certificates"},
		{name: "no key", cert: ca.Issue(t, key, hourAgo, tomorrow), key: ca.PEM,
			want: "tls_key " + keyFile + ": holds no PEM private key block"},
		{name: "two keys", cert: ca.Issue(t, key, hourAgo, tomorrow), key: append(tlstest.KeyPEM(t, key), tlstest.KeyPEM(t, key)...),
			want: "holds more than one private key"},
		{name: "encrypted", cert: ca.Issue(t, key, hourAgo, tomorrow), key: encrypted,
			want: "key is encrypted, give an unencrypted key"},
		{name: "missing cert", cert: []byte{}, key: tlstest.KeyPEM(t, key), missing: certFile,
			want: "tls_certificate: open " + certFile},
		{name: "missing key", cert: ca.Issue(t, key, hourAgo, tomorrow), key: []byte{}, missing: keyFile,
			want: "tls_key: open " + keyFile},
		{name: "too big", cert: make([]byte, MaxPEMBytes+1), key: tlstest.KeyPEM(t, key),
			want: "is larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlstest.Write(t, certFile, tt.cert)
			tlstest.Write(t, keyFile, tt.key)
			if tt.missing != "" {
				os.Remove(tt.missing)
			}
			_, err := New(certFile, keyFile, discard())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v\nwant %s", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "PRIVATE KEY-----") {
				t.Errorf("error echoes key material: %v", err)
			}
		})
	}
}

func TestSmallRSAKeyRefused(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Skip("cannot make a 1024-bit key here:", err)
	}
	if _, err := ParsePrivateKey(tlstest.KeyPEM(t, k)); err == nil || !strings.Contains(err.Error(), "use at least 2048") {
		t.Errorf("got %v, want a key size error", err)
	}
}

func TestChainServed(t *testing.T) {
	root := tlstest.NewCA(t)
	// The intermediate is a CA issued by root, so the client must get it from the server.
	ikey := tlstest.Key(t, "p256")
	inter := &tlstest.CA{Key: ikey}
	inter.PEM = issueCA(t, root, ikey)
	blk, _ := pem.Decode(inter.PEM)
	var err error
	if inter.Cert, err = x509.ParseCertificate(blk.Bytes); err != nil {
		t.Fatal(err)
	}
	key := tlstest.Key(t, "p384")
	dir := t.TempDir()
	certFile, keyFile := pairFiles(t, dir, inter, key, tlstest.KeyPEM(t, key))
	leaf, _ := os.ReadFile(certFile)
	tlstest.Write(t, certFile, append(leaf, inter.PEM...))
	r, err := New(certFile, keyFile, discard())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.ServerConfig(tls.VersionTLS13))
	handshake(t, addr, root.PEM) // verifies leaf -> intermediate -> root
}

func TestServerConfig(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile, _ := ca.Files(t, t.TempDir())
	r, err := New(certFile, keyFile, discard())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []uint16{0, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12} {
		if got := r.ServerConfig(in).MinVersion; got != tls.VersionTLS12 {
			t.Errorf("ServerConfig(%#x).MinVersion = %#x, want TLS 1.2", in, got)
		}
	}
	c := r.ServerConfig(tls.VersionTLS13)
	if c.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion = %#x, want TLS 1.3", c.MinVersion)
	}
	want := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	if !slices.Equal(c.CipherSuites, want) {
		t.Errorf("CipherSuites = %v", c.CipherSuites)
	}
	c.CipherSuites[0] = 0 // each config is the caller's own
	if r.ServerConfig(tls.VersionTLS12).CipherSuites[0] == 0 {
		t.Error("ServerConfig shares its suite slice")
	}

	addr12 := serveTLS(t, r.ServerConfig(tls.VersionTLS12))
	addr13 := serveTLS(t, r.ServerConfig(tls.VersionTLS13))
	tests := []struct {
		name string
		addr string
		cfg  func(*tls.Config)
		ok   bool
	}{
		{"1.3", addr12, nil, true},
		{"1.2 gcm", addr12, func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
		}, true},
		{"1.2 chacha", addr12, func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
		}, true},
		{"1.2 cbc", addr12, func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		}, false},
		{"1.1", addr12, func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }, false},
		{"1.2 to a 1.3 server", addr13, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, false},
	}
	for _, tt := range tests {
		cfg, err := ClientConfig(writeCA(t, ca))
		if err != nil {
			t.Fatal(err)
		}
		if tt.cfg != nil {
			tt.cfg(cfg)
		}
		conn, err := tls.Dial("tcp", tt.addr, cfg)
		if (err == nil) != tt.ok {
			t.Errorf("%s: handshake error %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err == nil {
			conn.Close()
		}
	}
}

func TestReloadOnChange(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	k1 := tlstest.Key(t, "p256")
	certFile, keyFile := pairFiles(t, dir, ca, k1, tlstest.KeyPEM(t, k1))
	r, err := New(certFile, keyFile, discard())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.ServerConfig(tls.VersionTLS12))
	first := handshake(t, addr, ca.PEM).SerialNumber

	// Replace the pair (same key type, so maybe the same sizes) and move
	// the mtimes so the change is visible whatever the clock granularity.
	k2 := tlstest.Key(t, "p256")
	pairFiles(t, dir, ca, k2, tlstest.KeyPEM(t, k2))
	touch(t, time.Now().Add(time.Minute), certFile, keyFile)

	// Within a second of the last check (New, just now) nothing is
	// looked at.
	if got := handshake(t, addr, ca.PEM).SerialNumber; got.Cmp(first) != 0 {
		t.Fatal("files were checked again within the check interval")
	}
	// Once the check interval has passed, the next handshake gets the new pair.
	r.pair.Recheck()
	second := handshake(t, addr, ca.PEM).SerialNumber
	if second.Cmp(first) == 0 {
		t.Fatal("new certificate not picked up")
	}
	if !r.pair.Current().PrivateKey.(*ecdsa.PrivateKey).Equal(k2) {
		t.Error("reloaded key is not the new key")
	}
}

func TestBadReloadKeepsOldPair(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	k1 := tlstest.Key(t, "p256")
	certFile, keyFile := pairFiles(t, dir, ca, k1, tlstest.KeyPEM(t, k1))
	var logs bytes.Buffer
	r, err := New(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.ServerConfig(tls.VersionTLS12))
	first := handshake(t, addr, ca.PEM).SerialNumber

	// A new certificate written before its key: they do not match yet.
	k2 := tlstest.Key(t, "p256")
	tlstest.Write(t, certFile, ca.Issue(t, k2, hourAgo, tomorrow))
	touch(t, time.Now().Add(time.Minute), certFile)
	err = r.Reload()
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Reload: %v, want a mismatch error", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "does not match") {
		t.Errorf("reload failure not logged at error level: %s", logs.String())
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Errorf("log holds key material: %s", logs.String())
	}
	if got := handshake(t, addr, ca.PEM).SerialNumber; got.Cmp(first) != 0 {
		t.Error("a failed Reload replaced the pair")
	}

	// The handshake-time check does not retry, or log, the same bad files.
	logs.Reset()
	r.pair.Recheck()
	handshake(t, addr, ca.PEM)
	if logs.Len() != 0 {
		t.Errorf("same bad files retried: %s", logs.String())
	}

	// Once the key arrives, the next check loads the pair.
	tlstest.Write(t, keyFile, tlstest.KeyPEM(t, k2))
	touch(t, time.Now().Add(2*time.Minute), keyFile)
	r.pair.Recheck()
	if got := handshake(t, addr, ca.PEM).SerialNumber; got.Cmp(first) == 0 {
		t.Error("fixed files not picked up")
	}
	if !strings.Contains(logs.String(), "tls certificate loaded") {
		t.Errorf("reload not logged: %s", logs.String())
	}
}

// TestConcurrentReload runs handshakes while the pair is reloaded, for the
// race detector.
func TestConcurrentReload(t *testing.T) {
	ca := tlstest.NewCA(t)
	certFile, keyFile, _ := ca.Files(t, t.TempDir())
	r, err := New(certFile, keyFile, discard())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.ServerConfig(tls.VersionTLS12))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				r.pair.Recheck()
				if _, err := dial(addr, ca.PEM); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range 5 {
		touch(t, time.Now().Add(time.Duration(i+1)*time.Minute), certFile, keyFile)
		if err := r.Reload(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func TestClientConfig(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	tlstest.Write(t, empty, []byte("# nothing\n"))
	tests := []struct {
		file string
		want string
	}{
		{writeCA(t, ca), ""},
		{empty, "holds no PEM certificate"},
		{filepath.Join(dir, "missing.pem"), "no such file"},
	}
	for _, tt := range tests {
		cfg, err := ClientConfig(tt.file)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.file, err)
		case tt.want == "" && (cfg.RootCAs == nil || cfg.MinVersion != tls.VersionTLS12):
			t.Errorf("%s: config %+v", tt.file, cfg)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want %q", tt.file, err, tt.want)
		}
	}

	// A server signed by another CA is refused.
	certFile, keyFile, _ := tlstest.NewCA(t).Files(t, dir)
	r, err := New(certFile, keyFile, discard())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.ServerConfig(tls.VersionTLS12))
	cfg, _ := ClientConfig(writeCA(t, ca))
	if conn, err := tls.Dial("tcp", addr, cfg); err == nil {
		conn.Close()
		t.Error("handshake with an untrusted server succeeded")
	}
}

func TestParseMinVersion(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"1.2", tls.VersionTLS12, true},
		{"1.3", tls.VersionTLS13, true},
		{"1.1", 0, false},
		{"TLS1.2", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseMinVersion(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseMinVersion(%q) = %#x, %v", tt.in, got, err)
		}
	}
}

// serveTLS runs a TLS listener on 127.0.0.1:0 that completes handshakes
// and closes, and returns its address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake connects to addr trusting caPEM and returns the leaf it got.
func handshake(t *testing.T, addr string, caPEM []byte) *x509.Certificate {
	t.Helper()
	leaf, err := dial(addr, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func dial(addr string, caPEM []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func writeCA(t *testing.T, ca *tlstest.CA) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	tlstest.Write(t, p, ca.PEM)
	return p
}

func touch(t *testing.T, when time.Time, files ...string) {
	t.Helper()
	for _, f := range files {
		if err := os.Chtimes(f, when, when); err != nil {
			t.Fatal(err)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// issueCA returns a PEM intermediate CA certificate for key, signed by root.
func issueCA(t *testing.T, root *tlstest.CA, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		NotBefore:             hourAgo,
		NotAfter:              tomorrow,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	tmpl.Subject.CommonName = "tlstest intermediate"
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, key.Public(), root.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
