package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"stx-registry/registry/tokenauth/tokentest"
)

// TestRefusalSaysWhy checks what a client sees when its token lacks the
// access a request needs: 401, the two challenges carrying the token
// server's reason, and a DENIED error with the reason as its detail; and
// that a refused cross-repository mount still becomes a normal upload.
func TestRefusalSaysWhy(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	why := "user1 may not pull from or push to user2/x: user1 may push only to user1/..."
	claims := tokentest.Claims("user1", tokentest.Repo("user1/x", "pull", "push"))
	claims["stx_refused"] = []map[string]any{{"type": "repository", "name": "user2/x", "actions": []string{"pull", "push"}, "reason": why}}
	user1 := tokentest.Sign(t, r.key, claims)
	dgst := r.pushBlob("user1/x", user1, []byte("layer"))

	for _, tt := range []struct {
		method, path string
	}{
		{http.MethodHead, "/v2/user2/x/blobs/" + dgst},
		{http.MethodGet, "/v2/user2/x/manifests/1"},
		{http.MethodPost, "/v2/user2/x/blobs/uploads/"},
	} {
		resp := r.do(tt.method, tt.path, user1, nil, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s: status %d, want 401", tt.method, tt.path, resp.StatusCode)
		}
		ch := resp.Header.Values("WWW-Authenticate")
		if len(ch) != 2 || !strings.HasSuffix(ch[0], `,error="`+why+`"`) ||
			!strings.HasSuffix(ch[1], `,error="insufficient_scope",error_description="`+why+`"`) {
			t.Errorf("%s %s: challenges %q", tt.method, tt.path, ch)
		}
		if tt.method == http.MethodHead {
			continue
		}
		var e struct {
			Errors []struct{ Code, Message, Detail string }
		}
		body, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != "DENIED" ||
			e.Errors[0].Message != "requested access to the resource is denied" || e.Errors[0].Detail != why {
			t.Errorf("%s %s: body %s, want DENIED with the reason", tt.method, tt.path, body)
		}
	}

	// A missing token keeps distribution's answer.
	resp := r.do(http.MethodGet, "/v2/user2/x/manifests/1", "", nil, nil)
	checkRegistryError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED")
	if ch := resp.Header.Values("WWW-Authenticate"); len(ch) != 1 || strings.Contains(ch[0], "error") {
		t.Errorf("no token: challenges %q", ch)
	}

	// The mount from user2/x is refused, with a reason, and becomes a
	// normal upload.
	mount := "/v2/user1/x/blobs/uploads/?" + url.Values{"mount": {dgst}, "from": {"user2/x"}}.Encode()
	if resp := r.do(http.MethodPost, mount, user1, nil, nil); resp.StatusCode != http.StatusAccepted {
		t.Errorf("refused mount: status %d, want 202 (normal upload)", resp.StatusCode)
	}
}
