package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"stx-registry/token/refresh"
)

// testClock is an injected clock for expiry.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *testClock { return &testClock{t: time.Unix(1_800_000_000, 0)} }

// stateDir is a fresh 0700 state directory.
func stateDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newStore is a refresh store in dir on clock, logging nowhere.
func newStore(t testing.TB, dir string, max int, clock *testClock) *refresh.FileStore {
	t.Helper()
	s, err := refresh.NewFileStore(dir, max, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.SetClock(clock.now)
	return s
}

func entry(user, service string, now time.Time, ttl time.Duration) refresh.Entry {
	return refresh.Entry{Subject: user, Service: service, Created: now, Expires: now.Add(ttl)}
}
