package mount

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMountFallback(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		first      int // status of a request that still has mount and from
		wantStatus int
		wantCalls  int
		wantBody   string
	}{
		{name: "refused mount retried", method: "POST", target: "/v2/bob/x/blobs/uploads/?mount=sha256:1&from=alice/y",
			first: 401, wantStatus: 202, wantCalls: 2, wantBody: "upload"},
		{name: "forbidden mount retried", method: "POST", target: "/v2/bob/x/blobs/uploads/?from=alice/y&mount=sha256:1",
			first: 403, wantStatus: 202, wantCalls: 2, wantBody: "upload"},
		{name: "allowed mount passed through", method: "POST", target: "/v2/bob/x/blobs/uploads/?mount=sha256:1&from=alice/y",
			first: 201, wantStatus: 201, wantCalls: 1, wantBody: "mounted"},
		{name: "other error passed through", method: "POST", target: "/v2/bob/x/blobs/uploads/?mount=sha256:1&from=alice/y",
			first: 405, wantStatus: 405, wantCalls: 1, wantBody: "first"},
		{name: "silent handler is 200", method: "POST", target: "/v2/bob/x/blobs/uploads/?mount=sha256:1&from=alice/y",
			first: 0, wantStatus: 200, wantCalls: 1},
		{name: "mount without from untouched", method: "POST", target: "/v2/bob/x/blobs/uploads/?mount=sha256:1",
			first: 401, wantStatus: 401, wantCalls: 1, wantBody: "first"},
		{name: "mount with a body untouched", method: "POST", target: "/v2/bob/x/blobs/uploads/?mount=sha256:1&from=alice/y",
			body: "data", first: 401, wantStatus: 401, wantCalls: 1, wantBody: "first"},
		{name: "GET untouched", method: "GET", target: "/v2/bob/x/blobs/uploads/?mount=sha256:1&from=alice/y",
			first: 401, wantStatus: 401, wantCalls: 1, wantBody: "first"},
		{name: "other path untouched", method: "POST", target: "/v2/bob/x/manifests/latest?mount=sha256:1&from=alice/y",
			first: 401, wantStatus: 401, wantCalls: 1, wantBody: "first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls++
				q := r.URL.Query()
				if !q.Has("mount") && !q.Has("from") && calls > 1 {
					if r.RequestURI != r.URL.RequestURI() {
						t.Errorf("retry RequestURI %q, URL %q", r.RequestURI, r.URL.RequestURI())
					}
					w.Header().Set("Location", "/v2/bob/x/blobs/uploads/u")
					w.WriteHeader(http.StatusAccepted)
					io.WriteString(w, "upload")
					return
				}
				if tt.first == 0 {
					return
				}
				w.Header().Set("X-First", "yes")
				w.WriteHeader(tt.first)
				if tt.first == 201 {
					io.WriteString(w, "mounted")
				} else {
					io.WriteString(w, "first")
				}
			})
			h := Fallback(next, slog.New(slog.NewTextHandler(io.Discard, nil)))
			var body io.Reader = http.NoBody
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := httptest.NewRequest(tt.method, tt.target, body)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus || calls != tt.wantCalls || rec.Body.String() != tt.wantBody {
				t.Errorf("status %d calls %d body %q; want %d %d %q", rec.Code, calls, rec.Body.String(), tt.wantStatus, tt.wantCalls, tt.wantBody)
			}
			if tt.wantCalls == 2 && rec.Header().Get("X-First") != "" {
				t.Error("a header of the refused answer leaked into the retry's answer")
			}
			if tt.wantCalls == 1 && tt.first != 0 && rec.Header().Get("X-First") != "yes" {
				t.Error("header of the passed-through answer lost")
			}
		})
	}
}
