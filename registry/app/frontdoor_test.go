package app

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"stx-registry/registry/tokenauth/tokentest"
)

// countingBody counts the bytes the handler chain reads from a request
// body.
type countingBody struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingBody) Close() error { return nil }

// registryError is the spec's error envelope.
type registryError struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// checkRegistryError checks that resp is a JSON registry error with status
// and code.
func checkRegistryError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json: %s", ct, body)
	}
	if v := resp.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
		t.Errorf("Docker-Distribution-API-Version %q", v)
	}
	var e registryError
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("body is not a registry error: %q", body)
	}
	if e.Errors[0].Code != code {
		t.Errorf("code %q, want %q: %s", e.Errors[0].Code, code, body)
	}
}

// TestNoFormBeforeAuthorization sends large multipart bodies without a
// token: none of them is read, and no temporary file is left behind (net/http
// parses a multipart form over 32 MiB into one, and never deletes it when
// the parse ran on a copy of the request).
func TestNoFormBeforeAuthorization(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("f", "64MiB.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(make([]byte, 33<<20)); err != nil {
		t.Fatal(err)
	}
	if err := mw.WriteField("from", "alice/private"); err != nil {
		t.Fatal(err)
	}
	mw.Close()

	zero := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		method, path string
		status       int // 0: any 4xx
	}{
		// The example: curl -F f=@64MiB.bin .../blobs/uploads/
		{http.MethodPost, "/v2/x/y/blobs/uploads/", 0},
		{http.MethodPost, "/v2/x/y/blobs/uploads/?digest=" + zero, http.StatusUnauthorized},
		{http.MethodPut, "/v2/x/y/manifests/v1", 0},                 // too large for a manifest
		{http.MethodPatch, "/v2/x/y/blobs/uploads/abc?_state=x", 0}, // not an octet-stream
		{http.MethodPut, "/v2/x/y/blobs/uploads/abc?_state=x", http.StatusUnauthorized},
		{http.MethodGet, "/v2/x/y/tags/list", 0},
		{http.MethodGet, "/v2/", 0},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var read atomic.Int64
			req := httptest.NewRequest(tt.method, tt.path, nil)
			req.Body = countingBody{bytes.NewReader(form.Bytes()), &read}
			req.ContentLength = int64(form.Len())
			req.Header.Set("Content-Type", mw.FormDataContentType())
			rec := httptest.NewRecorder()
			r.handler.ServeHTTP(rec, req)
			if tt.status != 0 && rec.Code != tt.status || rec.Code < 400 || rec.Code >= 500 {
				t.Errorf("status %d, want %d (0: any 4xx): %s", rec.Code, tt.status, rec.Body)
			}
			if n := read.Load(); n != 0 {
				t.Errorf("the handler read %d bytes of the body before authorization", n)
			}
			left, _ := filepath.Glob(filepath.Join(tmp, "multipart-*"))
			if len(left) > 0 {
				t.Errorf("temporary files left: %q", left)
			}
			for _, f := range left {
				os.Remove(f)
			}
		})
	}
}

// TestSlowDripCut trickles an unauthenticated multipart body one byte at a
// time: the connection is closed within the server's read timeout, not
// kept open by the trickle.
func TestSlowDripCut(t *testing.T) {
	const readTimeout = time.Second
	r := newUnstartedRegistry(t, tokentest.NewKey(t, "P-256"), false)
	r.srv.Config.ReadHeaderTimeout = readTimeout
	r.srv.Config.ReadTimeout = readTimeout
	r.srv.Config.WriteTimeout = readTimeout
	r.srv.Start()

	conn, err := net.Dial("tcp", r.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /v2/x/y/blobs/uploads/?digest=sha256:%s HTTP/1.1\r\nHost: registry\r\n"+
		"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 100000\r\n\r\n--B\r\n", strings.Repeat("0", 64))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	const limit = 4 * readTimeout
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if err == nil {
		_, err = conn.Read(make([]byte, 1))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v of trickling", limit)
	}
	// net/http reads on to reuse the connection until the read deadline,
	// set when the request started: the trickle never renews it.
	if d := time.Since(start); d > readTimeout+time.Second {
		t.Errorf("connection closed after %v, want within the read timeout %v", d, readTimeout)
	}
}

