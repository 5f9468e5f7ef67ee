package readiness

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stx-registry/registry/gc"
	"stx-registry/registry/reserve"
)

func TestReadyz(t *testing.T) {
	root := t.TempDir()
	if _, err := gc.OpenLock(root); err != nil { // creates the state directory
		t.Fatal(err)
	}
	free := uint64(500)
	var healthErr, keysErr error
	c := &Checker{
		Healthy: func() error { return healthErr },
		Root:    root,
		Guard: &reserve.Guard{Root: root, Reserve: reserve.Size{Bytes: 100, Set: true},
			Statfs: func(string) (reserve.Space, error) { return reserve.Space{Total: 1000, Free: free}, nil }},
		TokenKeys: func() error { return keysErr },
		Logger:    slog.New(slog.DiscardHandler),
	}
	h := Handler(c, http.NotFoundHandler())
	get := func() (int, map[string]string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", Path, nil))
		var body map[string]string
		json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	if code, body := get(); code != 200 || body["status"] != "ready" {
		t.Fatalf("%d %v", code, body)
	}
	cases := []struct {
		name   string
		break_ func()
		fix    func()
		reason string
	}{
		{"unhealthy", func() { healthErr = errors.New("root_directory is not a mount point") }, func() { healthErr = nil }, "mount point"},
		{"full", func() { free = 50 }, func() { free = 500 }, "storage_reserve"},
		{"no keys", func() { keysErr = errors.New("no token keys") }, func() { keysErr = nil }, "token keys"},
		{"read-only", func() { os.Chmod(filepath.Join(root, gc.StateDir), 0o500) }, func() { os.Chmod(filepath.Join(root, gc.StateDir), 0o700) }, "not writable"},
	}
	for _, tc := range cases {
		if tc.name == "read-only" && os.Geteuid() == 0 {
			continue // root writes anyway
		}
		tc.break_()
		code, body := get()
		tc.fix()
		if code != http.StatusServiceUnavailable || !strings.Contains(body["reason"], tc.reason) {
			t.Errorf("%s: %d %v", tc.name, code, body)
		}
	}
	if code, _ := get(); code != 200 {
		t.Errorf("after the fixes: %d", code)
	}
}
