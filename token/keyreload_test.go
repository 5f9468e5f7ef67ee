package main

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"stx-registry/token/config"
	"stx-registry/token/internal/fixture"
	"stx-registry/token/issuer"
	"testing"
)

func kidOf(t *testing.T, s *Server) string {
	t.Helper()
	kid, err := issuer.KeyID(s.issuer.Load().PublicKeys()[0])
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

func TestReloadSigningKeys(t *testing.T) {
	dir := t.TempDir()
	oldKey, _ := fixture.WriteKey(t, dir, "old.key", 0o600)
	newKey, nk := fixture.WriteKey(t, dir, "new.key", 0o600)
	badKey, _ := fixture.WriteKey(t, dir, "bad.key", 0o644)
	conf := fixture.KeyConfig(dir, "", oldKey)
	running, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestServer(t, &fakeAuth{})
	var logs bytes.Buffer
	s.log = slog.New(slog.NewTextHandler(&logs, nil))
	iss, err := issuer.Load(running.Issuer, running.TokenTTL, running.SigningKeys)
	if err != nil {
		t.Fatal(err)
	}
	s.issuer.Store(iss)
	oldKid := kidOf(t, s)
	newKid, _ := issuer.KeyID(nk.Public())

	// Step 2 of a rotation: the new key signs, the old one stays listed.
	fixture.KeyConfig(dir, "", newKey, oldKey)
	s.ReloadSigningKeys(conf, running)
	if kidOf(t, s) != newKid || len(s.issuer.Load().PublicKeys()) != 2 {
		t.Fatalf("after reload: signing kid %s, want %s", kidOf(t, s), newKid)
	}
	if strings.Contains(logs.String(), "need a restart") {
		t.Errorf("only signing_key changed, yet: %s", logs.String())
	}

	// A bad key, or a broken file, keeps the current keys.
	for _, tt := range []struct{ name, extra, key, want string }{
		{"group-readable key", "", badKey, "chmod 600"},
		{"missing key", "", filepath.Join(dir, "gone.key"), "no such file"},
		{"invalid file", "bogus_keyword 1\n", oldKey, "unknown keyword"},
	} {
		fixture.KeyConfig(dir, tt.extra, tt.key)
		logs.Reset()
		s.ReloadSigningKeys(conf, running)
		if kidOf(t, s) != newKid {
			t.Errorf("%s: the keys changed", tt.name)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), tt.want) {
			t.Errorf("%s: log %q lacks %q", tt.name, logs.String(), tt.want)
		}
	}

	// Other changes are named as needing a restart; the keys still reload.
	logs.Reset()
	fixture.KeyConfig(dir, "token_ttl 10m\n", oldKey)
	s.ReloadSigningKeys(conf, running)
	if kidOf(t, s) != oldKid || !strings.Contains(logs.String(), "need a restart") || !strings.Contains(logs.String(), "TokenTTL") {
		t.Errorf("kid %s (want %s), log %s", kidOf(t, s), oldKid, logs.String())
	}
}

func TestRevokeCommand(t *testing.T) {
	dir := t.TempDir()
	key, _ := fixture.WriteKey(t, dir, "k.key", 0o600)
	state := fixture.StateDir(t)
	conf := fixture.KeyConfig(dir, "state_directory "+state+"\n", key)
	clock := fixture.NewClock()
	store := newStore(t, state, 10, clock)
	for _, u := range []string{"alice", "alice", "bob"} {
		if _, err := store.Issue(entry(u, "svc", clock.Now(), 1<<40)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		args []string
		out  string
		err  string
	}{
		{[]string{"-f", conf, "-user", "alice"}, "revoked 2 refresh tokens of user \"alice\"\n", ""},
		{[]string{"-f", conf, "-user", "alice"}, "revoked 0 refresh tokens of user \"alice\"\n", ""},
		{[]string{"-f", conf, "-all"}, "revoked 1 refresh tokens\n", ""},
		{[]string{"-f", conf}, "", "usage error"},
		{[]string{"-f", conf, "-all", "-user", "x"}, "", "usage error"},
		{[]string{"-f", fixture.KeyConfig(t.TempDir(), "", key), "-all"}, "", "state_directory is not configured"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		err := revokeMain(tt.args, &out, &errOut)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: err %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || out.String() != tt.out {
			t.Errorf("%v: %q, %v; want %q", tt.args, out.String(), err, tt.out)
		}
	}
}

func TestJWKSCommand(t *testing.T) {
	dir := t.TempDir()
	k1, _ := fixture.WriteKey(t, dir, "k1.key", 0o600)
	k2, _ := fixture.WriteKey(t, dir, "k2.key", 0o600)
	var out, errOut bytes.Buffer
	if err := jwksMain([]string{"-f", fixture.KeyConfig(dir, "", k1, k2)}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), `"kid"`); n != 2 {
		t.Errorf("%d keys printed, want 2:\n%s", n, out.String())
	}
}
