package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"stx-registry/shared/tlsconf/tlstest"
	"testing"
	"time"
)

// These tests were the registry's (its token_certificate reading).

// bundleKey returns a new signing key of kind (P-256, P-384, P-521, RSA
// or Ed25519); RSA keys come from the tests' cache, for speed.
func bundleKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	if kind == "RSA" {
		return testRSAKeys()[0]
	}
	return tlstest.Key(t, map[string]string{"P-256": "p256", "P-384": "p384", "P-521": "p521", "Ed25519": "ed25519"}[kind])
}

// certFor returns a PEM certificate for pub signed by k.
func certFor(t testing.TB, pub any, k crypto.Signer) []byte {
	t.Helper()
	return tlstest.Certificate(t, pub, k)
}

// selfSigned returns a PEM self-signed certificate for k.
func selfSigned(t testing.TB, k crypto.Signer) []byte { return certFor(t, k.Public(), k) }

func TestParseBundle(t *testing.T) {
	p256, p384, p521 := bundleKey(t, "P-256"), bundleKey(t, "P-384"), bundleKey(t, "P-521")
	rsaKey, ed := bundleKey(t, "RSA"), bundleKey(t, "Ed25519")
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
		{name: "mixed with duplicates", data: cat(selfSigned(t, p256), selfSigned(t, rsaKey), selfSigned(t, bundleKey(t, "P-256"))),
			want: []any{"ES256", "RS256"}},
		{name: "empty", data: nil, wantErr: "no PEM certificate"},
		{name: "not PEM", data: []byte("hello"), wantErr: "no PEM certificate"},
		{name: "private key in bundle", data: cat(selfSigned(t, p256), keyPEM), wantErr: `"PRIVATE KEY"`},
		{name: "bad DER", data: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), wantErr: "certificate 1"},
		// The token server's own message for a key it will not sign with.
		{name: "P-224", data: certFor(t, p224.Public(), p256), wantErr: "ecdsa curve P-224 is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBundle(tt.data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Algorithms, tt.want) {
				t.Errorf("got %#v, want %#v", got.Algorithms, tt.want)
			}
		})
	}
}

// TestBundleRefusesCA: distribution chains a token's x5c to the bundle, so
// a CA certificate in it would hand signing to every key the CA certified.
// A CA (basicConstraints CA:TRUE) or a certificate that may sign
// certificates (keyCertSign) is refused, with a message that says why.
func TestBundleRefusesCA(t *testing.T) {
	k := bundleKey(t, "P-256")
	cert := func(ca bool, usage x509.KeyUsage) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "token CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: ca, BasicConstraintsValid: ca, KeyUsage: usage}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	tests := []struct {
		name string
		data []byte
		want string // "" accepted
	}{
		{"CA", cert(true, x509.KeyUsageCertSign|x509.KeyUsageCRLSign), "CA:TRUE"},
		{"CA without key usage", cert(true, 0), "CA:TRUE"},
		{"keyCertSign without CA", cert(false, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature), "keyCertSign"},
		{"CA after a good one", append(selfSigned(t, bundleKey(t, "P-256")), cert(true, 0)...), "certificate 2"},
		{"signing certificate", cert(false, x509.KeyUsageDigitalSignature), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseBundle(tt.data)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want == "" && len(b.Certs) != 1:
				t.Errorf("%d certificates kept, want 1", len(b.Certs))
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "never a CA")):
				t.Errorf("err = %v, want one containing %q and saying why", err, tt.want)
			}
		})
	}
}

// TestBundleRefusesWhatSigningRefuses: a key the token server cannot sign
// with is refused in the bundle with the same message.
func TestBundleRefusesWhatSigningRefuses(t *testing.T) {
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, signErr := NewSigner(p224)
	_, bundleErr := ParseBundle(selfSigned(t, p224))
	if signErr == nil || bundleErr == nil || !strings.HasSuffix(bundleErr.Error(), signErr.Error()) {
		t.Errorf("signing: %v; bundle: %v; want the same reason", signErr, bundleErr)
	}
}

func TestReadBundle(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadBundle(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "token_certificate") {
		t.Errorf("missing file: %v", err)
	}
	huge := filepath.Join(dir, "huge.pem")
	if err := os.WriteFile(huge, make([]byte, MaxBundleBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBundle(huge); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
	good := filepath.Join(dir, "good.pem")
	data := append(selfSigned(t, bundleKey(t, "P-384")), selfSigned(t, bundleKey(t, "P-384"))...)
	if err := os.WriteFile(good, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadBundle(good); err != nil || !reflect.DeepEqual(b.Algorithms, []any{"ES384"}) || b.Certificates != 2 {
		t.Errorf("good file: %v %v", b, err)
	}
}

func FuzzParseBundle(f *testing.F) {
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
		b, err := ParseBundle(data)
		if err == nil && (len(b.Algorithms) == 0 || b.Certificates < len(b.Algorithms)) {
			t.Fatalf("%d algorithms from %d certificates and no error", len(b.Algorithms), b.Certificates)
		}
	})
}
