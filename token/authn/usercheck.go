package authn

import (
	"context"
	"errors"
)

// ErrUserGone means the user no longer exists in the backend or is disabled
// there: their refresh tokens are revoked.
var ErrUserGone = errors.New("user no longer exists or is disabled")

// ErrUserReplaced means a user of that name exists, but it is not the one
// the refresh token was issued to: the name was deleted and given to a new
// user, or the token predates binding to the backend's user ID. That token
// is revoked; the current user's are not.
var ErrUserReplaced = errors.New("the user of that name is not the one the refresh token was issued to")

// A UserChecker confirms, on a refresh grant, that a refresh token's user
// may still log in: name must exist and be enabled, and where the backend
// has user IDs, name's ID must be id, the one recorded at login. It returns
// nil, ErrUserGone, ErrUserReplaced, or another error when it cannot tell
// (the backend is down).
type UserChecker interface {
	CheckUser(ctx context.Context, name, id string) error
}

// usersFileChecker checks the users file: a user deleted with
// "stx-token-server passwd -d" is gone. It is cheap, so it runs on every
// refresh.
type usersFileChecker struct{ u *UsersFile }

// The users file has no user IDs: id is "" and not compared.
func (c usersFileChecker) CheckUser(_ context.Context, name, _ string) error {
	if !c.u.Exists(name) {
		return ErrUserGone
	}
	return nil
}

// NewUsersFileChecker is the refresh re-check of the users file u.
func NewUsersFileChecker(u *UsersFile) UserChecker { return usersFileChecker{u} }
