package refresh

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"stx-registry/shared/files"
)

const (
	// maxBadLinesLogged bounds how many bad line numbers one log line lists.
	maxBadLinesLogged = 20
	// minCompactDead: the file is rewritten once its dead records
	// outnumber the live ones and are at least this many, so that a small
	// store is not rewritten at every other change. Each rewrite costs
	// O(live) and follows at least as many appends: O(1) per change.
	minCompactDead = 256
	// refreshFileName, refreshLockName: the state file and its lock file
	// in state_directory.
	refreshFileName = "refresh-tokens"
	refreshLockName = "refresh-tokens.lock"
)

// FileStore is the Store in state_directory: an append-only log in the
// file refresh-tokens (see record.go) and an index of it in memory.
//
// Writers (this daemon, "stx-token-server revoke", a second instance
// during a failover) hold an flock(2) on refresh-tokens.lock; under it
// they first read what others appended, then decide (which tokens a limit
// drops, whether the store is full), append their records and fsync the
// file before answering. Nothing acknowledged is lost to kill -9 or a
// failover. When dead records (revoked, dropped, expired, superseded
// touches) outnumber live ones, the writer rewrites the file with the live
// entries only (files.WriteAtomic: temporary file, fsync, rename, directory
// fsync); other processes notice the new inode and read it whole.
//
// A lookup never waits for a write or an fsync: it takes only the index
// lock, which writers hold to apply a few records (and, for a rewrite, to
// copy the live nodes' pointers), after one stat(2) of the file; when
// another process appended to the file or replaced it, it reads the new
// lines (from the page cache) first, so a revocation by the revoke command
// counts at once.
//
// A damaged file never stops the daemon: bad lines are skipped, logged at
// error level with their numbers, and the good ones kept; the next write
// saves the damaged original as refresh-tokens.corrupt-UNIXTIME and
// rewrites the file clean. A line cut short by a crash (never acknowledged)
// counts as damage.
type FileStore struct {
	dir, path, lockPath string
	lim                 Limits
	log                 *slog.Logger
	now                 func() time.Time // purges expired entries; tests set it

	// wmu serializes this process's writers; held with the flock.
	wmu sync.Mutex

	// tmu guards reading the file into the index: f, off, stale, damaged.
	tmu     sync.Mutex
	f       *os.File // the state file as opened last; nil if none
	off     int64    // bytes of f applied to the index
	stale   bool     // a write failed half-way: read the file whole again
	damaged bool     // f has damage: the next write saves it and rewrites
	// seen is what a lookup compares its stat(2) with: the file and size
	// the index reflects. Written under tmu.
	seen atomic.Pointer[fileMark]

	// mu guards the index.
	mu  sync.Mutex
	idx *index

	// Counters for tests: records parsed and whole-file rewrites.
	parsed, rewrites atomic.Int64
}

// fileMark identifies a state file and how much of it was read.
type fileMark struct {
	dev, ino uint64
	size     int64
}

func markOf(fi os.FileInfo) *fileMark {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &fileMark{size: -1} // never equal: always re-read
	}
	return &fileMark{dev: uint64(st.Dev), ino: st.Ino, size: fi.Size()}
}

// NewFileStore opens the store in dir, which must be a directory of
// the service user with no access for group or others.
func NewFileStore(dir string, lim Limits, log *slog.Logger) (*FileStore, error) {
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
	switch {
	case lim.Max < 1:
		return nil, errors.New("refresh_token_max must be at least 1")
	case lim.UserMax < 1 || lim.ClientMax < 1:
		return nil, errors.New("refresh_token_user_max and refresh_token_client_max must be at least 1")
	}
	s := &FileStore{
		dir:      dir,
		path:     filepath.Join(dir, refreshFileName),
		lockPath: filepath.Join(dir, refreshLockName),
		lim:      lim,
		log:      log,
		now:      time.Now,
		idx:      newIndex(),
	}
	// The first read holds the lock, so that a line being appended by
	// another process is not mistaken for damage.
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if err := s.catchUp(true); err != nil {
		return nil, err
	}
	return s, nil
}

// SetClock replaces the clock that purges expired entries; for tests, before
// the store is used.
func (s *FileStore) SetClock(now func() time.Time) { s.now = now }

// maxFileBytes bounds the state file: max live entries of the longest
// line, as many dead ones before a rewrite, and the header.
func (s *FileStore) maxFileBytes() int64 {
	return (2*int64(s.lim.Max)+minCompactDead+1)*maxRefreshLineBytes + int64(len(refreshHeader)) + 1
}

