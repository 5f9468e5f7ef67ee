package gc

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestIsCommitStep(t *testing.T) {
	for _, c := range []struct {
		method, target string
		want           bool
	}{
		{"PUT", "/v2/a/b/blobs/uploads/0b4b2bd6?digest=sha256:ab", true},
		{"POST", "/v2/a/b/blobs/uploads/?mount=sha256:ab&from=c/d", true},
		{"POST", "/v2/a/b/blobs/uploads/?digest=sha256:ab", true},
		{"PUT", "/v2/a/b/manifests/v1", true},
		{"POST", "/v2/a/b/blobs/uploads/", false},
		{"PATCH", "/v2/a/b/blobs/uploads/0b4b2bd6", false},
		{"GET", "/v2/a/b/manifests/v1", false},
		{"DELETE", "/v2/a/b/manifests/sha256:ab", false},
		{"GET", "/v2/a/b/blobs/sha256:ab", false},
	} {
		if got := IsCommitStep(httptest.NewRequest(c.method, c.target, nil)); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.method, c.target, got, c.want)
		}
	}
}

// A commit step waits while a collection holds the lock; a pull does not.
func TestCommitSteps(t *testing.T) {
	l, err := OpenLock(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := CommitSteps(l, slog.New(slog.DiscardHandler), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	release, err := l.Exclusive(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pulled := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v2/a/b/manifests/v1", nil))
		close(pulled)
	}()
	select {
	case <-pulled:
	case <-time.After(2 * time.Second):
		t.Fatal("a pull waited for the collection")
	}
	pushed := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PUT", "/v2/a/b/manifests/v1", nil))
		close(pushed)
	}()
	select {
	case <-pushed:
		t.Fatal("a manifest PUT ran beside a collection")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case <-pushed:
	case <-time.After(2 * time.Second):
		t.Fatal("the manifest PUT still waits after the collection")
	}

	// A client that goes away while held gets nothing and holds nothing.
	release, _ = l.Exclusive(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(rec, httptest.NewRequest("PUT", "/v2/a/b/manifests/v1", nil).WithContext(ctx))
		close(done)
	}()
	cancel()
	<-done
	release()
	if _, err := l.Exclusive(context.Background()); err != nil {
		t.Fatal(err)
	}
}
