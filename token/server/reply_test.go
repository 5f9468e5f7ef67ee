package server

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzTokenReplyJSON holds the hand-written token reply to encoding/json:
// the same bytes for every reply, escaping included.
func FuzzTokenReplyJSON(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyMSJ9.c2ln", "", 299, "2026-12-01T00:00:00Z", "", "")
	f.Add("a.b.c", "", 60, "2026-12-01T00:00:00Z", "repository:user1/app:pull,push", "cmVmcmVzaA")
	f.Add("a", "b\"", 0, "", "repository:user1/<app>&x:pull \"quoted\" \\ \x00\x1f\x7f", "")
	f.Add("é\u2028\u2029\xff", "x", -1, "\t", "repository:a/b:pull repository:c/d:push", "\n")
	f.Fuzz(func(t *testing.T, tok, other string, expires int, issued, scope, refresh string) {
		// The server always sends the same token under both names; other,
		// when not empty, stands in for a different access_token.
		access := tok
		if other != "" {
			access = other
		}
		r := tokenResponse{Token: tok, AccessToken: access, ExpiresIn: expires, IssuedAt: issued, Scope: scope, RefreshToken: refresh}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(r); err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("appendJSON:\n got %q\nwant %q", got, want.Bytes())
		}
	})
}
