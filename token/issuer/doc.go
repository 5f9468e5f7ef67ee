// Package issuer owns the access tokens: the signing keys in use (the first
// signs, all are published during a rotation), the claim layout, and the
// JWKS of the public keys. Which algorithm a key signs with, its kid, the
// signature itself and loading a key file are shared/jws's. It knows
// nothing about HTTP.
package issuer
