package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"stx-registry/shared/testrig"
)

// TestTokenServerBadInput sends the token server malformed, oversized and
// mismatched requests: each must get a JSON 4xx with an "error", never a
// 5xx, and the server must stay healthy.
func TestTokenServerBadInput(t *testing.T) {
	e := sharedEnv(t)
	user, pw := "user1", e.passwords["user1"]
	svc := e.service()

	// get builds a GET of the token endpoint with the raw query and
	// user1's Basic auth.
	get := func(rawQuery string) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			req := newRequest(t, http.MethodGet, e.realm()+"?"+rawQuery, nil)
			req.SetBasicAuth(user, pw)
			return req
		}
	}
	// scopeQuery is a valid query with the given scope values.
	scopeQuery := func(scopes ...string) string {
		q := url.Values{"service": {svc}, "account": {user}}
		for _, s := range scopes {
			q.Add("scope", s)
		}
		return q.Encode()
	}
	post := func(contentType, body string) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			req := newRequest(t, http.MethodPost, e.realm(), strings.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			return req
		}
	}
	passwordForm := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "service": {svc}, "client_id": {"e2e"}}
	tooManyScopes := make([]string, 65)
	for i := range tooManyScopes {
		tooManyScopes[i] = fmt.Sprintf("repository:user1/r%d:pull", i)
	}

	cases := []struct {
		name   string
		req    func(t *testing.T) *http.Request
		status int // 0: any 4xx
	}{
		{"scope without actions", get(scopeQuery("repository:a")), 400},
		{"scope of colons", get(scopeQuery("::")), 400},
		{"scope with control bytes", get(scopeQuery("repository:user1/a\x01b:pull")), 400},
		{"scope with a newline", get(scopeQuery("repository:user1/a\nb:pull")), 400},
		{"scope with a NUL", get(scopeQuery("repository:user1/a\x00:pull")), 400},
		{"oversized scope", get(scopeQuery("repository:user1/" + strings.Repeat("a", 600) + ":pull")), 400},
		{"too many scopes", get(scopeQuery(tooManyScopes...)), 400},
		{"huge query", get(scopeQuery() + "&x=" + strings.Repeat("a", 9<<10)), 400},
		{"bad percent-encoding", get("service=%zz"), 400},
		{"bad Basic base64", func(t *testing.T) *http.Request {
			req := get(scopeQuery())(t)
			req.Header.Set("Authorization", "Basic !!!not-base64!!!")
			return req
		}, 400},
		{"Basic without a colon", func(t *testing.T) *http.Request {
			req := get(scopeQuery())(t)
			req.Header.Set("Authorization", "Basic dXNlcjE=") // "user1"
			return req
		}, 400},
		{"Bearer instead of Basic", func(t *testing.T) *http.Request {
			req := get(scopeQuery())(t)
			req.Header.Set("Authorization", "Bearer abc")
			return req
		}, 400},
		{"no credentials", func(t *testing.T) *http.Request {
			return newRequest(t, http.MethodGet, e.realm()+"?"+scopeQuery(), nil)
		}, 401},
		{"wrong password", func(t *testing.T) *http.Request {
			req := get(scopeQuery())(t)
			req.SetBasicAuth(user, "wrong-"+pw)
			return req
		}, 401},
		{"unknown user", func(t *testing.T) *http.Request {
			req := get("service=" + url.QueryEscape(svc))(t)
			req.SetBasicAuth("nosuchuser", pw)
			return req
		}, 401},
		{"unknown service", get(url.Values{"service": {"evil.example:9001"}, "account": {user}}.Encode()), 400},
		{"missing service", get(url.Values{"account": {user}}.Encode()), 400},
		{"account is not the user", get(url.Values{"service": {svc}, "account": {"user2"}}.Encode()), 400},
		{"duplicated service", get(url.Values{"service": {svc, svc}}.Encode()), 400},
		{"huge POST form", post("application/x-www-form-urlencoded", passwordForm.Encode()+"&scope="+strings.Repeat("a", 9<<10)), 413},
		{"POST as JSON", post("application/json", `{"grant_type":"password"}`), 400},
		{"POST as multipart", post("multipart/form-data; boundary=x", "--x--"), 400},
		{"POST without grant_type", post("application/x-www-form-urlencoded", "service="+url.QueryEscape(svc)), 400},
		{"unknown grant_type", post("application/x-www-form-urlencoded", url.Values{"grant_type": {"client_credentials"}, "service": {svc}}.Encode()), 400},
		{"POST wrong password", post("application/x-www-form-urlencoded", url.Values{"grant_type": {"password"}, "username": {user}, "password": {"wrong"}, "service": {svc}}.Encode()), 401},
		{"POST unknown service", post("application/x-www-form-urlencoded", url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "service": {"other"}}.Encode()), 400},
		{"POST malformed scope", post("application/x-www-form-urlencoded", passwordForm.Encode()+"&scope=repository%3Aa"), 400},
		{"unknown path", func(t *testing.T) *http.Request {
			return newRequest(t, http.MethodGet, "https://"+e.tokenAddr+"/v2/", nil)
		}, 404},
		{"path below token", func(t *testing.T) *http.Request {
			return newRequest(t, http.MethodGet, "https://"+e.tokenAddr+"/token/x", nil)
		}, 404},
		{"PUT /token", func(t *testing.T) *http.Request {
			return newRequest(t, http.MethodPut, e.realm(), strings.NewReader("x"))
		}, 405},
		{"DELETE /token", func(t *testing.T) *http.Request {
			return newRequest(t, http.MethodDelete, e.realm(), nil)
		}, 405},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			r := e.do(t, c.req(t))
			if r.status >= 500 || r.status < 400 || (c.status != 0 && r.status != c.status) {
				t.Errorf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if _, ok := jsonError(r); !ok {
				t.Errorf("not a JSON error (Content-Type %q): %s", r.header.Get("Content-Type"), r.body)
			}
		})
	}

	// A header block over serve.MaxHeaderBytes (16 KiB) never reaches the
	// handler: Go's server answers 431 itself, in plain text. Only the
	// status is checked.
	t.Run("huge_header", func(t *testing.T) {
		req := get(scopeQuery())(t)
		req.Header.Set("X-Junk", strings.Repeat("a", 64<<10))
		// HTTP/1.1: an HTTP/2 client refuses to send headers over the
		// limit the server advertised, so the server would never see them.
		tr := e.client.Transport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		tr.TLSClientConfig.NextProtos = nil
		resp, err := (&http.Client{Transport: tr, Timeout: httpTimeout}).Do(req)
		if err != nil {
			t.Fatalf("GET with a 64 KiB header: %v", err)
		}
		resp.Body.Close()
		r := reply{status: resp.StatusCode, header: resp.Header}
		t.Logf("a 64 KiB header: status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
		if r.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", r.status)
		}
	})
	e.checkHealthy(t)
}

