package jws

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"

	"stx-registry/shared/jws/jwstest"
)

// These tests were the token server's (its issuer tests); the parts that
// test key to algorithm, kid, signing and key loading live here now.

const (
	testIssuer   = "bird-token-server"
	testAudience = "registry.local:9001"
)

// RSA key generation is slow, all the more under -race; share a few.
var testRSAKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// ecLeadingZero reports whether X or Y of k, in its fixed-size form, starts
// with a zero byte: the keys whose distribution kid differs from RFC 7638.
func ecLeadingZero(k *ecdsa.PublicKey) bool {
	p, err := k.Bytes()
	if err != nil {
		panic(err)
	}
	size := (len(p) - 1) / 2
	return p[1] == 0 || p[1+size] == 0
}

// rfc7638 is the standard EC thumbprint, with coordinates padded to the
// field size; distribution's differs for keys with leading zeros.
func rfc7638(k *ecdsa.PublicKey) string {
	p, _ := k.Bytes()
	size := (len(p) - 1) / 2
	jwk := `{"crv":"` + k.Curve.Params().Name + `","kty":"EC","x":"` + b64.EncodeToString(p[1:1+size]) +
		`","y":"` + b64.EncodeToString(p[1+size:]) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return b64.EncodeToString(sum[:])
}

// trustedKey indexes k as distribution indexes a rootcertbundle and fails
// the test unless our kid is that index.
func trustedKey(t *testing.T, k crypto.Signer) map[string]crypto.PublicKey {
	t.Helper()
	keys := jwstest.Trust(t, k)
	ours, err := KeyID(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keys[ours]; !ok {
		t.Fatalf("KeyID = %s, distribution computes %s", ours, slices.Collect(maps.Keys(keys))[0])
	}
	return keys
}

// verify checks raw with distribution's own verifier.
func verify(raw, alg string, keys map[string]crypto.PublicKey) (*token.ClaimSet, error) {
	return jwstest.Verify(raw, alg, testIssuer, testAudience, keys)
}

// testAccess is one entry of the access claim.
type testAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// signAndVerify signs claims with k and checks that distribution accepts
// the token with the claims we put in.
func signAndVerify(t *testing.T, k crypto.Signer, wantAlg string) {
	t.Helper()
	keys := trustedKey(t, k)
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	if s.Algorithm() != wantAlg {
		t.Fatalf("Algorithm() = %s, want %s", s.Algorithm(), wantAlg)
	}
	access := []testAccess{
		{"repository", "user1/x", []string{"pull", "push"}},
		{"registry", "catalog", []string{"*"}},
	}
	now := time.Now()
	payload, err := json.Marshal(map[string]any{
		"iss": testIssuer, "sub": "user1", "aud": testAudience,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Unix(), "iat": now.Unix(),
		"jti": "j1", "access": access,
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	c, err := verify(raw, wantAlg, keys)
	if err != nil {
		t.Fatalf("distribution rejects a %s token: %v", wantAlg, err)
	}
	if c.Issuer != testIssuer || c.Subject != "user1" || !reflect.DeepEqual([]string(c.Audience), []string{testAudience}) ||
		c.JWTID != "j1" || c.IssuedAt != now.Unix() || c.NotBefore != now.Unix() {
		t.Fatalf("claims %+v do not match", c)
	}
	var got []testAccess
	for _, ra := range c.Access {
		got = append(got, testAccess{ra.Type, ra.Name, ra.Actions})
	}
	if !reflect.DeepEqual(got, access) {
		t.Fatalf("access round trip gave %v, want %v", got, access)
	}
}

// TestVerifiedByDistribution signs with hundreds of generated keys of
// every supported kind and has distribution v3.1.2's verifier accept each
// token, keyed by its own thumbprint of a certificate for the key.
func TestVerifiedByDistribution(t *testing.T) {
	const (
		wantZeros    = 4    // keys with a leading zero coordinate, per curve
		maxGenerated = 8000 // about 60 zero keys expected for P-256 or P-384
	)
	// Full sign/verify round trips per curve, besides the zero keys. P-384
	// and P-521 have no assembly and are about 15 and 40 times slower than
	// P-256 under -race, so they get fewer; every generated key, hundreds
	// of them, still has its kid compared with distribution's.
	curves := []struct {
		curve    elliptic.Curve
		alg      string
		toVerify int
	}{
		{elliptic.P256(), "ES256", 200},
		{elliptic.P384(), "ES384", 30},
		{elliptic.P521(), "ES512", 20},
	}
	for _, tc := range curves {
		curve, alg, verifyPerCurve := tc.curve, tc.alg, tc.toVerify
		name := curve.Params().Name
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			generated, verified, zeros, kidDiffers := 0, 0, 0, 0
			for ; zeros < wantZeros || verified < verifyPerCurve; generated++ {
				if generated == maxGenerated {
					t.Fatalf("generated %d keys, found only %d with a leading zero", generated, zeros)
				}
				k, err := ecdsa.GenerateKey(curve, rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				zero := ecLeadingZero(&k.PublicKey)
				ours, err := KeyID(&k.PublicKey)
				if err != nil {
					t.Fatal(err)
				}
				// Every key: the same kid as distribution, cheaply.
				if theirs := token.GetJWKThumbprint(&k.PublicKey); ours != theirs {
					t.Fatalf("KeyID = %s, distribution computes %s", ours, theirs)
				}
				if zero && ours != rfc7638(&k.PublicKey) {
					kidDiffers++
				}
				// Zero keys and the first verifyPerCurve: the full round trip.
				if zero && zeros < wantZeros || verified < verifyPerCurve {
					signAndVerify(t, k, alg)
					verified++
					if zero {
						zeros++
					}
				}
			}
			if zeros < wantZeros || kidDiffers < wantZeros {
				t.Fatalf("verified %d keys with a leading zero (%d with a non-RFC 7638 kid), want %d", zeros, kidDiffers, wantZeros)
			}
			t.Logf("%s: compared %d kids, verified %d tokens, %d from keys with a leading zero coordinate", name, generated, verified, zeros)
		})
	}
	t.Run("Ed25519", func(t *testing.T) {
		t.Parallel()
		for range 100 {
			_, k, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			signAndVerify(t, k, "EdDSA")
		}
	})
	t.Run("RSA", func(t *testing.T) {
		t.Parallel()
		for _, k := range testRSAKeys() {
			signAndVerify(t, k, "RS256")
		}
	})
}

// TestSignLayout checks the exact header we produce and that the payload is
// carried unchanged.
func TestSignLayout(t *testing.T) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := KeyID(k.Public())
	if s.KeyID() != kid || !k.Public().(ed25519.PublicKey).Equal(s.Public()) {
		t.Fatalf("KeyID() = %s, Public() = %v", s.KeyID(), s.Public())
	}
	payload := []byte(`{"sub":"user1"}`)
	raw, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	header, _ := b64.DecodeString(parts[0])
	if want := `{"typ":"JWT","alg":"EdDSA","kid":"` + kid + `"}`; string(header) != want {
		t.Fatalf("header %s, want %s", header, want)
	}
	if body, _ := b64.DecodeString(parts[1]); !bytes.Equal(body, payload) {
		t.Fatalf("payload %s, want %s", body, payload)
	}
	sig, _ := b64.DecodeString(parts[2])
	if !ed25519.Verify(k.Public().(ed25519.PublicKey), []byte(parts[0]+"."+parts[1]), sig) {
		t.Error("signature does not verify")
	}
}

// TestAlgorithm covers the keys refused by Algorithm and NewSigner (from
// the token server's issuer tests).
func TestAlgorithm(t *testing.T) {
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []crypto.Signer{p224, rsa1024} {
		if _, err := NewSigner(k); err == nil {
			t.Errorf("NewSigner(%T) accepted", k)
		}
	}
	if _, err := Algorithm(&rsa1024.PublicKey); err == nil || !strings.Contains(err.Error(), "use at least 2048") {
		t.Errorf("Algorithm(RSA 1024): %v, want a key size error", err)
	}
	if _, err := KeyID(p224.Public()); err != nil {
		t.Errorf("KeyID works for any EC key: %v", err)
	}
	if _, err := KeyID("not a key"); err == nil {
		t.Error("KeyID accepted a string")
	}
	if _, err := Algorithm(&otherKey{}); err == nil {
		t.Error("Algorithm accepted an unknown key type")
	}
}

type otherKey struct{}

// pemFile encodes blocks of the given types and DER contents.
func pemFile(blocks ...*pem.Block) []byte {
	var b bytes.Buffer
	for _, bl := range blocks {
		pem.Encode(&b, bl)
	}
	return b.Bytes()
}

func pkcs8(t testing.TB, k any) *pem.Block {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}

func sec1(t testing.TB, k *ecdsa.PrivateKey) *pem.Block {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
}

func TestLoadSigningKey(t *testing.T) {
	dir := t.TempDir()
	rk := testRSAKeys()[0]
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	certDER, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1)},
		&x509.Certificate{SerialNumber: big.NewInt(1)}, p256.Public(), p256)
	cert := &pem.Block{Type: "CERTIFICATE", Bytes: certDER}
	params := &pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}}
	encrypted := sec1(t, p256)
	encrypted.Headers = map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}

	tests := []struct {
		name string
		data []byte
		mode os.FileMode
		alg  string // empty: an error is expected
		pub  crypto.PublicKey
	}{
		{"pkcs1 rsa", pemFile(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), 0o600, "RS256", &rk.PublicKey},
		{"pkcs8 rsa", pemFile(pkcs8(t, rk)), 0o600, "RS256", &rk.PublicKey},
		{"sec1 p256", pemFile(sec1(t, p256)), 0o600, "ES256", &p256.PublicKey},
		{"sec1 p256 with openssl ecparam block", pemFile(params, sec1(t, p256)), 0o400, "ES256", &p256.PublicKey},
		{"sec1 p384", pemFile(sec1(t, p384)), 0o600, "ES384", &p384.PublicKey},
		{"pkcs8 p521", pemFile(pkcs8(t, p521)), 0o600, "ES512", &p521.PublicKey},
		{"pkcs8 ed25519", pemFile(pkcs8(t, ed)), 0o600, "EdDSA", ed.Public()},
		{"key then certificate", pemFile(pkcs8(t, p256), cert), 0o600, "ES256", &p256.PublicKey},
		{"certificate then key", pemFile(cert, sec1(t, p256)), 0o600, "ES256", &p256.PublicKey},
		{"group readable", pemFile(sec1(t, p256)), 0o640, "", nil},
		{"world readable", pemFile(sec1(t, p256)), 0o604, "", nil},
		{"garbage", []byte("this is not a key\n"), 0o600, "", nil},
		{"empty", nil, 0o600, "", nil},
		{"certificate only", pemFile(cert), 0o600, "", nil},
		{"bad der", pemFile(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600, "", nil},
		{"key type mismatch", pemFile(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: sec1(t, p256).Bytes}), 0o600, "", nil},
		{"rsa 1024", pemFile(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsa1024)}), 0o600, "", nil},
		{"p224", pemFile(sec1(t, p224)), 0o600, "", nil},
		{"p224 pkcs8", pemFile(pkcs8(t, p224)), 0o600, "", nil},
		{"encrypted pem", pemFile(encrypted), 0o600, "", nil},
		{"encrypted pkcs8", pemFile(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}}), 0o600, "", nil},
		{"other private key type", pemFile(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte{0}}), 0o600, "", nil},
		{"two keys", pemFile(sec1(t, p256), pkcs8(t, ed)), 0o600, "", nil},
		{"too large", append(pemFile(sec1(t, p256)), make([]byte, MaxKeyFileBytes)...), 0o600, "", nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "key"+string(rune('a'+i))+".pem")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			k, err := LoadSigningKey(path)
			if tt.alg == "" {
				if err == nil {
					t.Fatal("accepted")
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				if tt.mode&0o077 != 0 && !strings.Contains(err.Error(), "chmod 600") {
					t.Errorf("error %q does not say to chmod 600", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if alg, _ := Algorithm(k.Public()); alg != tt.alg {
				t.Errorf("algorithm %s, want %s", alg, tt.alg)
			}
			if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.pub) {
				t.Error("loaded another key")
			}
		})
	}
	for _, path := range []string{filepath.Join(dir, "missing.pem"), dir} {
		if _, err := LoadSigningKey(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadSigningKey(%s): %v, want an error naming it", path, err)
		}
	}
}

func FuzzParseSigningKey(f *testing.F) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk := testRSAKeys()[0]
	f.Add(pemFile(sec1(f, p256)))
	f.Add(pemFile(pkcs8(f, p521)))
	f.Add(pemFile(pkcs8(f, ed)))
	f.Add(pemFile(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}))
	f.Add(pemFile(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8}}, sec1(f, p256)))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseSigningKey(data)
		if err != nil {
			return
		}
		if _, err := Algorithm(k.Public()); err != nil {
			t.Fatalf("parsed an unsupported key: %v", err)
		}
		if _, err := KeyID(k.Public()); err != nil {
			t.Fatalf("no kid for a parsed key: %v", err)
		}
	})
}
