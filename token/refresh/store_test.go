package refresh

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"stx-registry/token/internal/fixture"
)

func newStore(t testing.TB, dir string, max int, clock *fixture.Clock) (*FileStore, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	// No per-user limits unless a test sets them: max bounds everything.
	s, err := NewFileStore(dir, Limits{Max: max, UserMax: max, ClientMax: max}, slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.now = clock.Now
	return s, logs
}

// lockedWriter lets concurrent stores log into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func entry(user, service string, now time.Time, ttl time.Duration) Entry {
	return Entry{Subject: user, Service: service, Created: now, Expires: now.Add(ttl)}
}

func TestRefreshStoreRoundTrip(t *testing.T) {
	clock := fixture.NewClock()
	dir := fixture.StateDir(t)
	s, _ := newStore(t, dir, 10, clock)
	now := clock.Now()
	tok, err := s.Issue(Entry{Subject: "alice", Admin: true, Service: "svc", Created: now, Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := b64.DecodeString(tok); err != nil || len(raw) != refreshTokenBytes {
		t.Fatalf("token %q is not %d base64url bytes", tok, refreshTokenBytes)
	}
	data, _ := os.ReadFile(filepath.Join(dir, refreshFileName))
	if bytes.Contains(data, []byte(tok)) || !bytes.Contains(data, []byte(Hash(tok))) {
		t.Fatalf("the state file must hold the hash, never the token:\n%s", data)
	}
	if fi, _ := os.Stat(filepath.Join(dir, refreshFileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %04o, want 0600", fi.Mode().Perm())
	}
	tests := []struct {
		name    string
		token   string
		service string
		at      time.Duration
		want    error
	}{
		{"good", tok, "svc", 0, nil},
		{"just before expiry", tok, "svc", time.Hour - time.Second, nil},
		{"expired", tok, "svc", time.Hour, ErrExpired},
		{"other service", tok, "other", 0, ErrWrongService},
		{"unknown", strings.Repeat("A", 43), "svc", 0, ErrUnknown},
		{"empty", "", "svc", 0, ErrUnknown},
		{"too long", strings.Repeat("A", MaxTokenBytes+1), "svc", 0, ErrUnknown},
		{"one character off", tok[:42] + string(tok[42]^1), "svc", 0, ErrUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := s.Lookup(tt.token, tt.service, now.Add(tt.at))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Lookup: %v, want %v", err, tt.want)
			}
			if err == nil && (e.Subject != "alice" || !e.Admin || e.Service != "svc" || e.ID != Hash(tok)[:8] ||
				!e.Expires.Equal(now.Add(time.Hour)) || !e.Checked.Equal(now)) {
				t.Errorf("entry %+v", e)
			}
		})
	}

	// A new instance on the same directory (a restart, or the other
	// controller after a failover) knows the token.
	s2, _ := newStore(t, dir, 10, clock)
	if e, err := s2.Lookup(tok, "svc", now); err != nil || e.Subject != "alice" {
		t.Fatalf("after a restart: %+v %v", e, err)
	}
	// Touch moves Checked forward, never back.
	if err := s2.Touch(tok, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s2.Touch(tok, now); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Lookup(tok, "svc", now); !e.Checked.Equal(now.Add(time.Minute)) {
		t.Errorf("Checked %v after Touch, want %v", e.Checked, now.Add(time.Minute))
	}
}

func TestRefreshStoreRevoke(t *testing.T) {
	clock := fixture.NewClock()
	dir := fixture.StateDir(t)
	daemon, _ := newStore(t, dir, 100, clock)
	now := clock.Now()
	var alice, bob []string
	for range 3 {
		a, err := daemon.Issue(entry("alice", "svc", now, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		b, err := daemon.Issue(entry("bob", "svc", now, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		alice, bob = append(alice, a), append(bob, b)
	}
	// Revoked by another process (the revoke command): the daemon's store
	// sees it on its next lookup, without a restart.
	other, _ := newStore(t, dir, 100, clock)
	if n, err := other.RevokeUser("alice"); err != nil || n != 3 {
		t.Fatalf("RevokeUser: %d, %v; want 3", n, err)
	}
	for _, tok := range alice {
		if _, err := daemon.Lookup(tok, "svc", now); !errors.Is(err, ErrUnknown) {
			t.Errorf("revoked token: %v, want ErrUnknown", err)
		}
	}
	for _, tok := range bob {
		if _, err := daemon.Lookup(tok, "svc", now); err != nil {
			t.Errorf("bob's token after revoking alice: %v", err)
		}
	}
	if n, err := other.RevokeUser("nobody"); err != nil || n != 0 {
		t.Errorf("RevokeUser(nobody): %d, %v", n, err)
	}
	if n, err := other.RevokeAll(); err != nil || n != 3 {
		t.Fatalf("RevokeAll: %d, %v; want 3", n, err)
	}
	if _, err := daemon.Lookup(bob[0], "svc", now); !errors.Is(err, ErrUnknown) {
		t.Errorf("after RevokeAll: %v", err)
	}
	// Touch of a revoked token does not bring it back.
	if err := daemon.Touch(bob[0], now); !errors.Is(err, ErrUnknown) {
		t.Errorf("Touch of a revoked token: %v", err)
	}
	if _, err := daemon.Lookup(bob[0], "svc", now); !errors.Is(err, ErrUnknown) {
		t.Errorf("Touch revived a revoked token: %v", err)
	}
}

// TestRefreshStoreConcurrentWriters has two stores on one directory (the
// daemon and a second instance, or the revoke command) write at once:
// nothing is lost.
func TestRefreshStoreConcurrentWriters(t *testing.T) {
	clock := fixture.NewClock()
	dir := fixture.StateDir(t)
	a, _ := newStore(t, dir, 1000, clock)
	b, _ := newStore(t, dir, 1000, clock)
	now := clock.Now()
	const per = 25
	var wg sync.WaitGroup
	toks := make([][]string, 4)
	for i, s := range []*FileStore{a, b, a, b} {
		wg.Go(func() {
			for range per {
				tok, err := s.Issue(entry(fmt.Sprintf("user%d", i), "svc", now, time.Hour))
				if err != nil {
					t.Error(err)
					return
				}
				toks[i] = append(toks[i], tok)
			}
		})
	}
	wg.Go(func() {
		for range per {
			if _, err := b.RevokeUser("nobody"); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	c, _ := newStore(t, dir, 1000, clock)
	if c.Len() != 4*per {
		t.Fatalf("%d entries on disk, want %d", c.Len(), 4*per)
	}
	for _, ts := range toks {
		for _, tok := range ts {
			if _, err := a.Lookup(tok, "svc", now); err != nil {
				t.Fatalf("a token was lost: %v", err)
			}
		}
	}
}

func TestRefreshStorePurgeAndBound(t *testing.T) {
	clock := fixture.NewClock()
	s, _ := newStore(t, fixture.StateDir(t), 3, clock)
	now := clock.Now()
	short, err := s.Issue(entry("a", "svc", now, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.Issue(entry("b", "svc", now, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Issue(entry("c", "svc", now, time.Hour)); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("4th entry with refresh_token_max 3: %v, want ErrStoreFull", err)
	}
	// Once the short one expires, the next write purges it and makes room.
	clock.Add(time.Minute)
	if _, err := s.Issue(entry("c", "svc", clock.Now(), time.Hour)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if s.Len() != 3 {
		t.Errorf("%d entries, want 3", s.Len())
	}
	if _, err := s.Lookup(short, "svc", clock.Now()); !errors.Is(err, ErrUnknown) {
		t.Errorf("purged token: %v, want ErrUnknown", err)
	}
}

func TestRefreshStoreDirectoryChecks(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	tests := []struct{ name, dir, want string }{
		{"missing", filepath.Join(base, "missing"), "no such file"},
		{"group readable", open, "chmod 700"},
		{"not a directory", file, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFileStore(tt.dir, DefaultLimits, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestRefreshStoreDamaged: a truncated, garbage or tampered file never
// stops the store; bad lines are logged with their numbers, good entries
// kept, and the damaged original saved before the next rewrite.
func TestRefreshStoreDamaged(t *testing.T) {
	clock := fixture.NewClock()
	now := clock.Now()
	// Three good tokens to damage the file around.
	seed := fixture.StateDir(t)
	s, _ := newStore(t, seed, 10, clock)
	var toks []string
	for _, u := range []string{"alice", "bob", "carol"} {
		tok, err := s.Issue(entry(u, "svc", now, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	good, err := os.ReadFile(filepath.Join(seed, refreshFileName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(good), "\n") // header, 3 entries, ""
	lineOf := func(tok string) int {
		for i, l := range lines {
			if strings.Contains(l, Hash(tok)) {
				return i
			}
		}
		t.Fatal("token not in file")
		return 0
	}
	tamperedHash := strings.Replace(lines[lineOf(toks[0])], Hash(toks[0])[:4], "AAAA", 1)

	tests := []struct {
		name     string
		file     string
		working  []string // tokens that must still work
		refused  []string
		logged   string // in the log; "" means no error logged
		saveCopy bool
	}{
		{
			name:    "truncated mid-line",
			file:    string(good[:len(good)-20]),
			working: toks[:0], // filled below
			logged:  "bad_line_numbers=[4]",
		},
		{
			name:   "garbage",
			file:   "\x00\x01garbage\n{not json\n" + strings.Repeat("x", 3000) + "\n",
			logged: "header_ok=false bad_lines=3",
		},
		{
			name:    "tampered hash",
			file:    strings.Replace(string(good), lines[lineOf(toks[0])], tamperedHash, 1),
			working: []string{toks[1], toks[2]},
			refused: []string{toks[0]},
		},
		{
			name:    "wrong header",
			file:    `{"stx-token-server-refresh-tokens":99}` + "\n" + strings.Join(lines[1:], ""),
			working: toks,
			logged:  "header_ok=false",
		},
		{
			name:    "bad JSON line among good ones",
			file:    lines[0] + lines[1] + "{\"hash\":\n" + lines[2] + lines[3],
			working: toks,
			logged:  "bad_line_numbers=[3]",
		},
		{
			name:    "unknown field",
			file:    lines[0] + lines[1] + lines[2] + strings.Replace(lines[3], `{"hash"`, `{"extra":1,"hash"`, 1),
			refused: []string{},
			logged:  "bad_line_numbers=[4]",
		},
	}
	// The truncated file keeps the first two entries.
	tests[0].working = []string{}
	for _, tok := range toks {
		if lineOf(tok) < 3 {
			tests[0].working = append(tests[0].working, tok)
		} else {
			tests[0].refused = append(tests[0].refused, tok)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fixture.StateDir(t)
			path := filepath.Join(dir, refreshFileName)
			os.WriteFile(path, []byte(tt.file), 0o600)
			s, logs := newStore(t, dir, 10, clock)
			for _, tok := range tt.working {
				if _, err := s.Lookup(tok, "svc", now); err != nil {
					t.Errorf("a good entry was dropped: %v", err)
				}
			}
			for _, tok := range tt.refused {
				if _, err := s.Lookup(tok, "svc", now); !errors.Is(err, ErrUnknown) {
					t.Errorf("damaged entry: %v, want ErrUnknown", err)
				}
			}
			if tt.logged == "" {
				if logs.Len() != 0 {
					t.Errorf("logged %s", logs)
				}
				return
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), tt.logged) {
				t.Errorf("log %q lacks an error with %q", logs, tt.logged)
			}
			// The next write saves the damaged file and writes a clean one.
			if _, err := s.Issue(entry("dave", "svc", now, time.Hour)); err != nil {
				t.Fatal(err)
			}
			saved, _ := filepath.Glob(path + ".corrupt-*")
			if len(saved) != 1 {
				t.Fatalf("saved copies %v, want one", saved)
			}
			if b, _ := os.ReadFile(saved[0]); string(b) != tt.file {
				t.Errorf("the saved copy differs from the damaged file")
			}
			logs.Reset()
			s2, logs2 := newStore(t, dir, 10, clock)
			if logs2.Len() != 0 {
				t.Errorf("the rewritten file is still reported: %s", logs2)
			}
			for _, tok := range tt.working {
				if _, err := s2.Lookup(tok, "svc", now); err != nil {
					t.Errorf("a good entry was lost in the rewrite: %v", err)
				}
			}
		})
	}
}

func FuzzParseRefreshLine(f *testing.F) {
	f.Add([]byte(`{"hash":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU","sub":"alice","admin":false,"service":"registry.local:9001","created":1800000000,"expires":1800003600,"checked":1800000000}`))
	f.Add([]byte(`{"hash":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU","sub":"alice","uid":"0123456789abcdef0123456789abcdef","client":"docker","admin":true,"service":"registry.local:9001","created":1800000000,"expires":1800003600,"checked":1800000000}`))
	f.Add([]byte(`{"touch":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU","checked":1800000600}`))
	f.Add([]byte(`{"revoke":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}`))
	f.Add([]byte(`{"revoke":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU","checked":1}`))
	f.Add([]byte(refreshHeader))
	f.Add([]byte(`{"hash":"","sub":"","service":""}`))
	f.Add([]byte(`{"hash":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU","sub":"a\u0000b","service":"s","created":1,"expires":2,"checked":1}`))
	f.Add([]byte("garbage\x00"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseLine(line)
		if err != nil {
			return
		}
		// Whatever parses is what the server could have written: it
		// survives an encode/parse round trip, and an issue record names a
		// usable entry that a rewrite keeps.
		again, err := ParseLine(r.encode())
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip of %+v: %+v %v", r, again, err)
		}
		if r.issue == nil {
			return
		}
		idx := newIndex()
		idx.apply(r, 0)
		e := idx.entries[r.hash].entry()
		if e.ID == "" || e.Subject == "" || e.Service == "" || e.Expires.Before(e.Created) {
			t.Fatalf("accepted a bad entry %+v", r.issue)
		}
		s := &FileStore{now: func() time.Time { return time.Unix(0, 0) }}
		idx2 := newIndex()
		body, _ := bytes.CutPrefix(encodeFile(idx.snapshot()), []byte(refreshHeader+"\n"))
		rep := refreshReport{headerOK: true}
		if s.apply(idx2, s.parse(body), 2, &rep); rep.bad() || idx2.entries[r.hash].line() != *r.issue {
			t.Fatalf("rewrite of %+v: %+v", r.issue, rep)
		}
	})
}
