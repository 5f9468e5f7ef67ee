package referrers

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/auth"
)

// brokenController fails without a challenge, as a misconfigured access
// controller would.
type brokenController struct{}

func (brokenController) Authorized(*http.Request, ...auth.Access) (*auth.Grant, error) {
	return nil, errors.New("broken")
}

// TestHandlerRouting checks that only the referrers path is answered here,
// and that a failing access controller gives a 400 that says nothing.
func TestHandlerRouting(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	passed := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { passed++ })
	h := Handler(next, s, brokenController{}, slog.New(slog.DiscardHandler))
	for _, p := range []string{"/v2/", "/v2/a/tags/list", "/v2/a/manifests/latest", "/healthz"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	if passed != 4 {
		t.Errorf("%d of 4 requests passed to distribution", passed)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v2/a/referrers/sha256:"+strings.Repeat("a", 64), nil))
	if w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), "broken") || passed != 4 {
		t.Errorf("broken controller: status %d %q", w.Code, w.Body.String())
	}
}

// FuzzParseList checks the listing's parser of the subject and the query:
// it never panics, and what it accepts is a sha256 subject and a page size
// within the bound.
func FuzzParseList(f *testing.F) {
	d := "sha256:" + strings.Repeat("a", 64)
	for _, seed := range [][2]string{
		{d, ""}, {d, "n=10&last=" + d}, {d, "artifactType=application%2Fspdx%2Bjson"},
		{"sha512:" + strings.Repeat("0", 128), ""}, {d, "n=-1"}, {d, "n=99999999999999999999"},
		{d, "last=sha256:zz"}, {"latest", ""}, {d, "n=0"}, {d, "%zz"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, ref, rawQuery string) {
		v, err := url.ParseQuery(rawQuery)
		if err != nil {
			return // net/http hands a bad query to the handler as parsed as it can
		}
		subject, q, err := parseList(ref, v)
		if err != nil {
			return
		}
		if !supported(subject) || q.Limit < 1 || q.Limit > MaxPageEntries || (q.After != "" && !supported(q.After)) {
			t.Errorf("parseList(%q, %q) = %q, %+v", ref, rawQuery, subject, q)
		}
	})
}
