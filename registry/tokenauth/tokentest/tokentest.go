// Package tokentest makes what registry tests need to present tokens:
// signing keys of every supported kind, self-signed certificates and
// token_certificate bundles for them, claims, and tokens signed through
// shared/jws, the same code the token server signs with.
package tokentest

import (
	"crypto"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"stx-registry/shared/files"
	"stx-registry/shared/jws"
	"stx-registry/shared/tlsconf/tlstest"
)

// The token settings tests configure the registry with.
const (
	Issuer  = "bird-token-server"
	Service = "registry.local:9001"
	Realm   = "https://registry.local:9002/token/"
)

// Key is a signing key and the kid distribution computes for it.
type Key struct {
	Signer crypto.Signer
	KID    string
}

// keyKinds maps the JOSE-style names these tests use to tlstest's.
var keyKinds = map[string]string{"P-256": "p256", "P-384": "p384", "P-521": "p521", "RSA": "rsa2048", "Ed25519": "ed25519"}

// NewKey returns a new key of kind: P-256, P-384, P-521, RSA or Ed25519.
func NewKey(t testing.TB, kind string) Key {
	t.Helper()
	tk, ok := keyKinds[kind]
	if !ok {
		t.Fatalf("unknown key kind %q", kind)
	}
	s := tlstest.Key(t, tk)
	kid, err := jws.KeyID(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	return Key{Signer: s, KID: kid}
}

// CertFor returns a PEM certificate for pub signed by k.
func CertFor(t testing.TB, pub any, k Key) []byte {
	t.Helper()
	return tlstest.Certificate(t, pub, k.Signer)
}

// SelfSigned returns a PEM self-signed certificate for k.
func SelfSigned(t testing.TB, k Key) []byte { return CertFor(t, k.Signer.Public(), k) }

// Bundle returns the PEM certificates of keys, concatenated.
func Bundle(t testing.TB, keys ...Key) []byte {
	t.Helper()
	var data []byte
	for _, k := range keys {
		data = append(data, SelfSigned(t, k)...)
	}
	return data
}

// WriteBundle writes the bundle of keys into a temporary file and returns
// its path.
func WriteBundle(t testing.TB, keys ...Key) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token.pem")
	if err := os.WriteFile(path, Bundle(t, keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Replace writes data to path the way an operator should replace
// token_certificate: a temporary file in the same directory, then
// rename(2).
func Replace(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := files.WriteAtomic(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Access is one entry of the access claim.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Repo is repository access to name.
func Repo(name string, actions ...string) Access {
	return Access{Type: "repository", Name: name, Actions: actions}
}

// Claims are valid claims for subject with access.
func Claims(subject string, access ...Access) map[string]any {
	now := time.Now()
	if access == nil {
		access = []Access{}
	}
	return map[string]any{
		"iss":    Issuer,
		"sub":    subject,
		"aud":    Service,
		"exp":    now.Add(5 * time.Minute).Unix(),
		"nbf":    now.Add(-10 * time.Second).Unix(),
		"iat":    now.Unix(),
		"jti":    rand.Text(),
		"access": access,
	}
}

// Sign signs claims with k through jws.Signer, as the token server does.
func Sign(t testing.TB, k Key, claims map[string]any) string {
	t.Helper()
	s, err := jws.NewSigner(k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
