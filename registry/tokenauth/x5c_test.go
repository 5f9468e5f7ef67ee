package tokenauth

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/go-jose/go-jose/v4"

	"stx-registry/registry/config"
	"stx-registry/registry/tokenauth/tokentest"
	"stx-registry/shared/jws"
)

// issueCert returns the DER certificate of pub, issued by the key issuer
// under parent (nil: self-signed), as a CA if ca.
func issueCert(t *testing.T, pub crypto.PublicKey, issuer crypto.Signer, parent *x509.Certificate, ca bool) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "x5c test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, issuer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func pemOf(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// signWithHeader signs a pull token for alice/y with k under a header of
// the test's choice (alg is k's): what an attacker holding k can send.
func signWithHeader(t *testing.T, k tokentest.Key, header map[string]any) string {
	t.Helper()
	s, err := jws.NewSigner(k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	header["alg"] = s.Algorithm()
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(tokentest.Claims("alice", tokentest.Repo("alice/y", "pull")))
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sig, err := s.Signature([]byte(input))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

func x5c(certs ...*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, base64.StdEncoding.EncodeToString(c.Raw))
	}
	return out
}

// newControllerWith builds a Controller over the PEM bundle data.
func newControllerWith(t *testing.T, data []byte) (*Controller, error) {
	t.Helper()
	c := config.Default()
	c.TokenRealm, c.TokenService, c.TokenIssuer = tokentest.Realm, tokentest.Service, tokentest.Issuer
	c.TokenCertificate = filepath.Join(t.TempDir(), "token.pem")
	tokentest.Replace(t, c.TokenCertificate, data)
	return New(c, slog.New(slog.DiscardHandler))
}

// TestBundleCAHandsOutSigning: distribution chains a token's x5c to the
// token_certificate bundle, so a CA certificate in the bundle would let
// every key it certified sign tokens. Such a bundle is refused at load.
func TestBundleCAHandsOutSigning(t *testing.T) {
	caKey, attacker := tokentest.NewKey(t, "P-256"), tokentest.NewKey(t, "P-256")
	ca := issueCert(t, caKey.Signer.Public(), caKey.Signer, nil, true)
	leaf := issueCert(t, attacker.Signer.Public(), caKey.Signer, ca, false)
	tc, err := newControllerWith(t, pemOf(ca))
	if err == nil {
		if accepts(tc, signWithHeader(t, attacker, map[string]any{"typ": "JWT", "x5c": x5c(leaf)})) {
			t.Fatal("a key certified by the bundle's CA signed an accepted token")
		}
		t.Fatal("a bundle holding a CA certificate was accepted")
	}
	if !strings.Contains(err.Error(), "CA") {
		t.Errorf("error %q does not say the bundle holds a CA", err)
	}
}

