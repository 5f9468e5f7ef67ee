// Package refresh owns the refresh-token store. Refresh tokens are what
// docker login stores as its identity token and sends, unchanged, with
// every later pull (grant_type=refresh_token). The server keeps only their
// SHA-256 hashes, in one file under state_directory, so that they survive a
// restart and a failover to the other controller, which mounts the same
// (DRBD) file system.
package refresh

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"stx-registry/shared/files"
	"stx-registry/token/access"
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
	// maxRefreshLineBytes bounds one line of the state file: a 43-byte
	// hash, a 255-byte subject, a 255-byte service and the JSON around
	// them fit with room to spare.
	maxRefreshLineBytes = 1024
	// maxBadLinesLogged bounds how many bad line numbers one log line lists.
	maxBadLinesLogged = 20
	// refreshFileName, refreshLockName: the state file and its lock file
	// in state_directory.
	refreshFileName = "refresh-tokens"
	refreshLockName = "refresh-tokens.lock"
)

// refreshHeader is the first line of the state file, with its format
// version; another header is reported like a damaged file.
const refreshHeader = `{"stx-token-server-refresh-tokens":1}`

// Errors from Lookup. The server answers all of them with 401
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
	ID      string    // the first 8 characters of the hash, for log lines; not a secret
	Subject string    // the user it was issued to
	Admin   bool      // the backend's admin flag at login (Keystone admin_role)
	Service string    // the only service (audience) it may be used for
	Created time.Time // the login
	Expires time.Time // created + refresh_token_ttl
	Checked time.Time // the user was last confirmed to exist (and be enabled) then
}

// A Store keeps refresh tokens. Tokens themselves are never stored.
type Store interface {
	// Issue stores e and returns a new token for it.
	Issue(e Entry) (token string, err error)
	// Lookup returns the entry for token if it exists, is not expired at
	// now and was issued for service.
	Lookup(token, service string, now time.Time) (Entry, error)
	// Touch records that the token's user was confirmed at checked.
	Touch(token string, checked time.Time) error
	// RevokeUser deletes every token of user and says how many.
	RevokeUser(user string) (int, error)
	// RevokeAll deletes every token and says how many.
	RevokeAll() (int, error)
}

// refreshLine is one line of the state file. Times are Unix seconds.
type refreshLine struct {
	Hash    string `json:"hash"` // base64url SHA-256 of the token
	Subject string `json:"sub"`
	Admin   bool   `json:"admin"`
	Service string `json:"service"`
	Created int64  `json:"created"`
	Expires int64  `json:"expires"`
	Checked int64  `json:"checked"`
}

func (l refreshLine) entry() Entry {
	return Entry{
		ID:      l.Hash[:8],
		Subject: l.Subject,
		Admin:   l.Admin,
		Service: l.Service,
		Created: time.Unix(l.Created, 0),
		Expires: time.Unix(l.Expires, 0),
		Checked: time.Unix(l.Checked, 0),
	}
}

// Hash is the key a token is stored under.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return b64.EncodeToString(sum[:])
}

