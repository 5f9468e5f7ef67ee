package authn

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

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
	// usersRecheck is how often a login may stat the file to notice edits.
	usersRecheck = time.Second
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
// passwd) are picked up without a restart; a file that becomes unreadable or
// invalid is logged and the last good contents stay in force.
type UsersFile struct {
	path string
	log  *slog.Logger

	mu        sync.Mutex
	users     map[string][]byte // name → bcrypt hash
	modTime   time.Time
	size      int64
	lastCheck time.Time
}

// NewUsersFile loads path, refusing a file that group or others can read.
func NewUsersFile(path string, log *slog.Logger) (*UsersFile, error) {
	u := &UsersFile{path: path, log: log}
	if err := u.load(); err != nil {
		return nil, err
	}
	return u, nil
}

func (u *UsersFile) load() error {
	f, err := os.Open(u.path)
	if err != nil {
		return fmt.Errorf("users_file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("users_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("users_file %s is accessible by group or others (mode %04o): chmod 600 %s", u.path, fi.Mode().Perm(), u.path)
	}
	users, err := parseUsers(u.path, io.LimitReader(f, maxUsersFileBytes+1))
	if err != nil {
		return err
	}
	u.users, u.modTime, u.size = users, fi.ModTime(), fi.Size()
	return nil
}

// parseUsers reads the users file format; errors name the file and line.
func parseUsers(name string, r io.Reader) (map[string][]byte, error) {
	users := make(map[string][]byte)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, maxUsersLineBytes), maxUsersLineBytes)
	total, n := 0, 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		total += len(line) + 1
		if total > maxUsersFileBytes {
			return nil, fmt.Errorf("%s: larger than %d bytes", name, maxUsersFileBytes)
		}
		line = bytes.TrimSpace(line)
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

// refresh re-reads the file when its size or mtime changed, at most once a
// second. Called with u.mu held.
func (u *UsersFile) refresh(now time.Time) {
	if now.Sub(u.lastCheck) < usersRecheck {
		return
	}
	u.lastCheck = now
	fi, err := os.Stat(u.path)
	if err == nil && fi.ModTime().Equal(u.modTime) && fi.Size() == u.size {
		return
	}
	if err := u.load(); err != nil {
		u.log.Error("users file not reloaded, keeping the previous contents", "err", err)
		return
	}
	u.log.Info("users file reloaded", "path", u.path, "users", len(u.users))
}

// Recheck lets the next login or user check stat the file at once,
// skipping the once-a-second limit.
func (u *UsersFile) Recheck() {
	u.mu.Lock()
	u.lastCheck = time.Time{}
	u.mu.Unlock()
}

// Authenticate implements Authenticator with a bcrypt comparison, which is
// constant-time by construction and costs the same for unknown users.
func (u *UsersFile) Authenticate(_ context.Context, c Credentials) (access.Identity, error) {
	u.mu.Lock()
	u.refresh(time.Now())
	hash, ok := u.users[c.User]
	u.mu.Unlock()
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
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refresh(time.Now())
	_, ok := u.users[name]
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
	f, err := os.Open(path)
	switch {
	case os.IsNotExist(err):
		users = map[string][]byte{}
	case err != nil:
		return err
	default:
		users, err = parseUsers(path, io.LimitReader(f, maxUsersFileBytes+1))
		f.Close()
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
	return WriteFileAtomic(path, buf.Bytes(), 0o600)
}

// WriteFileAtomic replaces path with data: a temporary file in the same
// directory, fsync, rename, fsync of the directory.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
