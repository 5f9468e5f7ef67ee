package accesslog

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAccessLog(t *testing.T) {
	tests := []struct {
		name   string
		target string
		status int
		body   string
		want   map[string]any
		absent []string
	}{
		{name: "plain", target: "/v2/alice/y/manifests/v1", status: 200, body: "hello",
			want: map[string]any{"method": "GET", "path": "/v2/alice/y/manifests/v1", "status": float64(200), "bytes": float64(5)}},
		{name: "implicit 200", target: "/v2/", status: 0, body: "",
			want: map[string]any{"status": float64(200), "bytes": float64(0)}},
		{name: "query dropped", target: "/v2/alice/y/blobs/uploads/u?_state=abc&digest=sha256:1", status: 201,
			want: map[string]any{"path": "/v2/alice/y/blobs/uploads/u"}, absent: []string{"_state", "abc", "digest", "mount"}},
		{name: "mount kept", target: "/v2/bob/x/blobs/uploads/?mount=sha256:1&from=alice/y", status: 202,
			want: map[string]any{"mount": "sha256:1", "from": "alice/y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, nil))
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.status != 0 {
					w.WriteHeader(tt.status)
				}
				io.WriteString(w, tt.body)
			})
			req := httptest.NewRequest("GET", tt.target, nil)
			req.Header.Set("Authorization", "Bearer secret-token")
			req.Header.Set("User-Agent", "docker/28")
			Handler(next, logger).ServeHTTP(httptest.NewRecorder(), req)

			line := buf.String()
			if strings.Count(line, "\n") != 1 {
				t.Fatalf("want one line, got %q", line)
			}
			for _, s := range append([]string{"secret-token", "Bearer", "docker/28"}, tt.absent...) {
				if strings.Contains(line, s) {
					t.Errorf("log line contains %q: %s", s, line)
				}
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			for _, k := range []string{"duration", "remote"} {
				if _, ok := got[k]; !ok {
					t.Errorf("no %s in %s", k, line)
				}
			}
		})
	}
}

func TestRecorderUnwrap(t *testing.T) {
	rec := httptest.NewRecorder()
	w := &Recorder{ResponseWriter: rec}
	if err := http.NewResponseController(w).Flush(); err != nil {
		t.Errorf("Flush through Recorder: %v", err)
	}
}
