package tokenauth

// The one thing this package reads of a token: the JOSE header's x5c and
// jwk. Distribution verifies an x5c chain (or a jwk's) against the
// token_certificate bundle as a pool of roots, so a chain that merely leads
// to a bundle certificate would be trusted. Here a token that names its key
// by x5c or jwk must name exactly a bundle certificate or key; the bundle
// itself holds no CA (shared/jws refuses one at load). Tokens that name
// their key by kid only, as stx-token-server's do, are distribution's to
// check.

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/go-jose/go-jose/v4"
)

// maxKeyHeaderBytes bounds the JOSE header read here: a header with an x5c
// of a few certificates fits; a longer one is refused.
const maxKeyHeaderBytes = 16 << 10

// errForeignKey is why a token is refused here; it is logged, not sent.
var errForeignKey = errors.New("token header names a certificate or key (x5c or jwk) that is not exactly one of token_certificate's")

// checkKeyHeader returns errForeignKey when the bearer token of r carries
// x5c or jwk not exactly in certs, or a header that cannot be read the way
// go-jose reads it (so nothing this check did not see reaches distribution).
// A request without a bearer token is left to distribution.
func checkKeyHeader(r *http.Request, certs []*x509.Certificate) error {
	prefix, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || token == "" || !strings.EqualFold(prefix, "bearer") {
		return nil
	}
	seg, _, _ := strings.Cut(token, ".")
	if len(seg) > base64.RawURLEncoding.EncodedLen(maxKeyHeaderBytes) {
		return errForeignKey
	}
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errForeignKey
	}
	var header map[string]json.RawMessage // exact, case-sensitive keys, like go-jose's
	if err := json.Unmarshal(raw, &header); err != nil {
		return errForeignKey
	}
	if v, ok := header["x5c"]; ok && !bundleChain(v, certs) {
		return errForeignKey
	}
	if v, ok := header["jwk"]; ok && !bundleJWK(v, certs) {
		return errForeignKey
	}
	return nil
}

// bundleChain reports whether v, an x5c value, starts with exactly one of
// certs: distribution takes the signing key from that first certificate.
func bundleChain(v json.RawMessage, certs []*x509.Certificate) bool {
	var chain []string
	if err := json.Unmarshal(v, &chain); err != nil || len(chain) == 0 {
		return false
	}
	leaf, err := base64.StdEncoding.DecodeString(chain[0]) // as go-jose decodes x5c
	if err != nil {
		return false
	}
	for _, c := range certs {
		if bytes.Equal(leaf, c.Raw) {
			return true
		}
	}
	return false
}

// bundleJWK reports whether v, a jwk value, is the public key of one of
// certs and, if it carries a certificate chain, starts with that very
// certificate.
func bundleJWK(v json.RawMessage, certs []*x509.Certificate) bool {
	var jwk jose.JSONWebKey // the parser distribution's verifier uses
	if err := jwk.UnmarshalJSON(v); err != nil {
		return false
	}
	pub, ok := jwk.Key.(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return false
	}
	for _, c := range certs {
		if pub.Equal(c.PublicKey) && (len(jwk.Certificates) == 0 || bytes.Equal(jwk.Certificates[0].Raw, c.Raw)) {
			return true
		}
	}
	return false
}

// refuse answers a request refused by checkKeyHeader the way distribution
// answers a malformed token: its own 401 challenge, with
// error="invalid_token", built by inner from a copy of r whose token
// cannot parse.
func refuseKeyHeader(inner auth.AccessController, r *http.Request, access []auth.Access, log *slog.Logger, why error) (*auth.Grant, error) {
	log.Info("token refused", "err", why, "client", r.RemoteAddr)
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer refused")
	if g, err := inner.Authorized(r2, access...); err != nil || g == nil {
		return nil, err
	}
	return nil, why // cannot happen: "refused" is no JWT
}
