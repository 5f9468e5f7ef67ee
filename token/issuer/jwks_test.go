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
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestJWKS has distribution's verifier accept tokens from every kind of key
// through the JWKS we print, indexed the way its jwks option indexes them
// (by "kid"). EC keys are generated until one has a leading zero byte, the
// case where distribution's kid differs from RFC 7638.
func TestJWKS(t *testing.T) {
	var keys []crypto.Signer
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		for {
			k, err := ecdsa.GenerateKey(c, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := k.PublicKey.Bytes()
			size := (len(p) - 1) / 2
			if c != elliptic.P256() || p[1] == 0 || p[1+size] == 0 {
				keys = append(keys, k)
				break
			}
		}
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	keys = append(keys, rk, ek)
	pubs := make([]crypto.PublicKey, len(keys))
	for i, k := range keys {
		pubs[i] = k.Public()
	}
	out, err := JWKS(pubs)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(out, &set); err != nil {
		t.Fatalf("go-jose cannot read our JWKS: %v\n%s", err, out)
	}
	if len(set.Keys) != len(keys) {
		t.Fatalf("%d keys, want %d", len(set.Keys), len(keys))
	}
	trusted := map[string]crypto.PublicKey{}
	for _, k := range set.Keys { // what distribution does with its jwks option
		trusted[k.KeyID] = k.Public()
	}
	for _, k := range keys {
		iss, err := New(testIssuer, DefaultTokenTTL, k)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := iss.Sign("user1", testAudience, nil, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verify(tok.Raw, iss.Algorithm(), trusted); err != nil {
			t.Errorf("%s: distribution rejects a token through the JWKS: %v", iss.Algorithm(), err)
		}
	}
	if bytes.Contains(out, []byte(`"d"`)) {
		t.Error("the JWKS holds a private key part")
	}
}