// lock takes the flock that writers hold.
func (s *FileStore) lock() (unlock func(), err error) {
	lock, err := os.OpenFile(s.lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("refresh token store lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("refresh token store lock %s: %w", s.lockPath, err)
	}
	return func() { lock.Close() }, nil // closing releases the flock
}

// catchUp brings the index up to the file: the lines appended since the
// last read, or the whole file when it is another one (rewritten by
// someone) or after a failed write. A last line without its newline is
// being written by another process, unless locked says no one else can
// be: then a crash cut it short, and it is damage. Called with s.tmu held.
func (s *FileStore) catchUp(locked bool) error {
	fi, err := os.Stat(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.install(nil, newIndex(), 0)
		return nil
	}
	if err != nil {
		return fmt.Errorf("refresh token store: %w", err)
	}
	if s.f == nil || s.stale || !sameFile(s.f, fi) || fi.Size() < s.off || fi.Size() > s.maxFileBytes() {
		return s.reload(locked)
	}
	if fi.Size() == s.off {
		return nil
	}
	tail := make([]byte, fi.Size()-s.off)
	n, err := s.f.ReadAt(tail, s.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("refresh token store %s: %w", s.path, err)
	}
	tail = tail[:n]
	if !locked {
		tail = tail[:bytes.LastIndexByte(tail, '\n')+1] // the rest is still being written
	}
	if len(tail) == 0 {
		return nil
	}
	recs, rep := s.parse(tail), refreshReport{headerOK: true}
	s.mu.Lock()
	s.apply(s.idx, recs, s.idx.lines+2, &rep)
	s.mu.Unlock()
	s.off += int64(len(tail))
	mark := *s.seen.Load()
	mark.size = s.off
	s.seen.Store(&mark)
	if rep.bad() {
		s.damaged = true
		s.logDamage(rep)
	}
	return nil
}

func sameFile(f *os.File, fi os.FileInfo) bool {
	ofi, err := f.Stat()
	return err == nil && os.SameFile(ofi, fi)
}

// reload reads the file whole into a new index. Called with s.tmu held.
func (s *FileStore) reload(locked bool) error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.install(nil, newIndex(), 0)
		return nil
	}
	if err != nil {
		return fmt.Errorf("refresh token store: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, s.maxFileBytes()+1))
	if err != nil {
		f.Close()
		return fmt.Errorf("refresh token store %s: %w", s.path, err)
	}
	var rep refreshReport
	if int64(len(data)) > s.maxFileBytes() {
		data, rep.tooLarge = data[:s.maxFileBytes()], true
	}
	if !locked && !rep.tooLarge {
		data = data[:bytes.LastIndexByte(data, '\n')+1]
	}
	idx := newIndex()
	body := data
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	headerOK := len(data) == 0 || string(first) == refreshHeader || string(first) == refreshHeaderV1
	lineNo := 1
	if headerOK {
		body, lineNo = rest, 2
	}
	rep.headerOK = headerOK
	s.apply(idx, s.parse(body), lineNo, &rep)
	s.install(f, idx, int64(len(data)))
	if rep.tooLarge {
		// What lies beyond the bound is not read: a lookup must not
		// take the file's size for news. The next write rewrites it.
		if fi, err := f.Stat(); err == nil {
			mark := *s.seen.Load()
			mark.size = fi.Size()
			s.seen.Store(&mark)
		}
	}
	// A version 1 file is rewritten before anything is appended to it, so
	// that no older server reads a log it does not know.
	s.damaged = rep.bad() || string(first) == refreshHeaderV1
	if rep.bad() {
		s.logDamage(rep)
	}
	return nil
}

// install makes idx, read from the first off bytes of f, the index.
// Called with s.tmu held.
func (s *FileStore) install(f *os.File, idx *index, off int64) {
	if s.f != nil && s.f != f {
		s.f.Close()
	}
	s.f, s.off, s.stale, s.damaged = f, off, false, false
	mark := &fileMark{}
	if f != nil {
		if fi, err := f.Stat(); err == nil {
			mark = markOf(fi)
		}
	}
	mark.size = off
	s.seen.Store(mark)
	s.mu.Lock()
	s.idx = idx
	s.mu.Unlock()
}

// refreshReport is what reading the file found wrong.
type refreshReport struct {
	headerOK    bool
	badLines    int
	lineNumbers []int // the first maxBadLinesLogged of them
	tooLarge    bool
}

func (r refreshReport) bad() bool { return !r.headerOK || r.badLines > 0 || r.tooLarge }

// parse parses lines, one record each, outside the index lock; a bad line
// is kept with its error, so that apply can count and number it.
func (s *FileStore) parse(lines []byte) []parsedLine {
	var out []parsedLine
	for i := 0; len(lines) > 0; i++ {
		var line []byte
		line, lines, _ = bytes.Cut(lines, []byte("\n"))
		if len(line) == 0 {
			continue
		}
		s.parsed.Add(1)
		r, err := ParseLine(line)
		out = append(out, parsedLine{r: r, err: err, at: i})
	}
	return out
}

// parsedLine is one parsed line and its index among the lines read.
type parsedLine struct {
	r   record
	err error
	at  int
}

// apply applies recs to idx; the first line read is line number first of
// the file. A second issue of one token is bad like a line that does not
// parse.
func (s *FileStore) apply(idx *index, recs []parsedLine, first int, rep *refreshReport) {
	now := s.now().Unix()
	for _, p := range recs {
		if p.err == nil && p.r.issue != nil && idx.entries[p.r.hash] != nil {
			p.err = errors.New("a token issued twice")
		}
		if p.err != nil {
			idx.lines++
			rep.badLines++
			if len(rep.lineNumbers) < maxBadLinesLogged {
				rep.lineNumbers = append(rep.lineNumbers, first+p.at)
			}
			continue
		}
		idx.apply(p.r, now)
	}
}

func (s *FileStore) logDamage(rep refreshReport) {
	s.log.Error("refresh token store damaged: bad lines skipped, good entries kept; the original is saved as refresh-tokens.corrupt-TIME on the next change",
		"file", s.path, "header_ok", rep.headerOK, "bad_lines", rep.badLines, "bad_line_numbers", rep.lineNumbers,
		"too_large", rep.tooLarge, "kept_entries", s.Len())
}

// write runs one change: under the flock and after reading what others
// wrote, decide returns the records to append (none: nothing to do), or
// all for a change that empties the store. The records are on disk before
// write returns.
func (s *FileStore) write(decide func(idx *index, now int64) (recs []record, all bool, err error)) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()

	s.tmu.Lock()
	err = s.catchUp(true)
	damaged, exists := s.damaged, s.f != nil
	s.tmu.Unlock()
	if err != nil {
		return err
	}

	now := s.now().Unix()
	s.mu.Lock()
	s.idx.purge(now)
	recs, all, err := decide(s.idx, now)
	if err != nil || (len(recs) == 0 && !all) {
		s.mu.Unlock()
		return err
	}
	if !all && exists && !damaged && s.idx.dead()+len(recs) <= max(len(s.idx.entries), minCompactDead) {
		s.mu.Unlock()
		return s.append(recs)
	}
	// Rewrite: the index takes the change first and is written whole.
	if all {
		s.idx = newIndex()
	}
	for _, r := range recs {
		s.idx.apply(r, now)
	}
	lines := s.idx.snapshot()
	s.idx.lines = len(s.idx.entries)
	s.mu.Unlock()
	return s.rewrite(encodeFile(lines), damaged)
}

