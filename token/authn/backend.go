package authn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"stx-registry/token/access"
)

// Credentials are what a client presented in one token request. The password
// is a secret: it is never logged, echoed or compared with ==.
type Credentials struct {
	User     string
	Password string
	Client   netip.Addr // the peer address, for audit lines and backoff
}

// An Authenticator checks a user's credentials against one backend (the
// users file, Keystone). Decorators such as CredentialCache wrap any
// Authenticator.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (access.Identity, error)
}

var (
	// ErrBadCredentials means the user is unknown or the password is wrong.
	// The server answers 401 and does not say which.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrUnavailable wraps a backend failure that is not the client's fault;
	// the server answers 503.
	ErrUnavailable = errors.New("authentication backend unavailable")
)

// RetryAfterError means "slow down": the backend answered 429, or the
// server's own backoff holds this user or address. The server answers 429
// with a Retry-After header.
type RetryAfterError struct {
	After time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("too many attempts, retry after %s", e.After)
}

// A Checker reports whether a backend can answer right now; GET /readyz
// asks every backend that implements it.
type Checker interface {
	Ready(ctx context.Context) error
}