// TestX5cMustBeABundleCertificate: a token whose header carries x5c or jwk
// is accepted only when its certificate or key is exactly one of the
// bundle's; any other chain is refused before distribution builds one.
func TestX5cMustBeABundleCertificate(t *testing.T) {
	good, attacker := tokentest.NewKey(t, "P-256"), tokentest.NewKey(t, "P-256")
	goodCert := issueCert(t, good.Signer.Public(), good.Signer, nil, false)
	tc, err := newControllerWith(t, pemOf(goodCert))
	if err != nil {
		t.Fatal(err)
	}
	// A certificate for the attacker's key, issued by the bundle's key (a
	// leaf, not a CA): Go's verifier does not ask a root to be a CA.
	chained := issueCert(t, attacker.Signer.Public(), good.Signer, goodCert, false)
	selfSigned := issueCert(t, attacker.Signer.Public(), attacker.Signer, nil, false)
	jwkOf := func(pub crypto.PublicKey, certs ...*x509.Certificate) json.RawMessage {
		kid, err := jws.KeyID(pub)
		if err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: kid, Certificates: certs})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	tests := []struct {
		name   string
		key    tokentest.Key
		header map[string]any
		want   bool
	}{
		{"kid of the bundle key", good, map[string]any{"typ": "JWT", "kid": good.KID}, true},
		{"x5c of exactly the bundle certificate", good, map[string]any{"typ": "JWT", "x5c": x5c(goodCert)}, true},
		{"x5c chained to the bundle certificate", attacker, map[string]any{"typ": "JWT", "x5c": x5c(chained, goodCert)}, false},
		{"x5c chained, leaf alone", attacker, map[string]any{"typ": "JWT", "x5c": x5c(chained)}, false},
		{"x5c self-signed, not in the bundle", attacker, map[string]any{"typ": "JWT", "x5c": x5c(selfSigned)}, false},
		{"x5c not base64", good, map[string]any{"typ": "JWT", "x5c": []string{"%%%"}}, false},
		{"jwk with a chain to the bundle certificate", attacker, map[string]any{"typ": "JWT", "jwk": jwkOf(attacker.Signer.Public(), chained, goodCert)}, false},
		{"jwk of another key", attacker, map[string]any{"typ": "JWT", "jwk": jwkOf(attacker.Signer.Public())}, false},
		{"jwk of the bundle key", good, map[string]any{"typ": "JWT", "jwk": jwkOf(good.Signer.Public())}, true},
		{"jwk of the bundle key with its certificate", good, map[string]any{"typ": "JWT", "jwk": jwkOf(good.Signer.Public(), goodCert)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := accepts(tc, signWithHeader(t, tt.key, tt.header)); got != tt.want {
				t.Errorf("accepted %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCheckKeyHeader tests the header check alone, with a CA among the
// certificates it is given (which the bundle reader refuses): even then a
// chain that only leads to a bundle certificate is refused. A refusal is
// distribution's own 401 challenge with error="invalid_token".
func TestCheckKeyHeader(t *testing.T) {
	caKey, attacker := tokentest.NewKey(t, "P-256"), tokentest.NewKey(t, "P-256")
	ca := issueCert(t, caKey.Signer.Public(), caKey.Signer, nil, true)
	leaf := issueCert(t, attacker.Signer.Public(), caKey.Signer, ca, false)
	req := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v2/alice/y/manifests/v1", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	certs := []*x509.Certificate{ca}
	b64 := base64.RawURLEncoding
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"x5c leading to the CA", signWithHeader(t, attacker, map[string]any{"x5c": x5c(leaf, ca)}), errForeignKey},
		{"x5c of the CA itself", signWithHeader(t, caKey, map[string]any{"x5c": x5c(ca)}), nil},
		{"kid only", signWithHeader(t, attacker, map[string]any{"kid": attacker.KID}), nil},
		{"empty x5c", signWithHeader(t, attacker, map[string]any{"x5c": []string{}}), errForeignKey},
		{"header not base64url", "!!!." + b64.EncodeToString([]byte("{}")) + ".x", errForeignKey},
		{"header not JSON", b64.EncodeToString([]byte("[1]")) + ".e30.x", errForeignKey},
		{"header too long", b64.EncodeToString(make([]byte, maxKeyHeaderBytes+1)) + ".e30.x", errForeignKey},
		{"jwk not a key", b64.EncodeToString([]byte(`{"jwk":{"kty":"none"}}`)) + ".e30.x", errForeignKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkKeyHeader(req(tt.tok), certs); err != tt.want {
				t.Errorf("checkKeyHeader = %v, want %v", err, tt.want)
			}
		})
	}
	if err := checkKeyHeader(httptest.NewRequest(http.MethodGet, "/v2/", nil), certs); err != nil {
		t.Errorf("no token: %v, want nil (distribution's to answer)", err)
	}

	// The refusal through the controller.
	good := tokentest.NewKey(t, "P-256")
	tc, err := newControllerWith(t, pemOf(issueCert(t, good.Signer.Public(), good.Signer, nil, false)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tc.Authorized(req(signWithHeader(t, attacker, map[string]any{"x5c": x5c(leaf)})), pullAccess)
	ch, ok := err.(auth.Challenge)
	if !ok {
		t.Fatalf("refusal %T %v, want distribution's challenge", err, err)
	}
	w := httptest.NewRecorder()
	ch.SetHeaders(req(""), w)
	if h := w.Header().Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) || !strings.Contains(h, tokentest.Realm) {
		t.Errorf("challenge %q", h)
	}
}