// append adds recs to the file and fsyncs it; the records reach the index
// through catchUp, like anyone else's. Called with the flock held.
func (s *FileStore) append(recs []record) error {
	var buf bytes.Buffer
	for _, r := range recs {
		buf.Write(r.encode())
		buf.WriteByte('\n')
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.Write(buf.Bytes())
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if err != nil {
		s.stale = true // whatever reached the file is read again whole
		return fmt.Errorf("refresh token store %s: %w", s.path, err)
	}
	return s.catchUp(true)
}

// rewrite replaces the file with data, the index's live entries, first
// saving a damaged file. Called with the flock held.
func (s *FileStore) rewrite(data []byte, damaged bool) error {
	if damaged {
		saved := fmt.Sprintf("%s.corrupt-%d", s.path, s.now().Unix())
		old, err := files.Read(s.path, s.maxFileBytes())
		if err == nil || errors.Is(err, files.ErrTooLarge) {
			err = files.WriteAtomic(saved, old, 0o600)
		}
		if err != nil {
			s.markStale()
			return fmt.Errorf("refresh token store: saving the damaged file: %w", err)
		}
		s.log.Error("refresh token store: damaged file saved before rewriting it", "saved", saved)
	}
	if err := files.WriteAtomic(s.path, data, 0o600); err != nil {
		s.markStale()
		return fmt.Errorf("refresh token store %s: %w", s.path, err)
	}
	s.rewrites.Add(1)
	f, err := os.Open(s.path)
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if err != nil {
		s.stale = true
		return fmt.Errorf("refresh token store: %w", err)
	}
	// The index already holds what was written: no need to parse it.
	s.mu.Lock()
	idx := s.idx
	s.mu.Unlock()
	s.install(f, idx, int64(len(data)))
	return nil
}

func (s *FileStore) markStale() {
	s.tmu.Lock()
	s.stale = true
	s.tmu.Unlock()
}

// Issue implements Store. The user's oldest tokens beyond the per-user and
// per-client limits are dropped; beyond refresh_token_max live entries it
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
		UserID:  e.UserID,
		Client:  e.ClientID,
		Admin:   e.Admin,
		Service: e.Service,
		Created: e.Created.Unix(),
		Expires: e.Expires.Unix(),
		Checked: e.Checked.Unix(),
	}
	add := record{issue: &l}
	if err := l.check(); err != nil {
		return "", fmt.Errorf("refresh token store: %w", err)
	}
	if len(add.encode()) > maxRefreshLineBytes {
		return "", fmt.Errorf("refresh token store: entry longer than %d bytes", maxRefreshLineBytes)
	}
	add.hash, _ = parseHash(l.Hash)
	err := s.write(func(idx *index, _ int64) ([]record, bool, error) {
		drop := idx.evictions(l.Subject, l.Client, s.lim)
		if len(idx.entries)-len(drop) >= s.lim.Max {
			return nil, false, ErrStoreFull
		}
		// The new token first: a crash between the lines leaves an
		// unacknowledged token nobody holds, never a dropped one without
		// its replacement.
		return append([]record{add}, drop...), false, nil
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
	h, _ := parseHash(Hash(token))
	if err := s.refresh(); err != nil {
		return Entry{}, err
	}
	s.mu.Lock()
	n := s.idx.entries[h]
	var e Entry
	if n != nil {
		e = n.entry()
	}
	s.mu.Unlock()
	switch {
	case n == nil:
		return Entry{}, ErrUnknown
	case now.Unix() >= e.Expires.Unix():
		return e, ErrExpired
	case e.Service != service:
		return e, ErrWrongService
	}
	return e, nil
}

// refresh reads what other processes changed in the file since the last
// read: one stat(2) when nothing changed.
func (s *FileStore) refresh() error {
	fi, err := os.Stat(s.path)
	seen := s.seen.Load()
	switch {
	case errors.Is(err, os.ErrNotExist) && seen.ino == 0:
		return nil
	case err == nil && *markOf(fi) == *seen:
		return nil
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	return s.catchUp(false)
}

// Touch implements Store. A token revoked meanwhile stays revoked.
func (s *FileStore) Touch(token string, checked time.Time) error {
	h, _ := parseHash(Hash(token))
	return s.write(func(idx *index, _ int64) ([]record, bool, error) {
		n := idx.entries[h]
		switch {
		case n == nil:
			return nil, false, ErrUnknown
		case checked.Unix() <= n.checked:
			return nil, false, nil
		}
		return []record{{hash: h, checked: checked.Unix()}}, false, nil
	})
}

// Revoke implements Store.
func (s *FileStore) Revoke(token string) error {
	h, _ := parseHash(Hash(token))
	return s.write(func(idx *index, _ int64) ([]record, bool, error) {
		if idx.entries[h] == nil {
			return nil, false, ErrUnknown
		}
		return []record{{hash: h, revoke: true}}, false, nil
	})
}

// RevokeUser implements Store.
func (s *FileStore) RevokeUser(user string) (int, error) {
	var recs []record
	err := s.write(func(idx *index, _ int64) ([]record, bool, error) {
		recs = nil
		if c := idx.users[user]; c != nil {
			for n := c.head; n != nil; n = n.link[byUser].next {
				recs = append(recs, record{hash: n.hash, revoke: true})
			}
		}
		return recs, false, nil
	})
	return len(recs), err
}

// RevokeAll implements Store.
func (s *FileStore) RevokeAll() (int, error) {
	n := 0
	err := s.write(func(idx *index, _ int64) ([]record, bool, error) {
		n = len(idx.entries)
		return nil, true, nil
	})
	return n, err
}

// Len is the number of live entries as last read.
func (s *FileStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.idx.entries)
}
