package authn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"stx-registry/shared/files"
	"stx-registry/token/access"
)

// The users file is the embedded default backend: one "name:bcrypt-hash" per
// line, "#" comments, written by "stx-token-server passwd".
const (
	maxUsersFileBytes = 4 << 20 // about 40 000 users; far beyond a local file's purpose
	maxUsersLineBytes = 512     // a 255-byte name, ':' and a 60-byte bcrypt hash
	// maxBcryptPasswordBytes is bcrypt's own limit; longer passwords could
	// not have been set with passwd, so they are simply wrong.
	maxBcryptPasswordBytes = 72
)

// bcryptCost is paid once per user per cache_ttl, thanks to the cache.
// Tests lower it.
var bcryptCost = 12

// dummyHash is compared against for unknown users, so that an unknown user
// costs the same bcrypt time as a known one and names cannot be probed.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("stx-registry-unknown-user"), bcryptCost)
	return h
})

// UsersFile authenticates against a local bcrypt users file. Edits (by
// passwd) are picked up without a restart: a login stats the file at most
// once per files.CheckInterval. A file that becomes unreadable or invalid
// is logged and the last good contents stay in force.
type UsersFile struct {
	users *files.Watched[map[string][]byte] // name → bcrypt hash; read-only
}

// NewUsersFile loads path, refusing a file that group or others can read.
func NewUsersFile(path string, log *slog.Logger) (*UsersFile, error) {
	users, err := files.New(files.Watch[map[string][]byte]{
		Paths:    []string{path},
		Load:     func() (map[string][]byte, error) { return loadUsers(path) },
		Interval: files.CheckInterval,
		Loaded: func(users map[string][]byte) {
			log.Info("users file reloaded", "path", path, "users", len(users))
		},
		Failed: func(err error) {
			log.Error("users file not reloaded, keeping the previous contents", "err", err)
		},
	})
	if err != nil {
		return nil, err
	}
	return &UsersFile{users: users}, nil
}

// loadUsers reads and parses the users file at path, which must be a
// private regular file.
func loadUsers(path string) (map[string][]byte, error) {
	data, err := files.ReadPrivate(path, maxUsersFileBytes)
	if err != nil {
		return nil, fmt.Errorf("users_file: %w", err)
	}
	return parseUsers(path, data)
}

// parseUsers reads the users file format; errors name the file and line.
// The caller bounds data (maxUsersFileBytes).
func parseUsers(name string, data []byte) (map[string][]byte, error) {
	users := make(map[string][]byte)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, maxUsersLineBytes), maxUsersLineBytes)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(string(line), ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want name:bcrypt-hash", name, n)
		}
		if err := checkUsername(user); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: not a bcrypt hash", name, n, user)
		}
		if _, dup := users[user]; dup {
			return nil, fmt.Errorf("%s:%d: duplicate user %q", name, n, user)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, n+1, maxUsersLineBytes)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return users, nil
}

// checkUsername accepts the names a users file may hold: 1 to 255 bytes of
// letters, digits and ._@- (no ':' or spaces). Whether a name owns a
// namespace is the policy's business, not this one's.
func checkUsername(name string) error {
	if name == "" || len(name) > access.MaxUsernameBytes {
		return fmt.Errorf("user name must be 1 to %d bytes", access.MaxUsernameBytes)
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '-', c == '@':
		default:
			return fmt.Errorf("user name %q: only letters, digits and . _ - @ are allowed", name)
		}
	}
	return nil
}

// Recheck lets the next login or user check stat the file at once,
// skipping the once-a-second limit.
func (u *UsersFile) Recheck() { u.users.Recheck() }

// Authenticate implements Authenticator with a bcrypt comparison, which is
// constant-time by construction and costs the same for unknown users.
func (u *UsersFile) Authenticate(_ context.Context, c Credentials) (access.Identity, error) {
	hash, ok := u.users.Get()[c.User]
	if !ok {
		hash = dummyHash()
	}
	if len(c.Password) > maxBcryptPasswordBytes {
		return access.Identity{}, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(c.Password)) != nil || !ok {
		return access.Identity{}, ErrBadCredentials
	}
	return access.Identity{Name: c.User}, nil
}

// Exists reports whether name is in the users file, re-reading it first if
// it changed.
func (u *UsersFile) Exists(name string) bool {
	_, ok := u.users.Get()[name]
	return ok
}

// SetPassword adds or replaces user in the users file at path, creating it
// with mode 0600 if needed. A nil password deletes the user.
func SetPassword(path, user string, password []byte) error {
	if err := checkUsername(user); err != nil {
		return err
	}
	if len(password) > maxBcryptPasswordBytes {
		return fmt.Errorf("password longer than %d bytes (bcrypt's limit)", maxBcryptPasswordBytes)
	}
	var users map[string][]byte
	data, err := files.Read(path, maxUsersFileBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		users = map[string][]byte{}
	case err != nil:
		return err
	default:
		users, err = parseUsers(path, data)
		if err != nil {
			return err
		}
	}
	if password == nil {
		if _, ok := users[user]; !ok {
			return fmt.Errorf("user %q is not in %s", user, path)
		}
		delete(users, user)
	} else {
		hash, err := bcrypt.GenerateFromPassword(password, bcryptCost)
		if err != nil {
			return err
		}
		users[user] = hash
	}
	var buf bytes.Buffer
	buf.WriteString("# stx-token-server users file: name:bcrypt-hash. Edit with stx-token-server passwd.\n")
	for _, name := range slices.Sorted(maps.Keys(users)) {
		fmt.Fprintf(&buf, "%s:%s\n", name, users[name])
	}
	return files.WriteAtomic(path, buf.Bytes(), 0o600)
}
