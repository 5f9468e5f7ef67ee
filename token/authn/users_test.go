package authn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func init() { bcryptCost = bcrypt.MinCost } // tests need no strength, only speed

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestUsersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := SetPassword(path, "alice", []byte("pw-a")); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "bob", []byte("pw-b")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %v, want 0600", fi.Mode().Perm())
	}
	u, err := NewUsersFile(path, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(user, pw string, ok bool) {
		t.Helper()
		id, err := u.Authenticate(ctx, Credentials{User: user, Password: pw})
		if ok && (err != nil || id.Name != user) {
			t.Errorf("%s/%s: %v %v, want success", user, pw, id, err)
		}
		if !ok && !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s/%s: %v, want ErrBadCredentials", user, pw, err)
		}
	}
	check("alice", "pw-a", true)
	check("bob", "pw-b", true)
	check("alice", "pw-b", false)
	check("carol", "pw-a", false)
	check("alice", strings.Repeat("x", 100), false)
	check("Alice", "pw-a", false) // names are exact

	// Edits are picked up without a restart.
	if err := SetPassword(path, "alice", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "bob", nil); err != nil {
		t.Fatal(err)
	}
	u.Recheck()
	check("alice", "new", true)
	check("alice", "pw-a", false)
	check("bob", "pw-b", false)

	// A broken edit keeps the last good contents.
	os.WriteFile(path, []byte("garbage without colon\n"), 0o600)
	u.Recheck()
	check("alice", "new", true)

	if err := SetPassword(path, "nobody", nil); err == nil {
		t.Error("deleting a missing user succeeded")
	}
}

func TestUsersFileRefusals(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	tests := []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"world readable", "a:" + string(hash) + "\n", 0o644, "chmod 600"},
		{"group readable", "a:" + string(hash) + "\n", 0o640, "chmod 600"},
		{"no colon", "alice\n", 0o600, ":1: want name:bcrypt-hash"},
		{"not bcrypt", "alice:plaintext\n", 0o600, "not a bcrypt hash"},
		{"duplicate", "a:" + string(hash) + "\na:" + string(hash) + "\n", 0o600, ":2: duplicate user"},
		{"bad name", "a b:" + string(hash) + "\n", 0o600, "only letters"},
		{"long line", strings.Repeat("a", 600) + "\n", 0o600, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			os.WriteFile(p, []byte(tt.content), tt.mode)
			os.Chmod(p, tt.mode)
			_, err := NewUsersFile(p, discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := NewUsersFile(filepath.Join(dir, "missing"), discard); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSetPasswordRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := SetPassword(path, "bad:name", []byte("pw")); err == nil {
		t.Error("name with a colon accepted")
	}
	if err := SetPassword(path, "alice", []byte(strings.Repeat("p", 73))); err == nil {
		t.Error("password beyond bcrypt's 72 bytes accepted")
	}
}

func FuzzParseUsers(f *testing.F) {
	f.Add("# comment\nalice:$2a$04$abcdefghijklmnopqrstuu5gC6hTL9tVZyh2zvJ6rn2sWxWv2vXzG\n")
	f.Add("a:b:c\n\n  \n")
	f.Fuzz(func(t *testing.T, s string) {
		users, err := parseUsers("f", []byte(s))
		if err == nil {
			for name := range users {
				if checkUsername(name) != nil {
					t.Fatalf("accepted bad name %q", name)
				}
			}
		}
	})
}