// startUpload starts an upload in name and returns its Location.
func (r *testRegistry) startUpload(name, bearer string) string {
	r.t.Helper()
	resp := r.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/", bearer, nil, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		r.t.Fatalf("start upload: status %d, Location %q", resp.StatusCode, loc)
	}
	return loc
}

// TestContentRange sends chunks with Content-Range forms other than the
// spec's "start-end": each is a 416, never distribution's 500.
func TestContentRange(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	tok := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	chunk := []byte("0123456789")
	for _, cr := range []string{"bytes=0-9", "bytes 0-9/10", "0-9/10", "0-", "-9", "+0-9", "0-99999999999999999999", "0x0-9"} {
		t.Run(cr, func(t *testing.T) {
			loc := r.startUpload("alice/y", tok)
			resp := r.do(http.MethodPatch, loc, tok, chunk, http.Header{
				"Content-Type": {"application/octet-stream"}, "Content-Range": {cr}})
			checkRegistryError(t, resp, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
		})
	}
	// The example: a range-header form after a first chunk.
	loc := r.startUpload("alice/y", tok)
	resp := r.do(http.MethodPatch, loc, tok, chunk, http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {"0-9"}})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first chunk: status %d, want 202", resp.StatusCode)
	}
	resp = r.do(http.MethodPatch, resp.Header.Get("Location"), tok, chunk, http.Header{
		"Content-Type": {"application/octet-stream"}, "Content-Range": {"bytes=10-19"}})
	checkRegistryError(t, resp, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
}

// TestNonDistributableLayer pushes manifests whose layer is
// non-distributable, with urls: accepted, whether or not its blob was
// pushed. A URL distribution refuses is a 400.
func TestNonDistributableLayer(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	tok := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	configBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cfgDigest := r.pushBlob("alice/y", tok, configBlob)
	pushed := []byte("a foreign layer, pushed anyway")
	r.pushBlob("alice/y", tok, pushed)
	notPushed := []byte("a foreign layer, never pushed")
	manifest := func(mediaType string, layer []byte, url string) []byte {
		b, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": len(configBlob)},
			"layers": []map[string]any{{
				"mediaType": mediaType,
				"digest":    fmt.Sprintf("sha256:%x", sha256.Sum256(layer)),
				"size":      len(layer),
				"urls":      []string{url},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ct := http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}
	const nd = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	tests := []struct {
		name   string
		body   []byte
		status int
	}{
		{"tar", manifest(nd, pushed, "https://example.com/layer.tar"), http.StatusCreated},
		{"tar+gzip", manifest(nd+"+gzip", pushed, "https://example.com/layer.tar.gz"), http.StatusCreated},
		{"tar+zstd", manifest(nd+"+zstd", pushed, "https://example.com/layer.tar.zst"), http.StatusCreated},
		{"tar, blob not pushed", manifest(nd, notPushed, "https://example.com/other.tar"), http.StatusCreated},
		{"tar+gzip, http URL", manifest(nd+"+gzip", notPushed, "http://mirror.example.com/other.tar.gz"), http.StatusCreated},
		{"ftp URL", manifest(nd, notPushed, "ftp://example.com/layer.tar"), http.StatusBadRequest},
		{"URL with a fragment", manifest(nd, notPushed, "https://example.com/layer.tar#x"), http.StatusBadRequest},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := r.do(http.MethodPut, fmt.Sprintf("/v2/alice/y/manifests/nd%d", i), tok, tt.body, ct)
			if tt.status != http.StatusCreated {
				checkRegistryError(t, resp, tt.status, "MANIFEST_INVALID")
				return
			}
			if resp.StatusCode != tt.status {
				body, _ := io.ReadAll(resp.Body)
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
		})
	}
}

// TestRouteMissesAreRegistryErrors checks that a /v2/ request no route
// matches, or that a route refuses as plain text, gets a registry error.
func TestRouteMissesAreRegistryErrors(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	tok := r.token("user1", tokentest.Repo("user1/rp", "pull", "push", "delete"))
	tests := []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"uppercase repository", http.MethodGet, "/v2/user1/Rp-Upper/tags/list", tok, http.StatusBadRequest, "NAME_INVALID"},
		{"uppercase repository, no token", http.MethodGet, "/v2/user1/Rp-Upper/tags/list", "", http.StatusBadRequest, "NAME_INVALID"},
		{"repository too long", http.MethodGet, "/v2/user1/" + strings.Repeat("a", 300) + "/manifests/v1", tok, http.StatusBadRequest, "NAME_INVALID"},
		{"bad tag", http.MethodGet, "/v2/user1/rp/manifests/-bad-", tok, http.StatusBadRequest, "TAG_INVALID"},
		{"bad blob digest", http.MethodGet, "/v2/user1/rp/blobs/not-a-digest", tok, http.StatusBadRequest, "DIGEST_INVALID"},
		// GET /v2/NAME/referrers/DIGEST is served (package referrers); without
		// a digest it is still a miss.
		{"referrers without a digest", http.MethodGet, "/v2/user1/rp/referrers/", tok, http.StatusNotFound, "NOT_FOUND"},
		{"unknown endpoint", http.MethodGet, "/v2/user1/rp/nothing", tok, http.StatusNotFound, "NOT_FOUND"},
		{"method a route lacks", http.MethodPost, "/v2/user1/rp/tags/list", tok, http.StatusMethodNotAllowed, "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRegistryError(t, r.do(tt.method, tt.path, tt.token, nil, nil), tt.status, tt.code)
		})
	}
}

