// Package refresh owns the refresh-token store. Refresh tokens are what
// docker login stores as its identity token and sends, unchanged, with
// every later pull (grant_type=refresh_token). The server keeps only their
// SHA-256 hashes, in one file under state_directory, so that they survive a
// restart and a failover to the other controller, which mounts the same
// (DRBD) file system.
//
// The file is an append-only log (record.go) with an in-memory index
// (index.go) in front of it (file.go): a login appends one or two lines and
// fsyncs them, a lookup reads only memory, and the file is rewritten whole
// only when dead lines outnumber live ones. Each user, and each user and
// client_id, keeps a bounded number of live tokens, the oldest dropped
// first, so one user looping logins can neither slow nor crowd out others.
package refresh

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"
)

const (
	// refreshTokenBytes of crypto/rand make one refresh token: 256 bits.
	refreshTokenBytes = 32
	// MaxTokenBytes bounds the refresh_token a client sends: ours
	// are 43 base64url characters; anything longer cannot be one.
	MaxTokenBytes = 64
	// MinRefreshTokenTTL, DefaultRefreshTokenTTL and MaxRefreshTokenTTL
	// bound refresh_token_ttl. A week lets a developer's docker login
	// outlive a weekend; 90 days bounds how long a copied
	// ~/.docker/config.json stays useful.
	MinRefreshTokenTTL     = time.Minute
	DefaultRefreshTokenTTL = 7 * 24 * time.Hour
	MaxRefreshTokenTTL     = 90 * 24 * time.Hour
	// MaxUncheckedRefreshTTL is the longest refresh_token_ttl with
	// auth_backend keystone and no keystone_service_user: nothing then
	// notices a user disabled in Keystone, so a refresh token must die soon.
	MaxUncheckedRefreshTTL = 24 * time.Hour
	// DefaultRefreshTokenMax is refresh_token_max's default: far more
	// docker logins than a StarlingX system sees within a TTL.
	DefaultRefreshTokenMax = 100000
	// MaxRefreshTokenMax bounds refresh_token_max itself.
	MaxRefreshTokenMax = 1000000
	// DefaultUserMax is refresh_token_user_max's default: one user's live
	// refresh tokens, enough for a docker login on every machine a person
	// or a CI account uses within a TTL.
	DefaultUserMax = 100
	// DefaultClientMax is refresh_token_client_max's default: one user's
	// live tokens from one client_id (docker, containerd, …), so that a
	// loop of one tool's logins drops its own old tokens before another
	// tool's.
	DefaultClientMax = 20
)

// Errors from the store. The server answers the first three with 401
// invalid_grant; the audit line says which one it was.
var (
	ErrUnknown      = errors.New("refresh token unknown or revoked")
	ErrExpired      = errors.New("refresh token expired")
	ErrWrongService = errors.New("refresh token was issued for another service")
	// ErrStoreFull means refresh_token_max live entries exist; the
	// login still succeeds, without a refresh token.
	ErrStoreFull = errors.New("refresh token store is full (refresh_token_max)")
)

// b64 encodes refresh tokens and their hashes.
var b64 = base64.RawURLEncoding

// Entry is what the server knows about one refresh token.
type Entry struct {
	ID       string    // the first 8 characters of the hash, for log lines; not a secret
	Subject  string    // the user it was issued to
	UserID   string    // the backend's ID for Subject at login (Keystone's user id); "" for the users file and older entries
	ClientID string    // the client_id of the login, "" if none; bounds tokens per user and client
	Admin    bool      // the backend's admin flag at login (Keystone admin_role)
	Service  string    // the only service (audience) it may be used for
	Created  time.Time // the login
	Expires  time.Time // created + refresh_token_ttl
	Checked  time.Time // the user was last confirmed to exist (and be enabled) then
}

// Limits bound the live entries of a store.
type Limits struct {
	Max       int // refresh_token_max: all users; beyond it Issue fails with ErrStoreFull
	UserMax   int // refresh_token_user_max: one user's; the user's oldest is dropped
	ClientMax int // refresh_token_client_max: one user's from one client_id; its oldest is dropped
}

// DefaultLimits are the limits with every keyword at its default.
var DefaultLimits = Limits{Max: DefaultRefreshTokenMax, UserMax: DefaultUserMax, ClientMax: DefaultClientMax}

// A Store keeps refresh tokens. Tokens themselves are never stored.
type Store interface {
	// Issue stores e and returns a new token for it, dropping the user's
	// oldest tokens beyond the per-user and per-client limits.
	Issue(e Entry) (token string, err error)
	// Lookup returns the entry for token if it exists, is not expired at
	// now and was issued for service.
	Lookup(token, service string, now time.Time) (Entry, error)
	// Touch records that the token's user was confirmed at checked.
	Touch(token string, checked time.Time) error
	// Revoke deletes one token.
	Revoke(token string) error
	// RevokeUser deletes every token of user and says how many.
	RevokeUser(user string) (int, error)
	// RevokeAll deletes every token and says how many.
	RevokeAll() (int, error)
}

// Hash is the key a token is stored under, base64url-encoded.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return b64.EncodeToString(sum[:])
}
