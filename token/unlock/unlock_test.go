package unlock

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRequestAndHandle(t *testing.T) {
	state := t.TempDir()
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	path, err := Request(state, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(Dir(state)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("request directory: %v %v", fi.Mode(), err)
	}
	// A request being written, and a bad one.
	os.WriteFile(filepath.Join(Dir(state), ".user-x.tmp-1"), []byte("bob\n"), 0o600)
	os.WriteFile(filepath.Join(Dir(state), "user-bad"), []byte("a\x01b\n"), 0o600)
	var got []string
	Handle(state, func(user string) bool { got = append(got, user); return true }, log)
	if len(got) != 1 || got[0] != "alice" {
		t.Fatalf("unlocked %q, want alice", got)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("handled request not removed")
	}
	if _, err := os.Stat(filepath.Join(Dir(state), "user-bad")); !os.IsNotExist(err) {
		t.Fatal("bad request not removed")
	}
	if _, err := os.Stat(filepath.Join(Dir(state), ".user-x.tmp-1")); err != nil {
		t.Fatal("a request being written was touched")
	}
	if !strings.Contains(logs.String(), "unlock request ignored") || !strings.Contains(logs.String(), "user=alice") {
		t.Fatalf("logs: %s", logs.String())
	}
	for _, bad := range []string{"", strings.Repeat("x", 256), "a\nb"} {
		if _, err := Request(state, bad); err == nil {
			t.Errorf("Request(%q) accepted", bad)
		}
	}
}

// Watch handles a request while it runs; Wait returns once it has.
func TestWatch(t *testing.T) {
	state := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan string, 1)
	go Watch(ctx, state, func(user string) bool { done <- user; return false }, slog.New(slog.DiscardHandler))
	path, err := Request(state, "carol")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := Wait(wctx, path); err != nil {
		t.Fatal(err)
	}
	if u := <-done; u != "carol" {
		t.Fatalf("unlocked %q", u)
	}
}