// TestListingLastParameter: distribution turns a listing's last into a
// path under the storage root, and answered a NUL byte, an overlong name
// or a path into its layout with a 500 naming the root.
func TestListingLastParameter(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	tok := r.token("user1", tokentest.Repo("user1/none", "pull"))
	admin := r.token("admin", tokentest.Access{Type: "registry", Name: "catalog", Actions: []string{"*"}})
	tests := []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"tags, NUL", "/v2/user1/none/tags/list?last=%00", tok, http.StatusBadRequest, "TAG_INVALID"},
		{"tags, too long", "/v2/user1/none/tags/list?last=" + strings.Repeat("z", 300), tok, http.StatusBadRequest, "TAG_INVALID"},
		{"tags, a path", "/v2/user1/none/tags/list?last=v1/current/link", tok, http.StatusBadRequest, "TAG_INVALID"},
		{"catalog, NUL", "/v2/_catalog?last=%00", admin, http.StatusBadRequest, "NAME_INVALID"},
		{"catalog, too long", "/v2/_catalog?last=" + strings.Repeat("a", 300), admin, http.StatusBadRequest, "NAME_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRegistryError(t, r.do(http.MethodGet, tt.path, tt.token, nil, nil), tt.status, tt.code)
		})
	}
	for _, ok := range []string{"/v2/user1/none/tags/list?last=v1&n=10", "/v2/_catalog?last=user1/none&n=0"} {
		tk := tok
		if strings.HasPrefix(ok, "/v2/_catalog") {
			tk = admin
		}
		if resp := r.do(http.MethodGet, ok, tk, nil, nil); resp.StatusCode >= 500 || resp.StatusCode == http.StatusBadRequest {
			t.Errorf("%s: status %d", ok, resp.StatusCode)
		}
	}
}

// TestReadOnlyRefusalIsRegistryError checks the 405 of a push in read_only
// mode: distribution's router answers it in plain text.
func TestReadOnlyRefusalIsRegistryError(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), true)
	tok := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	resp := r.do(http.MethodPost, "/v2/alice/y/blobs/uploads/", tok, nil, nil)
	checkRegistryError(t, resp, http.StatusMethodNotAllowed, "UNSUPPORTED")
}

