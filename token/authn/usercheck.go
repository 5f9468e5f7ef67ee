package authn

import (
	"context"
	"errors"
)

// ErrUserGone means the user no longer exists in the backend or is disabled
// there: their refresh tokens are revoked.
var ErrUserGone = errors.New("user no longer exists or is disabled")

// A UserChecker confirms, on a refresh grant, that a refresh token's user
// may still log in. It returns nil, ErrUserGone, or another error when it
// cannot tell (the backend is down).
type UserChecker interface {
	CheckUser(ctx context.Context, name string) error
}

// usersFileChecker checks the users file: a user deleted with
// "stx-token-server passwd -d" is gone. It is cheap, so it runs on every
// refresh.
type usersFileChecker struct{ u *UsersFile }

func (c usersFileChecker) CheckUser(_ context.Context, name string) error {
	if !c.u.Exists(name) {
		return ErrUserGone
	}
	return nil
}

// NewUsersFileChecker is the refresh re-check of the users file u.
func NewUsersFileChecker(u *UsersFile) UserChecker { return usersFileChecker{u} }
