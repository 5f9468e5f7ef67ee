package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"
)

// A test-only JWS signer, in the shape a token server produces, so the
// tests exercise distribution's real verifier.

const (
	testIssuer  = "bird-token-server"
	testService = "registry.local:9001"
	testRealm   = "https://registry.local:9002/token/"
)

// testKey is a signing key and the kid distribution computes for it.
type testKey struct {
	signer crypto.Signer
	kid    string
}

func newTestKey(t testing.TB, kind string) testKey {
	t.Helper()
	var (
		s   crypto.Signer
		err error
	)
	switch kind {
	case "P-256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "P-384":
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "P-521":
		s, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "RSA":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "Ed25519":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	// kid exactly as distribution indexes rootcertbundle keys.
	return testKey{signer: s, kid: token.GetJWKThumbprint(s.Public())}
}

// selfSigned returns a PEM self-signed certificate for k.
func selfSigned(t testing.TB, k testKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "stx-token-server test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.signer.Public(), k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeBundle writes PEM certificates for keys into a temp file.
func writeBundle(t testing.TB, keys ...testKey) string {
	t.Helper()
	var data []byte
	for _, k := range keys {
		data = append(data, selfSigned(t, k)...)
	}
	path := filepath.Join(t.TempDir(), "token.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type testAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func repo(name string, actions ...string) testAccess {
	return testAccess{Type: "repository", Name: name, Actions: actions}
}

// testClaims are valid claims for subject with access.
func testClaims(subject string, access ...testAccess) map[string]any {
	now := time.Now()
	if access == nil {
		access = []testAccess{}
	}
	return map[string]any{
		"iss":    testIssuer,
		"sub":    subject,
		"aud":    testService,
		"exp":    now.Add(5 * time.Minute).Unix(),
		"nbf":    now.Add(-10 * time.Second).Unix(),
		"iat":    now.Unix(),
		"jti":    rand.Text(),
		"access": access,
	}
}

// signJWT signs claims with k under alg, with kid in the header.
func signJWT(t testing.TB, k testKey, alg string, claims map[string]any) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"typ": "JWT", "alg": alg, "kid": k.kid})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(body)
	return input + "." + enc.EncodeToString(jwsSign(t, k.signer, alg, []byte(input)))
}

func jwsSign(t testing.TB, s crypto.Signer, alg string, input []byte) []byte {
	t.Helper()
	var (
		sig []byte
		err error
	)
	switch alg {
	case "ES256", "ES384", "ES512":
		k := s.(*ecdsa.PrivateKey)
		var digest []byte
		switch alg {
		case "ES256":
			d := sha256.Sum256(input)
			digest = d[:]
		case "ES384":
			d := sha512.Sum384(input)
			digest = d[:]
		default:
			d := sha512.Sum512(input)
			digest = d[:]
		}
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, k, digest)
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = append(r.FillBytes(make([]byte, size)), ss.FillBytes(make([]byte, size))...)
	case "RS256":
		d := sha256.Sum256(input)
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.(*rsa.PrivateKey), crypto.SHA256, d[:])
	case "RS512":
		d := sha512.Sum512(input)
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.(*rsa.PrivateKey), crypto.SHA512, d[:])
	case "PS256":
		d := sha256.Sum256(input)
		sig, err = rsa.SignPSS(rand.Reader, s.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "EdDSA":
		sig = ed25519.Sign(s.(ed25519.PrivateKey), input)
	case "HS256":
		// The classic confusion attack: HMAC keyed with public material.
		der, _ := x509.MarshalPKIXPublicKey(s.Public())
		m := hmac.New(sha256.New, der)
		m.Write(input)
		sig = m.Sum(nil)
	default:
		t.Fatalf("unknown alg %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
