package health

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		breakRoot  func(t *testing.T, root string)
		wantStatus int
		wantReason string
	}{
		{name: "healthy", method: "GET", path: "/healthz", wantStatus: 200},
		{name: "healthy HEAD", method: "HEAD", path: "/healthz", wantStatus: 200},
		{name: "POST refused", method: "POST", path: "/healthz", wantStatus: 405},
		{name: "other paths pass", method: "GET", path: "/v2/", wantStatus: 418},
		{name: "mode opened", method: "GET", path: "/healthz", wantStatus: 503, wantReason: "chmod 700",
			breakRoot: func(t *testing.T, root string) {
				if err := os.Chmod(root, 0o755); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "removed", method: "GET", path: "/healthz", wantStatus: 503, wantReason: "does not exist",
			breakRoot: func(t *testing.T, root string) {
				if err := os.Remove(root); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "replaced", method: "GET", path: "/healthz", wantStatus: 503, wantReason: "not the directory stx-registry started with",
			breakRoot: func(t *testing.T, root string) {
				if err := os.Rename(root, root+".old"); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(root, 0o700); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			if err := os.Mkdir(root, 0o700); err != nil {
				t.Fatal(err)
			}
			rh, err := Open(root, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer rh.Close()
			if tt.breakRoot != nil {
				tt.breakRoot(t, root)
			}
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
			rec := httptest.NewRecorder()
			Handler(rh, next).ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %q)", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.path != Path || tt.method == "POST" {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.method == "HEAD" {
				if rec.Body.Len() != 0 {
					t.Errorf("HEAD body %q", rec.Body)
				}
				return
			}
			var body struct{ Status, Reason string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if tt.wantStatus == 200 && body.Status != "ok" {
				t.Errorf("status %q, want ok", body.Status)
			}
			if tt.wantStatus == 503 && !strings.Contains(body.Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", body.Reason, tt.wantReason)
			}
		})
	}
}
