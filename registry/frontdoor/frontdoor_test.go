package frontdoor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
)

func TestClassify(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		path     string
		route    string
		redirect bool
		status   int
		code     string
	}{
		{"/healthz", "", false, 0, ""},
		{"/v2/", v2.RouteNameBase, false, 0, ""},
		{"/v2", v2.RouteNameBase, true, 0, ""},
		{"/v2/_catalog", v2.RouteNameCatalog, false, 0, ""},
		{"/v2/a/b/tags/list", v2.RouteNameTags, false, 0, ""},
		{"/v2/a/b/manifests/v1", v2.RouteNameManifest, false, 0, ""},
		{"/v2/a/b/manifests/" + d, v2.RouteNameManifest, false, 0, ""},
		{"/v2/a/b/blobs/" + d, v2.RouteNameBlob, false, 0, ""},
		{"/v2/a/b/blobs/uploads/", v2.RouteNameBlobUpload, false, 0, ""},
		{"/v2/a/b/blobs/uploads", v2.RouteNameBlobUpload, true, 0, ""},
		{"/v2/a/b/blobs/uploads/u-1", v2.RouteNameBlobUploadChunk, false, 0, ""},
		{"/v2/a/../b/tags/list", "", true, 0, ""},
		{"/v2/user1/Rp-Upper/tags/list", "", false, 400, "NAME_INVALID"},
		{"/v2/a/" + strings.Repeat("b", 300) + "/tags/list", "", false, 400, "NAME_INVALID"},
		{"/v2/a/b/manifests/-bad-", "", false, 400, "TAG_INVALID"},
		{"/v2/a/b/manifests/sha256:xyz", v2.RouteNameManifest, false, 0, ""}, // distribution refuses it: DIGEST_INVALID
		{"/v2/a/b/manifests/sha256:x/y", "", false, 400, "DIGEST_INVALID"},
		{"/v2/a/b/blobs/xyz", "", false, 400, "DIGEST_INVALID"},
		{"/v2/a/b/blobs/uploads/bad!id", "", false, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"/v2/a/b/referrers/" + d, routeReferrers, false, 0, ""},
		{"/v2/a/b/referrers/latest", routeReferrers, false, 0, ""}, // package referrers refuses it: DIGEST_INVALID
		{"/v2/a/B/referrers/" + d, "", false, 400, "NAME_INVALID"},
		{"/v2/a/b/referrers/", "", false, 404, "NOT_FOUND"},
		{"/v2/a/b/other", "", false, 404, "NOT_FOUND"},
	}
	for _, tt := range tests {
		rt, f := classify(httptest.NewRequest(http.MethodGet, tt.path, nil))
		if f != nil {
			if f.status != tt.status || f.code != tt.code {
				t.Errorf("%s: refused %d %s, want %d %s", tt.path, f.status, f.code, tt.status, tt.code)
			}
			continue
		}
		if tt.status != 0 || rt.name != tt.route || rt.redirect != tt.redirect {
			t.Errorf("%s: route %q redirect %v, want %q %v (refusal %d)", tt.path, rt.name, rt.redirect, tt.route, tt.redirect, tt.status)
		}
	}
}

func TestContentRangeForm(t *testing.T) {
	for cr, ok := range map[string]bool{
		"0-0": true, "10-19": true, "123456789012345678-123456789012345678": true,
		"bytes=10-19": false, "bytes 0-9/10": false, "0-9/10": false, "0-": false, "-9": false,
		"+0-9": false, " 0-9": false, "1234567890123456789-1": false, "0x1-2": false,
	} {
		if contentRange.MatchString(cr) != ok {
			t.Errorf("Content-Range %q: accepted %v, want %v", cr, !ok, ok)
		}
	}
}