// TestManifestByDigestWithoutAccept fetches a stored OCI manifest by
// digest: served with its media type unless the client lists media types
// that leave it out.
func TestManifestByDigestWithoutAccept(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	tok := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	r.pushImage("alice/y", "v1", tok, []byte("layer"))
	const oci = "application/vnd.oci.image.manifest.v1+json"
	resp := r.do(http.MethodGet, "/v2/alice/y/manifests/v1", tok, nil, http.Header{"Accept": {oci}})
	want, _ := io.ReadAll(resp.Body)
	dgst := resp.Header.Get("Docker-Content-Digest")
	if resp.StatusCode != http.StatusOK || dgst == "" {
		t.Fatalf("GET by tag: status %d, digest %q", resp.StatusCode, dgst)
	}
	tests := []struct {
		name   string
		accept []string
		status int
	}{
		{"no Accept", nil, http.StatusOK},
		{"*/*", []string{"*/*"}, http.StatusOK},
		{"a list with */*", []string{"application/vnd.docker.distribution.manifest.v2+json, */*;q=0.1"}, http.StatusOK},
		{"the OCI type", []string{oci}, http.StatusOK},
		{"only Docker's type", []string{"application/vnd.docker.distribution.manifest.v2+json"}, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				var h http.Header
				if tt.accept != nil {
					h = http.Header{"Accept": tt.accept}
				}
				resp := r.do(method, "/v2/alice/y/manifests/"+dgst, tok, nil, h)
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tt.status {
					t.Fatalf("%s: status %d, want %d: %s", method, resp.StatusCode, tt.status, body)
				}
				if tt.status != http.StatusOK {
					continue
				}
				if ct := resp.Header.Get("Content-Type"); ct != oci {
					t.Errorf("%s: Content-Type %q, want %q", method, ct, oci)
				}
				if method == http.MethodGet && !bytes.Equal(body, want) {
					t.Errorf("GET: body %q, want %q", body, want)
				}
			}
		})
	}
}

// TestSlowAuthorizedPush trickles a chunk for three times the server's
// read timeout: with a token that may push, the deadlines are renewed and
// the chunk is stored; with one that may only pull, the body is never read
// and the connection is cut.
func TestSlowAuthorizedPush(t *testing.T) {
	const (
		readTimeout = time.Second
		chunks      = 15
		every       = 200 * time.Millisecond // chunks*every = 3*readTimeout
	)
	r := newUnstartedRegistry(t, tokentest.NewKey(t, "P-256"), false)
	r.srv.Config.ReadTimeout = readTimeout
	r.srv.Config.WriteTimeout = readTimeout
	r.srv.Start()
	push := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	pull := r.token("alice", tokentest.Repo("alice/y", "pull"))

	patch := func(bearer string) (*http.Response, error) {
		loc := r.startUpload("alice/y", push)
		pr, pw := io.Pipe()
		go func() {
			for range chunks {
				if _, err := pw.Write(make([]byte, 1<<10)); err != nil {
					return
				}
				time.Sleep(every)
			}
			pw.Close()
		}()
		defer pr.Close()
		req, err := http.NewRequest(http.MethodPatch, r.srv.URL+loc, pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Authorization", "Bearer "+bearer)
		return r.srv.Client().Do(req)
	}

	resp, err := patch(push)
	if err != nil {
		t.Fatalf("slow push: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != fmt.Sprintf("0-%d", chunks<<10-1) {
		t.Errorf("slow push: status %d, Range %q, want 202 and every byte", resp.StatusCode, resp.Header.Get("Range"))
	}

	start := time.Now()
	resp, err = patch(pull)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("push without the push grant: status %d, want 401", resp.StatusCode)
		}
	}
	if d := time.Since(start); d > readTimeout+time.Second {
		t.Errorf("push without the push grant took %v, want it cut within the read timeout %v", d, readTimeout)
	}
}