// TestRegistryBadInput sends the registry junk names, digests and
// manifests: every answer must be a 4xx, never a 5xx, and the registry
// must stay healthy.
func TestRegistryBadInput(t *testing.T) {
	e := sharedEnv(t)
	h := newClientHome(t)
	im := newImage(t, "v1")
	e.mustPush(t, h, "user1", im, "user1/junk:v1")
	tok := e.tokenFor(t, "user1", "repository:user1/junk:pull,push,delete")
	admin := e.tokenFor(t, "admin", "repository:user1/junk:pull,push,delete")
	manifestCT := http.Header{"Content-Type": {mediaManifest}}
	octets := http.Header{"Content-Type": {"application/octet-stream"}}

	cases := []struct {
		name   string
		method string
		path   string
		token  string
		body   string
		header http.Header
	}{
		{"uppercase repository", http.MethodGet, "/v2/User1/Junk/manifests/v1", admin, "", nil},
		{"repository with dot-dot", http.MethodGet, "/v2/user1/../etc/manifests/v1", admin, "", nil},
		{"repository too long", http.MethodGet, "/v2/user1/" + strings.Repeat("a", 300) + "/manifests/v1", admin, "", nil},
		{"repository with encoded slash", http.MethodGet, "/v2/user1%2Fjunk/manifests/v1", admin, "", nil},
		{"no token", http.MethodGet, "/v2/user1/junk/manifests/v1", "", "", nil},
		{"garbage token", http.MethodGet, "/v2/user1/junk/manifests/v1", "not.a.jwt", "", nil},
		{"bad tag", http.MethodGet, "/v2/user1/junk/manifests/-bad-", tok, "", nil},
		{"unknown tag", http.MethodGet, "/v2/user1/junk/manifests/nosuchtag", tok, "", nil},
		{"bad digest algorithm", http.MethodGet, "/v2/user1/junk/blobs/md5:0123", tok, "", nil},
		{"short sha256 digest", http.MethodGet, "/v2/user1/junk/blobs/sha256:0123", tok, "", nil},
		{"non-hex digest", http.MethodGet, "/v2/user1/junk/blobs/sha256:" + strings.Repeat("z", 64), tok, "", nil},
		{"unknown blob", http.MethodGet, "/v2/user1/junk/blobs/sha256:" + strings.Repeat("0", 64), tok, "", nil},
		{"bad digest manifest", http.MethodGet, "/v2/user1/junk/manifests/sha256:xyz", tok, "", nil},
		{"delete an unknown tag", http.MethodDelete, "/v2/user1/junk/manifests/nosuchtag", tok, "", nil},
		{"delete bad digest", http.MethodDelete, "/v2/user1/junk/manifests/sha256:xyz", tok, "", nil},
		{"garbage manifest", http.MethodPut, "/v2/user1/junk/manifests/garbage", tok, "{this is not json", manifestCT},
		{"empty manifest", http.MethodPut, "/v2/user1/junk/manifests/empty", tok, "", manifestCT},
		{"manifest of wrong shape", http.MethodPut, "/v2/user1/junk/manifests/shape", tok, `{"schemaVersion":2,"mediaType":"` + mediaManifest + `","config":"x","layers":7}`, manifestCT},
		{"manifest naming missing blobs", http.MethodPut, "/v2/user1/junk/manifests/missing", tok,
			`{"schemaVersion":2,"mediaType":"` + mediaManifest + `","config":{"mediaType":"` + mediaConfig + `","digest":"sha256:` + strings.Repeat("1", 64) + `","size":2},"layers":[]}`, manifestCT},
		{"manifest with unknown media type", http.MethodPut, "/v2/user1/junk/manifests/odd", tok, "{}", http.Header{"Content-Type": {"application/x-junk"}}},
		{"manifest digest mismatch", http.MethodPut, "/v2/user1/junk/manifests/sha256:" + strings.Repeat("2", 64), tok, "", manifestCT},
		{"finish an upload with a bad digest", http.MethodPut, startUpload(t, e, tok) + "digest=sha256:xyz", tok, "abc", octets},
		{"finish an upload with a wrong digest", http.MethodPut, startUpload(t, e, tok) + "digest=sha256:" + strings.Repeat("3", 64), tok, "abc", octets},
		{"finish an upload without a digest", http.MethodPut, startUpload(t, e, tok), tok, "abc", octets},
		{"finish an upload with a tampered state", http.MethodPut, tamper(startUpload(t, e, tok)) + "digest=" + testrig.Digest([]byte("abc")), tok, "abc", octets},
		{"unknown upload", http.MethodPatch, "/v2/user1/junk/blobs/uploads/not-an-upload", tok, "abc", http.Header{"Content-Type": {"application/octet-stream"}}},
		{"referrers of a sha512 subject", http.MethodGet, "/v2/user1/junk/referrers/sha512:" + strings.Repeat("0", 128), tok, "", nil},
		{"referrers with a bad page size", http.MethodGet, "/v2/user1/junk/referrers/" + im.Manifest.Digest + "?n=-5", tok, "", nil},
		{"tags list with bad n", http.MethodGet, "/v2/user1/junk/tags/list?n=-5", tok, "", nil},
		{"catalog without a catalog grant", http.MethodGet, "/v2/_catalog?n=abc", tok, "", nil},
	}
	// A 3xx is fine here: Go's server answers a path with ".." components
	// with a redirect to the cleaned path.
	redirectOK := map[string]bool{"repository with dot-dot": true}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			r := e.api(t, c.method, c.path, c.token, body, c.header)
			if redirectOK[c.name] && r.status >= 300 && r.status < 400 {
				t.Logf("%s %s: status %d, Location %q", c.method, c.path, r.status, r.header.Get("Location"))
				return
			}
			if r.status < 400 || r.status >= 500 {
				t.Errorf("%s %s: status %d, want a 4xx: %s", c.method, c.path, r.status, abbrev(string(r.body)))
			}
		})
	}
	// The image pushed at the start is untouched.
	if got := e.manifestDigest(t, "user1/junk", "v1"); got != im.Manifest.Digest {
		t.Errorf("user1/junk:v1 is %q after the junk, want %s", got, im.Manifest.Digest)
	}
	e.checkHealthy(t)
}

// startUpload starts a blob upload in user1/junk and returns its Location
// with a "?" or "&" appended, ready for more query parameters.
func startUpload(t *testing.T, e *env, tok string) string {
	t.Helper()
	r := e.api(t, http.MethodPost, "/v2/user1/junk/blobs/uploads/", tok, nil, nil)
	loc := r.header.Get("Location")
	if r.status != http.StatusAccepted || loc == "" {
		t.Fatalf("starting an upload: status %d, Location %q", r.status, loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("upload Location %q: %v", loc, err)
	}
	if u.RawQuery == "" {
		return u.RequestURI() + "?"
	}
	return u.RequestURI() + "&"
}

// tamper changes the upload state distribution HMAC-signs into the upload
// URL (the _state parameter).
func tamper(loc string) string {
	return strings.Replace(loc, "_state=", "_state=AAAA", 1)
}