// ParseLine parses one line of the state file, refusing anything the
// server would not have written.
func ParseLine(line []byte) (refreshLine, error) {
	var l refreshLine
	if len(line) > maxRefreshLineBytes {
		return l, fmt.Errorf("line longer than %d bytes", maxRefreshLineBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return l, fmt.Errorf("not a refresh token entry: %w", err)
	}
	if dec.More() {
		return l, errors.New("trailing data after the entry")
	}
	if h, err := b64.DecodeString(l.Hash); err != nil || len(h) != sha256.Size {
		return l, errors.New("hash is not a base64url SHA-256")
	}
	if !printable(l.Subject, access.MaxUsernameBytes) {
		return l, errors.New("bad subject")
	}
	if !printable(l.Service, access.MaxServiceBytes) {
		return l, errors.New("bad service")
	}
	if l.Created <= 0 || l.Expires < l.Created || l.Checked < l.Created {
		return l, errors.New("times out of order")
	}
	return l, nil
}

// printable reports whether s is 1 to max bytes without control characters.
func printable(s string, max int) bool {
	return s != "" && len(s) <= max && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// FileStore is the Store in state_directory: a JSON-lines
// file, a header line first, one entry per line.
//
// Every change is a read-modify-write of the whole file under an flock(2)
// on refresh-tokens.lock, so that this daemon, "stx-token-server revoke"
// and a second instance during a failover never lose each other's writes;
// the file is replaced atomically (temp file, fsync, rename, directory
// fsync) with mode 0600. Lookups stat the file and re-read it when it was
// replaced, so a revocation by another process counts at once.
//
// A damaged file never stops the daemon: bad lines are skipped, logged at
// error level with their numbers, and the good ones kept; the next write
// first saves the damaged original as refresh-tokens.corrupt-UNIXTIME.
type FileStore struct {
	dir, path, lockPath string
	max                 int
	log                 *slog.Logger
	now                 func() time.Time // purges expired entries; tests set it

	mu      sync.Mutex
	entries map[string]refreshLine // by hash
	stat    os.FileInfo            // the file entries were read from; nil if none
}

// NewFileStore opens the store in dir, which must be a directory of
// the service user with no access for group or others. max bounds the live
// entries.
func NewFileStore(dir string, max int, log *slog.Logger) (*FileStore, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("state_directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("state_directory %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("state_directory %s is owned by uid %d, not by uid %d running this: run as the service user, or chown the directory to it", dir, st.Uid, os.Geteuid())
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("state_directory %s has mode %04o: chmod 700 %s", dir, m, dir)
	}
	if max < 1 {
		return nil, errors.New("refresh_token_max must be at least 1")
	}
	s := &FileStore{
		dir:      dir,
		path:     filepath.Join(dir, refreshFileName),
		lockPath: filepath.Join(dir, refreshLockName),
		max:      max,
		log:      log,
		now:      time.Now,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

// maxFileBytes bounds the state file: max entries of the longest line, the
// header, and as much again for expired entries not yet purged.
// SetClock replaces the clock that purges expired entries; for tests, before
// the store is used.
func (s *FileStore) SetClock(now func() time.Time) { s.now = now }

func (s *FileStore) maxFileBytes() int64 {
	return 2*int64(s.max+1)*maxRefreshLineBytes + int64(len(refreshHeader)) + 1
}

// read loads the file into s.entries and returns its raw bytes when it had
// damage (to be saved before the next rewrite), else nil. A missing file is
// an empty store. Called with s.mu held.
func (s *FileStore) read() (damaged []byte, err error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.entries, s.stat = map[string]refreshLine{}, nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("refresh token store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("refresh token store: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, s.maxFileBytes()+1))
	if err != nil {
		return nil, fmt.Errorf("refresh token store %s: %w", s.path, err)
	}
	entries, rep := parseRefreshFile(data, s.maxFileBytes())
	s.entries, s.stat = entries, fi
	if rep.bad() {
		s.log.Error("refresh token store damaged: bad lines skipped, good entries kept; the original is saved as refresh-tokens.corrupt-TIME on the next change",
			"file", s.path, "header_ok", rep.headerOK, "bad_lines", rep.badLines, "bad_line_numbers", rep.lineNumbers,
			"too_large", rep.tooLarge, "kept_entries", len(entries))
		return data, nil
	}
	return nil, nil
}

// refreshReport is what parseRefreshFile found wrong.
type refreshReport struct {
	headerOK    bool
	badLines    int
	lineNumbers []int // the first maxBadLinesLogged of them
	tooLarge    bool
}

func (r refreshReport) bad() bool { return !r.headerOK || r.badLines > 0 || r.tooLarge }

// parseRefreshFile parses a whole state file, keeping every good entry.
// A later duplicate of a hash is counted as bad.
func parseRefreshFile(data []byte, limit int64) (map[string]refreshLine, refreshReport) {
	var rep refreshReport
	if int64(len(data)) > limit {
		data, rep.tooLarge = data[:limit], true
	}
	entries := map[string]refreshLine{}
	if len(data) == 0 {
		rep.headerOK = true // a new, empty file
		return entries, rep
	}
	for n, line := range bytes.Split(data, []byte("\n")) {
		if n == 0 {
			rep.headerOK = string(line) == refreshHeader
			if rep.headerOK {
				continue
			}
		}
		if len(line) == 0 {
			continue
		}
		l, err := ParseLine(line)
		if _, dup := entries[l.Hash]; err != nil || dup {
			rep.badLines++
			if len(rep.lineNumbers) < maxBadLinesLogged {
				rep.lineNumbers = append(rep.lineNumbers, n+1)
			}
			continue
		}
		entries[l.Hash] = l
	}
	return entries, rep
}

// reloadIfChanged re-reads the file when it was replaced since the last
// read: one stat per lookup. Called with s.mu held.
func (s *FileStore) reloadIfChanged() error {
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist) && s.stat == nil:
		return nil
	case err == nil && s.stat != nil && os.SameFile(fi, s.stat) &&
		fi.ModTime().Equal(s.stat.ModTime()) && fi.Size() == s.stat.Size():
		return nil
	}
	_, err = s.read()
	return err
}

// update runs change on the entries as they are on disk, under the file
// lock, purges expired entries and writes the result.
func (s *FileStore) update(change func(entries map[string]refreshLine) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lock, err := os.OpenFile(s.lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("refresh token store lock: %w", err)
	}
	defer lock.Close() // closing releases the flock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("refresh token store lock %s: %w", s.lockPath, err)
	}
	damaged, err := s.read()
	if err != nil {
		return err
	}
	now := s.now().Unix()
	for h, l := range s.entries {
		if l.Expires <= now {
			delete(s.entries, h)
		}
	}
	if err := change(s.entries); err != nil {
		return err
	}
	if damaged != nil {
		saved := fmt.Sprintf("%s.corrupt-%d", s.path, s.now().Unix())
		if err := files.WriteAtomic(saved, damaged, 0o600); err != nil {
			return fmt.Errorf("refresh token store: saving the damaged file: %w", err)
		}
		s.log.Error("refresh token store: damaged file saved before rewriting it", "saved", saved)
	}
	if err := files.WriteAtomic(s.path, s.encode(), 0o600); err != nil {
		return fmt.Errorf("refresh token store %s: %w", s.path, err)
	}
	s.stat, _ = os.Stat(s.path) // our own write needs no re-read
	return nil
}

