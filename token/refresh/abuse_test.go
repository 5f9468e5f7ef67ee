package refresh

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stx-registry/shared/files"
	"stx-registry/token/internal/fixture"
)

// seedFile writes a state file with n live tokens of n different users, as
// the store writes them, and returns the tokens: building a big store
// through Issue would measure the old store's cost, not set up the test.
func seedFile(t testing.TB, dir string, n int, now time.Time) []string {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(refreshHeader + "\n")
	toks := make([]string, n)
	for i := range toks {
		var raw [refreshTokenBytes]byte
		rand.Read(raw[:])
		toks[i] = b64.EncodeToString(raw[:])
		b, _ := json.Marshal(refreshLine{Hash: Hash(toks[i]), Subject: fmt.Sprintf("user%d", i), Service: "svc",
			Created: now.Unix(), Expires: now.Add(time.Hour).Unix(), Checked: now.Unix()})
		buf.Write(b)
		buf.WriteByte('\n')
	}
	// Written and fsynced, so that the first fsync of a measured append
	// does not flush the seed.
	if err := files.WriteAtomic(filepath.Join(dir, refreshFileName), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return toks
}

// TestRefreshStoreOneUserLoop: with 10k entries, one user looping logins
// neither rewrites the file per login (which made every other user's
// refresh wait 0.1 s at 10k entries, 1 s at 100k) nor fills the store for
// everyone else.
func TestRefreshStoreOneUserLoop(t *testing.T) {
	clock := fixture.NewClock()
	now := clock.Now()
	dir := fixture.StateDir(t)
	const others = 10000
	toks := seedFile(t, dir, others, now)
	s, err := NewFileStore(dir, Limits{Max: others + 500, UserMax: 100, ClientMax: 20}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.SetClock(clock.Now)
	path := filepath.Join(dir, refreshFileName)
	last, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	rewrites := 0
	parsed := s.parsed.Load()
	var mine []string
	for i := range 1000 {
		tok, err := s.Issue(entry("looper", "svc", now, time.Hour))
		if err != nil {
			t.Fatalf("login %d of the looping user: %v", i, err)
		}
		mine = append(mine, tok)
		// Another user's refresh between two of the loop's logins.
		if _, err := s.Lookup(toks[i], "svc", now); err != nil {
			t.Fatalf("user%d's token: %v", i, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(fi, last) {
			rewrites++
			last = fi
		}
	}
	if rewrites > 1 {
		t.Errorf("1000 logins rewrote the %d-entry file %d times", others, rewrites)
	}
	// Each login appends its record and one for the token it drops, and
	// the store reads back only those: nothing grows with the store.
	if n := s.parsed.Load() - parsed; n > 2*1000 {
		t.Errorf("1000 logins and lookups parsed %d records of a %d-entry store", n, others)
	}
	// Nobody else lost a token, and a newcomer still gets one.
	for i, tok := range toks {
		if _, err := s.Lookup(tok, "svc", now); err != nil {
			t.Fatalf("user%d's token after the loop: %v", i, err)
		}
	}
	if _, err := s.Issue(entry("newcomer", "svc", now, time.Hour)); err != nil {
		t.Fatalf("a new user's login after the loop: %v", err)
	}
	// The looping user keeps only their newest tokens.
	if _, err := s.Lookup(mine[len(mine)-1], "svc", now); err != nil {
		t.Errorf("the looping user's newest token: %v", err)
	}
	if _, err := s.Lookup(mine[0], "svc", now); !errors.Is(err, ErrUnknown) {
		t.Errorf("the looping user's oldest token: %v, want ErrUnknown", err)
	}
}

// TestRefreshStoreClientLimit: the per-client limit drops the oldest token
// of that client only; the per-user limit then the user's oldest.
func TestRefreshStoreClientLimit(t *testing.T) {
	clock := fixture.NewClock()
	now := clock.Now()
	s, err := NewFileStore(fixture.StateDir(t), Limits{Max: 100, UserMax: 4, ClientMax: 2}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.SetClock(clock.Now)
	issue := func(client string) string {
		e := entry("alice", "svc", now, time.Hour)
		e.ClientID = client
		tok, err := s.Issue(e)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	live := func(tok string) bool { _, err := s.Lookup(tok, "svc", now); return err == nil }
	d1, c1, d2 := issue("docker"), issue("containerd"), issue("docker")
	d3 := issue("docker") // the third docker token drops the first
	if live(d1) || !live(c1) || !live(d2) || !live(d3) {
		t.Fatalf("after 3 docker logins with refresh_token_client_max 2: %v %v %v %v", live(d1), live(c1), live(d2), live(d3))
	}
	c2 := issue("containerd")
	c3 := issue("") // alice's fifth live token: her oldest (c1) goes
	if live(c1) || !live(d2) || !live(d3) || !live(c2) || !live(c3) {
		t.Fatalf("after 5 logins with refresh_token_user_max 4: %v %v %v %v %v", live(c1), live(d2), live(d3), live(c2), live(c3))
	}
	if e, _ := s.Lookup(c2, "svc", now); e.ClientID != "containerd" {
		t.Errorf("entry %+v lacks its client_id", e)
	}
}

// TestRefreshStoreCompaction: the file is rewritten once dead records
// outnumber live ones, and another process reading it keeps up.
func TestRefreshStoreCompaction(t *testing.T) {
	clock := fixture.NewClock()
	now := clock.Now()
	dir := fixture.StateDir(t)
	s, err := NewFileStore(dir, Limits{Max: 10000, UserMax: 10, ClientMax: 10}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newStore(t, dir, 10000, clock)
	var toks []string
	for range 2000 {
		tok, err := s.Issue(entry("looper", "svc", now, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	last := toks[len(toks)-1]
	if n := s.rewrites.Load(); n < 2 || n > 20 {
		t.Errorf("%d rewrites for 2000 logins dropping 1990 tokens, want a few", n)
	}
	if fi, _ := os.Stat(filepath.Join(dir, refreshFileName)); fi.Size() > 2*(minCompactDead+10)*300 {
		t.Errorf("the file holds %d bytes for 10 live tokens", fi.Size())
	}
	if _, err := other.Lookup(last, "svc", now); err != nil || other.Len() != 10 {
		t.Fatalf("another process after the rewrites: %v, %d entries", err, other.Len())
	}
	// A rewritten file keeps each user's order: a restarted store drops
	// the oldest of the ten first.
	restarted, err := NewFileStore(dir, Limits{Max: 10000, UserMax: 10, ClientMax: 10}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	restarted.SetClock(clock.Now)
	if _, err := restarted.Issue(entry("looper", "svc", now, time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i, tok := range toks[len(toks)-10:] {
		_, err := restarted.Lookup(tok, "svc", now)
		if (i == 0) != errors.Is(err, ErrUnknown) {
			t.Errorf("token %d of the last ten after one more login: %v", i, err)
		}
	}
}

// TestRefreshStoreTornLine: a line cut short by a writer killed mid-write is
// not damage while a writer may still be at work, but the next write, under
// the lock, saves and rewrites the file; nothing acknowledged is lost.
func TestRefreshStoreTornLine(t *testing.T) {
	clock := fixture.NewClock()
	now := clock.Now()
	dir := fixture.StateDir(t)
	s, logs := newStore(t, dir, 100, clock)
	a, err := s.Issue(entry("alice", "svc", now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, refreshFileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"hash":"47DEQpj8HBSa-_TImW-5JCe`)
	f.Close()
	if _, err := s.Lookup(a, "svc", now); err != nil || logs.Len() != 0 {
		t.Fatalf("lookup beside a half-written line: %v; logged %s", err, logs)
	}
	b, err := s.Issue(entry("bob", "svc", now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the torn line was not reported: %s", logs)
	}
	if saved, _ := filepath.Glob(path + ".corrupt-*"); len(saved) != 1 {
		t.Errorf("saved copies %v, want one", saved)
	}
	s2, logs2 := newStore(t, dir, 100, clock)
	for _, tok := range []string{a, b} {
		if _, err := s2.Lookup(tok, "svc", now); err != nil {
			t.Errorf("after the rewrite: %v", err)
		}
	}
	if logs2.Len() != 0 {
		t.Errorf("the rewritten file is still reported: %s", logs2)
	}
}

// TestRefreshStoreTooLarge: a file beyond its bound is read up to the bound
// and reported; lookups do not read it again and again, and the next write
// saves it and rewrites it.
func TestRefreshStoreTooLarge(t *testing.T) {
	clock := fixture.NewClock()
	now := clock.Now()
	dir := fixture.StateDir(t)
	toks := seedFile(t, dir, 1, now)
	path := filepath.Join(dir, refreshFileName)
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(bytes.Repeat([]byte("junk line\n"), 60000)) // past (2×1+257)×2 KiB
	f.Close()
	s, logs := newStore(t, dir, 1, clock)
	if !strings.Contains(logs.String(), "too_large=true") {
		t.Fatalf("not reported: %s", logs)
	}
	parsed := s.parsed.Load()
	for range 10 {
		if _, err := s.Lookup(toks[0], "svc", now); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.parsed.Load() - parsed; n != 0 {
		t.Errorf("10 lookups parsed %d lines of the oversized file", n)
	}
	if err := s.Revoke(toks[0]); err != nil {
		t.Fatal(err)
	}
	if saved, _ := filepath.Glob(path + ".corrupt-*"); len(saved) != 1 {
		t.Errorf("saved copies %v, want one", saved)
	}
	if fi, _ := os.Stat(path); fi.Size() > int64(len(refreshHeader))+1 {
		t.Errorf("rewritten file has %d bytes, want only the header", fi.Size())
	}
}
