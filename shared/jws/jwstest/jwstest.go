// Package jwstest gives tests distribution's side of a token: the keys it
// trusts from a token_certificate bundle and its verifier. The token
// server's issuer tests and shared/jws's tests check their tokens with it,
// so that what the registry accepts is decided by distribution's own code.
// It is for tests only; no daemon links it.
package jwstest

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
)

// Trust does what distribution does with a rootcertbundle: it parses a
// (here self-signed) certificate for k and indexes its public key by
// token.GetJWKThumbprint, the kid a token must carry to be checked with it.
func Trust(t testing.TB, k crypto.Signer) map[string]crypto.PublicKey {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "registry.local"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.PublicKey{token.GetJWKThumbprint(cert.PublicKey): cert.PublicKey}
}

// Verify checks raw with distribution's own verifier, as its token access
// controller would with alg pinned, issuer trusted and audience accepted.
func Verify(raw, alg, issuer, audience string, keys map[string]crypto.PublicKey) (*token.ClaimSet, error) {
	tok, err := token.NewToken(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return nil, err
	}
	return tok.Verify(token.VerifyOptions{
		TrustedIssuers:    []string{issuer},
		AcceptedAudiences: []string{audience},
		Roots:             x509.NewCertPool(),
		TrustedKeys:       keys,
	})
}