// encode is the file for s.entries, sorted by hash so that writes are
// reproducible.
func (s *FileStore) encode() []byte {
	hashes := make([]string, 0, len(s.entries))
	for h := range s.entries {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	var buf bytes.Buffer
	buf.WriteString(refreshHeader + "\n")
	for _, h := range hashes {
		b, _ := json.Marshal(s.entries[h]) // strings and numbers only: cannot fail
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// Issue implements Store. Beyond refresh_token_max live entries it
// returns ErrStoreFull.
func (s *FileStore) Issue(e Entry) (string, error) {
	var raw [refreshTokenBytes]byte
	rand.Read(raw[:]) // never fails (crypto/rand panics rather)
	token := b64.EncodeToString(raw[:])
	if e.Checked.IsZero() {
		e.Checked = e.Created
	}
	l := refreshLine{
		Hash:    Hash(token),
		Subject: e.Subject,
		Admin:   e.Admin,
		Service: e.Service,
		Created: e.Created.Unix(),
		Expires: e.Expires.Unix(),
		Checked: e.Checked.Unix(),
	}
	err := s.update(func(entries map[string]refreshLine) error {
		if len(entries) >= s.max {
			return ErrStoreFull
		}
		entries[l.Hash] = l
		return nil
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// Lookup implements Store. The token is found by its SHA-256 in a
// map: the secret itself is never compared, so timing tells an attacker
// nothing about it (only about a hash they cannot invert).
func (s *FileStore) Lookup(token, service string, now time.Time) (Entry, error) {
	if token == "" || len(token) > MaxTokenBytes {
		return Entry{}, ErrUnknown
	}
	h := Hash(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadIfChanged(); err != nil {
		return Entry{}, err
	}
	l, ok := s.entries[h]
	switch {
	case !ok:
		return Entry{}, ErrUnknown
	case now.Unix() >= l.Expires:
		return l.entry(), ErrExpired
	case l.Service != service:
		return l.entry(), ErrWrongService
	}
	return l.entry(), nil
}

// Touch implements Store. A token revoked meanwhile stays revoked.
func (s *FileStore) Touch(token string, checked time.Time) error {
	h := Hash(token)
	return s.update(func(entries map[string]refreshLine) error {
		l, ok := entries[h]
		if !ok {
			return ErrUnknown
		}
		l.Checked = max(l.Checked, checked.Unix())
		entries[h] = l
		return nil
	})
}

// RevokeUser implements Store.
func (s *FileStore) RevokeUser(user string) (int, error) {
	n := 0
	err := s.update(func(entries map[string]refreshLine) error {
		for h, l := range entries {
			if l.Subject == user {
				delete(entries, h)
				n++
			}
		}
		return nil
	})
	return n, err
}

// RevokeAll implements Store.
func (s *FileStore) RevokeAll() (int, error) {
	n := 0
	err := s.update(func(entries map[string]refreshLine) error {
		n = len(entries)
		clear(entries)
		return nil
	})
	return n, err
}

// Len is the number of entries as last read, expired ones included.
func (s *FileStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}
