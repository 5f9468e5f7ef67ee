package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"stx-registry/token/internal/fixture"
	"stx-registry/token/refresh"
	"stx-registry/token/unlock"
)

func entry(user, service string, now time.Time, ttl time.Duration) refresh.Entry {
	return refresh.Entry{Subject: user, Service: service, Created: now, Expires: now.Add(ttl)}
}

func TestRevokeCommand(t *testing.T) {
	dir := t.TempDir()
	key, _ := fixture.WriteKey(t, dir, "k.key", 0o600)
	state := fixture.StateDir(t)
	conf := fixture.KeyConfig(dir, "state_directory "+state+"\n", key)
	clock := fixture.NewClock()
	store, err := refresh.NewFileStore(state, refresh.Limits{Max: 10, UserMax: 10, ClientMax: 10}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	store.SetClock(clock.Now)
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

// unlock queues a request that the running daemon (here a watcher on the
// same state directory) handles, and says so; without a daemon it says
// that nobody picked the request up.
func TestUnlockCommand(t *testing.T) {
	dir := t.TempDir()
	key, _ := fixture.WriteKey(t, dir, "k.key", 0o600)
	state := fixture.StateDir(t)
	conf := fixture.KeyConfig(dir, "state_directory "+state+"\n", key)
	ctx, cancel := context.WithCancel(context.Background())
	unlocked := make(chan string, 1)
	go unlock.Watch(ctx, state, func(user string) bool { unlocked <- user; return true }, slog.New(slog.DiscardHandler))
	var out, errOut bytes.Buffer
	if err := unlockMain([]string{"-f", conf, "alice"}, &out, &errOut); err != nil || out.String() != "unlocked user \"alice\"\n" {
		t.Fatalf("unlock: %q %v", out.String(), err)
	}
	if u := <-unlocked; u != "alice" {
		t.Fatalf("daemon unlocked %q", u)
	}
	cancel()
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"-f", conf}, "usage error"},
		{[]string{"-f", conf, "a", "b"}, "usage error"},
		{[]string{"-f", conf, ""}, "usage error"},
		{[]string{"-f", fixture.KeyConfig(t.TempDir(), "", key), "alice"}, "state_directory is not configured"},
	} {
		if err := unlockMain(tt.args, &out, &errOut); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.err)
		}
	}
}
