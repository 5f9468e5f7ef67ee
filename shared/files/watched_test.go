package files

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// replace writes data to path by rename, as operators should.
func replace(t *testing.T, path, data string) {
	t.Helper()
	if err := WriteAtomic(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// watchFile watches path, loading its contents; a file holding "bad" fails.
func watchFile(t *testing.T, path string, interval time.Duration) (*Watched[string], *[]string) {
	t.Helper()
	var mu sync.Mutex
	events := &[]string{}
	w, err := New(Watch[string]{
		Paths:    []string{path},
		Interval: interval,
		Load: func() (string, error) {
			data, err := Read(path, 100)
			if err != nil {
				return "", err
			}
			if string(data) == "bad" {
				return "", errors.New("bad contents")
			}
			return string(data), nil
		},
		Loaded: func(v string) { mu.Lock(); *events = append(*events, "loaded "+v); mu.Unlock() },
		Failed: func(err error) { mu.Lock(); *events = append(*events, "failed "+err.Error()); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, events
}

func TestWatched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	replace(t, path, "one")
	w, events := watchFile(t, path, time.Hour)
	if got := w.Get(); got != "one" {
		t.Fatalf("Get = %q", got)
	}

	// Within the interval nothing is looked at.
	replace(t, path, "two")
	if got := w.Get(); got != "one" {
		t.Fatalf("files checked within the interval: %q", got)
	}
	w.Recheck()
	if got := w.Get(); got != "two" {
		t.Fatalf("change not picked up: %q", got)
	}

	// A bad file keeps the old value and is reported once.
	replace(t, path, "bad")
	for range 3 {
		w.Recheck()
		if got := w.Get(); got != "two" {
			t.Fatalf("bad file replaced the value: %q", got)
		}
	}
	if err := w.Reload(); err == nil {
		t.Error("Reload of a bad file succeeded")
	}
	// A removed file too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w.Recheck()
	w.Get()
	replace(t, path, "three")
	w.Recheck()
	if got := w.Get(); got != "three" {
		t.Fatalf("fixed file not picked up: %q", got)
	}
	want := "loaded two|failed bad contents|failed bad contents|failed open " + path + ": no such file or directory|loaded three"
	if got := strings.Join(*events, "|"); got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}

	// Reload forces a read even of unchanged files; Set records a value.
	if err := w.Reload(); err != nil || w.Current() != "three" {
		t.Errorf("Reload: %v, %q", err, w.Current())
	}
	w.Set("mine")
	w.Recheck()
	if got := w.Get(); got != "mine" {
		t.Errorf("Set value replaced by a re-read of unchanged files: %q", got)
	}
}

// TestWatchedSameSize notices a replacement with the same size and
// modification time, by its inode.
func TestWatchedSameSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	replace(t, path, "one")
	mtime := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	w, _ := watchFile(t, path, 0)
	replace(t, path, "two")
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if got := w.Get(); got != "two" {
		t.Errorf("replacement by rename not noticed: %q", got)
	}
}

func TestWatchedStartError(t *testing.T) {
	if _, err := New(Watch[int]{Load: func() (int, error) { return 0, errors.New("no") }}); err == nil {
		t.Error("New with a failing Load succeeded")
	}
}

// TestWatchedConcurrent reads while the file flips and is reloaded, for the
// race detector.
func TestWatchedConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	replace(t, path, "a")
	w, _ := watchFile(t, path, 0)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if v := w.Get(); v != "a" && v != "bb" {
					t.Errorf("Get = %q", v)
				}
			}
		})
	}
	for i := range 40 {
		replace(t, path, []string{"bb", "a"}[i%2])
		if i%3 == 0 {
			_ = w.Reload()
		}
	}
	wg.Wait()
}
