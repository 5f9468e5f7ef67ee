// Package authn owns password checking: the Authenticator interface and its
// errors, the chain of layers around a backend (Chain: credential cache,
// brute-force backoff, backend call counting), the users file backend
// (bcrypt) and the UserChecker that re-checks a refresh token's user.
// Keystone, the other backend, lives in its own package.
package authn
