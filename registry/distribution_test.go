package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/sirupsen/logrus"
)

func TestBundleAlgorithms(t *testing.T) {
	p256, p384, p521 := newTestKey(t, "P-256"), newTestKey(t, "P-384"), newTestKey(t, "P-521")
	rsaKey, ed := newTestKey(t, "RSA"), newTestKey(t, "Ed25519")
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	tests := []struct {
		name    string
		data    []byte
		want    []any
		wantErr string
	}{
		{name: "P-256", data: selfSigned(t, p256), want: []any{"ES256"}},
		{name: "P-384", data: selfSigned(t, p384), want: []any{"ES384"}},
		{name: "P-521", data: selfSigned(t, p521), want: []any{"ES512"}},
		{name: "RSA", data: selfSigned(t, rsaKey), want: []any{"RS256"}},
		{name: "Ed25519", data: selfSigned(t, ed), want: []any{"EdDSA"}},
		{name: "mixed with duplicates", data: cat(selfSigned(t, p256), selfSigned(t, rsaKey), selfSigned(t, newTestKey(t, "P-256"))),
			want: []any{"ES256", "RS256"}},
		{name: "empty", data: nil, wantErr: "no PEM certificate"},
		{name: "not PEM", data: []byte("hello"), wantErr: "no PEM certificate"},
		{name: "private key in bundle", data: cat(selfSigned(t, p256), keyPEM), wantErr: `"PRIVATE KEY"`},
		{name: "bad DER", data: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), wantErr: "certificate 1"},
		{name: "P-224", data: certFor(t, p224.Public(), p256), wantErr: "unsupported elliptic curve P-224"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := bundleAlgorithms(tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// certFor returns a PEM certificate for pub signed by k.
func certFor(t *testing.T, pub any, k testKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestTokenAlgorithmsFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := tokenAlgorithms(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "token_certificate") {
		t.Errorf("missing file: %v", err)
	}
	huge := filepath.Join(dir, "huge.pem")
	if err := os.WriteFile(huge, make([]byte, maxTokenBundleBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tokenAlgorithms(huge); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
	good := writeBundle(t, newTestKey(t, "P-384"), newTestKey(t, "P-384"))
	if algs, certs, err := readTokenBundle(good); err != nil || !reflect.DeepEqual(algs, []any{"ES384"}) || certs != 2 {
		t.Errorf("good file: %v %d %v", algs, certs, err)
	}
}

func TestDistributionConfig(t *testing.T) {
	c := defaultConfig()
	c.RootDirectory = "/srv/r"
	c.ReadOnly = true
	bundle := writeBundle(t, newTestKey(t, "P-256"))
	c.TokenRealm, c.TokenService, c.TokenIssuer, c.TokenCertificate = testRealm, testService, testIssuer, bundle
	tokens, err := newTokenController(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d, err := distributionConfig(c, tokens)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := distributionConfig(c, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.HTTP.Secret) != httpSecretBytes || d.HTTP.Secret == d2.HTTP.Secret {
		t.Error("http secret is not a fresh random value")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"storage type", d.Storage.Type(), "filesystem"},
		{"rootdirectory", d.Storage["filesystem"]["rootdirectory"], "/srv/r"},
		{"delete", d.Storage["delete"]["enabled"], true},
		{"readonly", d.Storage["maintenance"]["readonly"], map[any]any{"enabled": true}},
		{"uploadpurging default", d.Storage["maintenance"]["uploadpurging"], nil},
		{"cache", d.Storage["cache"]["blobdescriptor"], "inmemory"},
		{"auth type", d.Auth.Type(), tokenAuthName},
		{"auth options", d.Auth[tokenAuthName], configuration.Parameters{controllerOption: tokens}},
		{"realm", tokens.base["realm"], testRealm},
		{"service", tokens.base["service"], testService},
		{"issuer", tokens.base["issuer"], testIssuer},
		{"rootcertbundle", tokens.base["rootcertbundle"], bundle},
		{"signingalgorithms", tokens.algorithms(), []any{"ES256"}},
		{"autoredirect", tokens.base["autoredirect"], false},
		{"nosniff", d.HTTP.Headers.Get("X-Content-Type-Options"), "nosniff"},
		{"debug addr", d.HTTP.Debug.Addr, ""},
		{"prometheus", d.HTTP.Debug.Prometheus.Enabled, false},
		{"notifications", len(d.Notifications.Endpoints), 0},
		{"redis", len(d.Redis.Options.Addrs), 0},
		{"proxy", d.Proxy.RemoteURL, ""},
		{"accesslog", d.Log.AccessLog.Disabled, true},
		{"relative urls", d.HTTP.RelativeURLs, true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func FuzzBundleAlgorithms(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		algs, certs, err := bundleAlgorithms(data)
		if err == nil && (len(algs) == 0 || certs < len(algs)) {
			t.Fatalf("%d algorithms from %d certificates and no error", len(algs), certs)
		}
	})
}

func TestDistributionLogScrubsQuery(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := configureDistributionLog(&buf, format, "info"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = configureDistributionLog(os.Stderr, "text", "error") })
			logrus.WithFields(logrus.Fields{
				"http.request.uri":     "/v2/a/blobs/uploads/u?_state=abc&x=secret",
				"http.request.referer": "https://example/?q=secret",
			}).Info("response completed")
			logrus.Debug("hidden at info")
			out := buf.String()
			if strings.Contains(out, "secret") || strings.Contains(out, "_state") || strings.Contains(out, "hidden") {
				t.Errorf("log output %q", out)
			}
			if !strings.Contains(out, "/v2/a/blobs/uploads/u") {
				t.Errorf("log output %q lost the path", out)
			}
			if format == "json" && !strings.HasPrefix(out, "{") {
				t.Errorf("json log output %q", out)
			}
		})
	}
	if err := configureDistributionLog(os.Stderr, "text", "verbose"); err == nil {
		t.Error("log level verbose accepted")
	}
}
