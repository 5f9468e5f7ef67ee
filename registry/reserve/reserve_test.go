package reserve

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

	"github.com/distribution/distribution/v3/registry/auth"
)

// fakeAuth grants push to the bearer token's text, as the subject.
type fakeAuth struct{}

func (fakeAuth) Authorized(r *http.Request, _ ...auth.Access) (*auth.Grant, error) {
	user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, errors.New("no token")
	}
	return &auth.Grant{User: auth.UserInfo{Name: user}}, nil
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in    string
		total uint64
		want  uint64
		err   bool
	}{
		{"5%", 1000, 50, false},
		{"90%", 1000, 900, false},
		{"0", 1000, 0, false},
		{"16M", 1 << 40, 16 << 20, false},
		{"2G", 1 << 40, 2 << 30, false},
		{"1T", 1 << 50, 1 << 40, false},
		{"1024", 1 << 40, 1024, false},
		{"0%", 0, 0, true},
		{"91%", 0, 0, true},
		{"2GB", 0, 0, true},
		{"G", 0, 0, true},
		{"-5", 0, 0, true},
		{"99999999999T", 0, 0, true},
	} {
		s, err := Parse(c.in)
		if (err != nil) != c.err {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if err == nil && s.For(c.total) != c.want {
			t.Errorf("Parse(%q).For(%d) = %d, want %d", c.in, c.total, s.For(c.total), c.want)
		}
	}
	var def Size
	for _, c := range []struct{ total, want uint64 }{
		{100 << 30, 5 << 30}, // 5%
		{10 << 30, 1 << 30},  // the 1G floor
		{1 << 30, 512 << 20}, // at most half
	} {
		if got := def.For(c.total); got != c.want {
			t.Errorf("default for %d = %d, want %d", c.total, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"5%", "16M", "0", "2G", "x", "%", "1T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := Parse(v)
		if err == nil && s.For(1<<40) > 1<<62 {
			t.Errorf("%q: reserve %d", v, s.For(1<<40))
		}
	})
}

func TestGuard(t *testing.T) {
	root := t.TempDir()
	free := uint64(100)
	g := &Guard{Root: root, Reserve: Size{Bytes: 50, Set: true}, Auth: fakeAuth{}, Logger: slog.New(slog.DiscardHandler),
		Statfs: func(string) (Space, error) { return Space{Total: 1000, Free: free}, nil }}
	reached := 0
	h := g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		w.WriteHeader(http.StatusAccepted)
	}))
	do := func(method, target, user string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, strings.NewReader("data"))
		if user != "" {
			req.Header.Set("Authorization", "Bearer "+user)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	upload := "/v2/alice/app/blobs/uploads/"
	if rec := do("POST", upload, "alice"); rec.Code != http.StatusAccepted {
		t.Fatalf("above the reserve: %d", rec.Code)
	}
	free = 10
	for _, c := range []struct {
		method, target, user string
		want                 int
	}{
		{"POST", upload, "alice", Status},
		{"POST", upload + "?digest=sha256:ab", "alice", Status},
		// Uploads already open finish, and manifests are pushed, so that
		// an image whose layers were taken is not left half-pushed.
		{"PATCH", upload + "0b4b2bd6-0d1b-4d5c-8b0e-3c4f0ab1a2b3", "alice", http.StatusAccepted},
		{"PUT", upload + "0b4b2bd6-0d1b-4d5c-8b0e-3c4f0ab1a2b3?digest=x", "alice", http.StatusAccepted},
		{"PUT", "/v2/alice/app/manifests/v1", "alice", http.StatusAccepted},
		// Without a token distribution answers (with its challenge).
		{"POST", upload, "", http.StatusAccepted},
		// An admin (push granted outside the user's own namespace) pushes
		// into the reserve.
		{"POST", upload, "admin", http.StatusAccepted},
		{"POST", "/v2/alice/app/blobs/uploads/", "sysinv", http.StatusAccepted},
		// Mounts, pulls and deletes pass.
		{"POST", upload + "?mount=sha256:ab&from=bob/x", "alice", http.StatusAccepted},
		{"GET", "/v2/alice/app/manifests/v1", "alice", http.StatusAccepted},
		{"DELETE", "/v2/alice/app/manifests/sha256:ab", "alice", http.StatusAccepted},
	} {
		before := reached
		rec := do(c.method, c.target, c.user)
		if rec.Code != c.want {
			t.Errorf("%s %s as %q: %d, want %d", c.method, c.target, c.user, rec.Code, c.want)
			continue
		}
		if c.want == Status {
			if reached != before {
				t.Errorf("%s %s reached distribution", c.method, c.target)
			}
			var body struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 ||
				body.Errors[0].Code != "DENIED" || !strings.Contains(body.Errors[0].Message, "storage is full") {
				t.Errorf("body %s: %v", rec.Body, err)
			}
		}
	}
}

// An upload that fails for lack of space (a 5xx while below the reserve)
// gets the storage-full error and its partial data is removed.
func TestGuardENOSPC(t *testing.T) {
	root := t.TempDir()
	free := uint64(100)
	g := &Guard{Root: root, Reserve: Size{Bytes: 50, Set: true}, Auth: fakeAuth{}, Logger: slog.New(slog.DiscardHandler),
		Statfs: func(string) (Space, error) { return Space{Total: 1000, Free: free}, nil }}
	id := "0b4b2bd6-0d1b-4d5c-8b0e-3c4f0ab1a2b3"
	dir := filepath.Join(root, "docker/registry/v2/repositories/alice/app/_uploads", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h := g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		free = 0 // the upload filled the disk
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"errors":[{"code":"UNKNOWN","message":"write /var/lib/...: no space left on device"}]}`))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PATCH", "/v2/alice/app/blobs/uploads/"+id, strings.NewReader("data")))
	if rec.Code != Status || !strings.Contains(rec.Body.String(), "storage is full") || strings.Contains(rec.Body.String(), "var/lib") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("partial upload kept: %v", err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/v2/alice/app/manifests/v1", strings.NewReader("{}")))
	if rec.Code != Status || strings.Contains(rec.Body.String(), "var/lib") {
		t.Errorf("manifest PUT: %d %s", rec.Code, rec.Body)
	}

	// A 5xx with space left is distribution's own and passes unchanged.
	free = 100
	h = g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("other"))
	}))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PATCH", "/v2/alice/app/blobs/uploads/"+id, strings.NewReader("data")))
	if rec.Code != 500 || rec.Body.String() != "other" {
		t.Errorf("5xx with space left: %d %s", rec.Code, rec.Body)
	}
}
