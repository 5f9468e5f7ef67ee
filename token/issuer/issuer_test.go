package issuer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"

	"stx-registry/shared/jws"
	"stx-registry/shared/jws/jwstest"
	"stx-registry/token/access"
)

const (
	testIssuer   = "bird-token-server"
	testAudience = "registry.local:9001"
)

// These tests cover what the Issuer adds to shared/jws: the claims, their
// layout and lifetime, and the key list. Key to algorithm, kid, signature
// and key loading are tested, with distribution's verifier and hundreds of
// generated keys, in shared/jws.

// verify checks raw with distribution's own verifier.
func verify(raw, alg string, keys map[string]crypto.PublicKey) (*token.ClaimSet, error) {
	return jwstest.Verify(raw, alg, testIssuer, testAudience, keys)
}

// TestIssuerVerifiedByDistribution issues a token with a key of every
// supported kind and checks that distribution v3.1.2's verifier accepts it
// with the claims we put in, our own stx_refused claim among them.
func TestIssuerVerifiedByDistribution(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	granted := []access.Access{
		{Type: "repository", Name: "user1/x", Actions: []string{"pull", "push"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}
	refused := []access.Refusal{{Type: "repository", Name: "user2/x", Actions: []string{"pull"}, Reason: "user1 may not pull from user2/x"}}
	for _, tc := range []struct {
		key     crypto.Signer
		wantAlg string
	}{{p256, "ES256"}, {p384, "ES384"}, {p521, "ES512"}, {ed, "EdDSA"}, {rk, "RS256"}} {
		t.Run(tc.wantAlg, func(t *testing.T) {
			iss, err := New(testIssuer, DefaultTokenTTL, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if iss.Algorithm() != tc.wantAlg {
				t.Fatalf("Algorithm() = %s, want %s", iss.Algorithm(), tc.wantAlg)
			}
			now := time.Now()
			tok, err := iss.Sign("user1", testAudience, granted, refused, now)
			if err != nil {
				t.Fatal(err)
			}
			c, err := verify(tok.Raw, tc.wantAlg, jwstest.Trust(t, tc.key))
			if err != nil {
				t.Fatalf("distribution rejects a %s token: %v", tc.wantAlg, err)
			}
			if c.Issuer != testIssuer || c.Subject != "user1" || !reflect.DeepEqual([]string(c.Audience), []string{testAudience}) ||
				c.JWTID != tok.ID || c.IssuedAt != now.Unix() || c.NotBefore != now.Unix() ||
				c.Expiration != now.Add(DefaultTokenTTL).Unix() {
				t.Fatalf("claims %+v do not match token %+v", c, tok)
			}
			var got []access.Access
			for _, ra := range c.Access {
				got = append(got, access.Access{Type: ra.Type, Name: ra.Name, Actions: ra.Actions})
			}
			if !reflect.DeepEqual(got, granted) {
				t.Fatalf("access round trip gave %v, want %v", got, granted)
			}
		})
	}
}

// TestIssuerValidity checks that distribution rejects tokens used outside
// their lifetime plus its fixed 60 s leeway, and accepts them within it.
func TestIssuerValidity(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys := jwstest.Trust(t, k)
	iss, err := New(testIssuer, MinTokenTTL, k)
	if err != nil {
		t.Fatal(err)
	}
	margin := 30 * time.Second // keeps the test clear of the edges
	tests := []struct {
		name   string
		offset time.Duration // how far from the real now the token was issued
		ok     bool
	}{
		{"fresh", 0, true},
		{"expired within leeway", -(MinTokenTTL + token.Leeway - margin), true},
		{"expired", -(MinTokenTTL + token.Leeway + margin), false},
		{"long expired", -24 * time.Hour, false},
		{"not yet valid within leeway", token.Leeway - margin, true},
		{"not yet valid", token.Leeway + margin, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := iss.Sign("user1", testAudience, nil, nil, time.Now().Add(tt.offset))
			if err != nil {
				t.Fatal(err)
			}
			_, err = verify(tok.Raw, "ES256", keys)
			if (err == nil) != tt.ok {
				t.Fatalf("verify: %v, want ok=%v", err, tt.ok)
			}
		})
	}
	// And the verifier is not just accepting anything: wrong audience,
	// wrong issuer, another key, a changed payload.
	tok, _ := iss.Sign("user1", "other:9001", nil, nil, time.Now())
	if _, err := verify(tok.Raw, "ES256", keys); err == nil {
		t.Error("token for another audience accepted")
	}
	other, _ := New("someone-else", MinTokenTTL, k)
	tok, _ = other.Sign("user1", testAudience, nil, nil, time.Now())
	if _, err := verify(tok.Raw, "ES256", keys); err == nil {
		t.Error("token from another issuer accepted")
	}
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := verify(tok.Raw, "ES256", jwstest.Trust(t, k2)); err == nil {
		t.Error("token accepted without its key")
	}
	tok, _ = iss.Sign("user1", testAudience, nil, nil, time.Now())
	parts := strings.Split(tok.Raw, ".")
	body, _ := b64.DecodeString(parts[1])
	body = bytes.Replace(body, []byte(`"access":[]`), []byte(`"access":[{"type":"registry","name":"catalog","actions":["*"]}]`), 1)
	forged := parts[0] + "." + b64.EncodeToString(body) + "." + parts[2]
	if _, err := verify(forged, "ES256", keys); err == nil {
		t.Error("token with a changed payload accepted")
	}
}

// TestSignLayout checks the exact header and claims we produce.
func TestSignLayout(t *testing.T) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	iss, err := New(testIssuer, 2*time.Minute, k)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := jws.KeyID(k.Public())
	now := time.Unix(1700000000, 123)
	seen := map[string]bool{}
	for range 100 {
		tok, err := iss.Sign("user1", testAudience, nil, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok.Raw, ".")
		if len(parts) != 3 {
			t.Fatalf("token has %d parts", len(parts))
		}
		header, _ := b64.DecodeString(parts[0])
		if want := `{"typ":"JWT","alg":"EdDSA","kid":"` + kid + `"}`; string(header) != want {
			t.Fatalf("header %s, want %s", header, want)
		}
		body, _ := b64.DecodeString(parts[1])
		want := `{"iss":"bird-token-server","sub":"user1","aud":"registry.local:9001","exp":1700000120,"nbf":1700000000,"iat":1700000000,"jti":"` + tok.ID + `","access":[]}`
		if string(body) != want {
			t.Fatalf("claims %s, want %s", body, want)
		}
		if id, err := b64.DecodeString(tok.ID); err != nil || len(id) < 16 {
			t.Fatalf("jti %q is not 16+ base64url bytes", tok.ID)
		}
		if seen[tok.ID] {
			t.Fatalf("jti %s repeated", tok.ID)
		}
		seen[tok.ID] = true
		if !tok.IssuedAt.Equal(time.Unix(1700000000, 0)) || !tok.ExpiresAt.Equal(time.Unix(1700000120, 0)) {
			t.Fatalf("token times %v, %v", tok.IssuedAt, tok.ExpiresAt)
		}
	}
	var c map[string]any
	tok, _ := iss.Sign("user1", testAudience, []access.Access{{Type: "repository", Name: "a/b", Actions: []string{"pull"}}}, nil, now)
	body, _ := b64.DecodeString(strings.Split(tok.Raw, ".")[1])
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	if got := c["access"]; !reflect.DeepEqual(got, []any{map[string]any{"type": "repository", "name": "a/b", "actions": []any{"pull"}}}) {
		t.Errorf("access claim %v", got)
	}
	if got, ok := c["stx_refused"]; ok {
		t.Errorf("stx_refused claim %v without refusals, want none", got)
	}
	refused := []access.Refusal{{Type: "repository", Name: "c/d", Actions: []string{"push"}, Reason: "user1 may not push to c/d"}}
	tok, _ = iss.Sign("user1", testAudience, nil, refused, now)
	body, _ = b64.DecodeString(strings.Split(tok.Raw, ".")[1])
	c = nil
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	if got := c["stx_refused"]; !reflect.DeepEqual(got, []any{map[string]any{"type": "repository", "name": "c/d", "actions": []any{"push"}, "reason": "user1 may not push to c/d"}}) {
		t.Errorf("stx_refused claim %v", got)
	}
	if _, err := iss.Sign("user1", "", nil, nil, now); err == nil {
		t.Error("empty audience accepted")
	}
	if iss.TTL() != 2*time.Minute {
		t.Errorf("TTL() = %v", iss.TTL())
	}
}

func TestNewIssuer(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		issuer string
		ttl    time.Duration
		keys   []crypto.Signer
	}{
		{"empty name", "", DefaultTokenTTL, []crypto.Signer{ec}},
		{"long name", strings.Repeat("x", maxIssuerBytes+1), DefaultTokenTTL, []crypto.Signer{ec}},
		{"short ttl", testIssuer, MinTokenTTL - time.Second, []crypto.Signer{ec}},
		{"long ttl", testIssuer, MaxTokenTTL + time.Second, []crypto.Signer{ec}},
		{"no key", testIssuer, DefaultTokenTTL, nil},
		{"P-224", testIssuer, DefaultTokenTTL, []crypto.Signer{p224}},
		{"RSA 1024", testIssuer, DefaultTokenTTL, []crypto.Signer{rsa1024}},
		{"bad second key", testIssuer, DefaultTokenTTL, []crypto.Signer{ec, p224}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.issuer, tt.ttl, tt.keys...); err == nil {
				t.Error("accepted")
			}
		})
	}
	// Rotation: the first key signs, all are kept.
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	iss, err := New(testIssuer, MaxTokenTTL, ed, ec)
	if err != nil {
		t.Fatal(err)
	}
	if iss.Algorithm() != "EdDSA" {
		t.Errorf("Algorithm() = %s, want the first key's", iss.Algorithm())
	}
	if pubs := iss.PublicKeys(); len(pubs) != 2 || !ed.Public().(ed25519.PublicKey).Equal(pubs[0]) || !ec.PublicKey.Equal(pubs[1]) {
		t.Errorf("PublicKeys() = %v", pubs)
	}
}

func BenchmarkSign(b *testing.B) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	granted := []access.Access{{Type: "repository", Name: "user1/x", Actions: []string{"pull", "push"}}}
	for _, k := range []crypto.Signer{p256, p384, ed} {
		iss, err := New(testIssuer, DefaultTokenTTL, k)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(iss.Algorithm(), func(b *testing.B) {
			for b.Loop() {
				if _, err := iss.Sign("user1", testAudience, granted, nil, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
