package main

import (
	"context"
	"errors"
	"net/netip"
)

// Credentials are what a client presented in one token request. The password
// is a secret: it is never logged, echoed or compared with ==.
type Credentials struct {
	User     string
	Password string
	Client   netip.Addr // the peer address, for audit lines and (later) backoff
}

// An Authenticator checks a user's credentials against one backend (the
// users file, Keystone). Decorators such as CredentialCache wrap any
// Authenticator.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (Identity, error)
}

var (
	// ErrBadCredentials means the user is unknown or the password is wrong.
	// The server answers 401 and does not say which.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrUnavailable wraps a backend failure that is not the client's fault;
	// the server answers 503.
	ErrUnavailable = errors.New("authentication backend unavailable")
)