func TestCheckManifest(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"valid", `{"schemaVersion":2,"config":{"digest":"` + d + `"},"layers":[{"digest":"` + d + `","urls":["https://a/b"]}]}`, true},
		{"not JSON: distribution's to refuse", `{`, true},
		{"no schemaVersion", `{"config":{"digest":"` + d + `"}}`, false},
		{"schemaVersion 1", `{"schemaVersion":1}`, false},
		{"short digest", `{"schemaVersion":2,"layers":[{"digest":"sha256:abc"}]}`, false},
		{"unknown algorithm", `{"schemaVersion":2,"manifests":[{"digest":"md5:00"}]}`, false},
		{"bad subject digest", `{"schemaVersion":2,"subject":{"digest":"x"}}`, false},
		{"ftp URL", `{"schemaVersion":2,"layers":[{"digest":"` + d + `","urls":["ftp://a/b"]}]}`, false},
		{"URL with a fragment", `{"schemaVersion":2,"layers":[{"digest":"` + d + `","urls":["http://a/b#c"]}]}`, false},
	}
	for _, tt := range tests {
		if err := checkManifest([]byte(tt.body)); (err == nil) != tt.ok {
			t.Errorf("%s: error %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestAcceptsAny(t *testing.T) {
	tests := []struct {
		accept []string
		want   bool
	}{
		{nil, true},
		{[]string{""}, true},
		{[]string{"*/*"}, true},
		{[]string{"application/json, application/*;q=0.1"}, true},
		{[]string{"application/vnd.oci.image.manifest.v1+json"}, false},
		{[]string{"application/vnd.oci.image.index.v1+json", "text/plain"}, false},
	}
	for _, tt := range tests {
		if got := acceptsAny(tt.accept); got != tt.want {
			t.Errorf("acceptsAny(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

// TestGate reads a body before and after Open.
func TestGate(t *testing.T) {
	var logs bytes.Buffer
	var bodyErr, readErr error
	var got []byte
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, bodyErr = r.Body.Read(make([]byte, 1))
		if r.FormValue("from") != "q" || r.PostFormValue("from") != "" {
			t.Errorf("form %v, post form %v: want the URL query only", r.Form, r.PostForm)
		}
		Open(r.Context())
		got, readErr = io.ReadAll(r.Body)
	}), slog.New(slog.NewTextHandler(&logs, nil)))
	req := httptest.NewRequest(http.MethodPatch, "/v2/a/b/blobs/uploads/u?from=q", strings.NewReader("from=body"))
	req.Header.Set("Content-Type", "application/octet-stream")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !errors.Is(bodyErr, errBodyBeforeAuthorization) {
		t.Errorf("read before Open: %v", bodyErr)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the early read was not logged as an error: %q", logs.String())
	}
	if readErr != nil || string(got) != "from=body" {
		t.Errorf("read after Open: %q, %v", got, readErr)
	}
	Open(context.Background()) // no gate: nothing happens
}

// TestGuard checks what reaches the client of distribution's answers.
func TestGuard(t *testing.T) {
	tests := []struct {
		name       string
		answer     func(w http.ResponseWriter, r *http.Request)
		bodyFailed bool
		status     int
		code       string // "" leaves distribution's body
	}{
		{"plain 405", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		}, false, 405, "UNSUPPORTED"},
		{"bare 400", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(400) }, false, 400, "UNSUPPORTED"},
		{"JSON 404 kept", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`)
		}, false, 404, ""},
		{"500 after a failed body", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, true, 400, "BLOB_UPLOAD_INVALID"},
		{"500 of the server's own", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, false, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &gate{}
			if tt.bodyFailed {
				g.bodyErr = io.ErrUnexpectedEOF
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/v2/a/b/tags/list", nil)
			tt.answer(&guard{w: rec, r: req, gate: g, logger: slog.New(slog.DiscardHandler)}, req)
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			if tt.code != "" && !strings.Contains(rec.Body.String(), `"code":"`+tt.code+`"`) {
				t.Errorf("body %q, want code %s", rec.Body, tt.code)
			}
		})
	}
}
