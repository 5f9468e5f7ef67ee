package server

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"stx-registry/shared/jws"
	"stx-registry/token/config"
	"stx-registry/token/internal/fixture"
	"stx-registry/token/issuer"
)

func kidOf(t *testing.T, s *Server) string {
	t.Helper()
	kid, err := jws.KeyID(s.issuer.Load().PublicKeys()[0])
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
	newKid, _ := jws.KeyID(nk.Public())

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
