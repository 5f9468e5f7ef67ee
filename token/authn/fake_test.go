package authn

import (
	"context"
	"sync/atomic"

	"stx-registry/token/access"
)

// fakeAuth is an Authenticator with fixed users, counting its calls.
type fakeAuth struct {
	users map[string]string
	err   error // returned for every call when set
	calls atomic.Int64
}

func (f *fakeAuth) Authenticate(_ context.Context, c Credentials) (access.Identity, error) {
	f.calls.Add(1)
	if f.err != nil {
		return access.Identity{}, f.err
	}
	if pw, ok := f.users[c.User]; ok && pw == c.Password {
		return access.Identity{Name: c.User}, nil
	}
	return access.Identity{}, ErrBadCredentials
}
