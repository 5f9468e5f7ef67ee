// Package issuer owns the access tokens: the signing keys (loading, the
// key → JWS algorithm rule, kid), the claim layout, signing, and the JWKS
// of the public keys. It knows nothing about HTTP.
package issuer
