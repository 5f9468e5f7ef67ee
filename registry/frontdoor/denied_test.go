package frontdoor

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// TestDenied checks that a 401 is answered with a DENIED error saying why
// once the access controller recorded why, keeping the challenge, and
// that other answers are left alone.
func TestDenied(t *testing.T) {
	unauthorized := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="r",service="s",error="insufficient_scope"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}
	why := "user1 may not push to user2/x"
	for _, tt := range []struct {
		name   string
		deny   bool
		answer http.HandlerFunc
		status int
		body   string
	}{
		{"denied", true, unauthorized, 401,
			`{"errors":[{"code":"DENIED","message":"requested access to the resource is denied","detail":"user1 may not push to user2/x"}]}`},
		{"no reason: distribution's answer", false, unauthorized, 401,
			`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`},
		{"not a 401", true, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[{"code":"NOT_FOUND"}]}`)
		}, 404, `{"errors":[{"code":"NOT_FOUND"}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.deny {
					Deny(r.Context(), why)
				}
				tt.answer(w, r)
			}), slog.New(slog.DiscardHandler))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/user2/x/manifests/1", nil))
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d", rec.Code, tt.status)
			}
			var got, want any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			json.Unmarshal([]byte(tt.body), &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("body %s, want %s", rec.Body, tt.body)
			}
			if tt.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("challenge lost")
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	Deny(context.Background(), why) // no gate: nothing happens
}
