package app

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"stx-registry/registry/tokenauth/tokentest"
)

// fuzzRepo is the repository the fuzzed requests work on; fuzzOther holds
// a blob they may try to mount.
const (
	fuzzRepo  = "fuzz/repo"
	fuzzOther = "fuzz/other"
)

// fuzzSeed is one valid (or nearly valid) request. In path, query and body,
// {name} is fuzzRepo, {blob}, {config} and {manifest} are digests stored
// at the start; in path and query, {bodydigest} is the digest of the body,
// and a path of {upload} is an upload started for the request.
type fuzzSeed struct {
	method, path, query                    string
	contentType, contentRange, length, rng string
	accept                                 string
	body                                   string
}

// The media types the seeds use.
const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociIndex    = "application/vnd.oci.image.index.v1+json"
	ociConfig   = "application/vnd.oci.image.config.v1+json"
	ociLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	dockerV2    = "application/vnd.docker.distribution.manifest.v2+json"
	octets      = "application/octet-stream"
)

var fuzzSeeds = []fuzzSeed{
	{method: "GET", path: "/v2/"},
	{method: "GET", path: "/v2/_catalog", query: "n=10&last=a"},
	{method: "GET", path: "/v2/{name}/tags/list", query: "n=2&last=v0"},
	{method: "GET", path: "/v2/{name}/manifests/v1", accept: ociManifest},
	{method: "GET", path: "/v2/{name}/manifests/{manifest}"},
	{method: "HEAD", path: "/v2/{name}/manifests/{manifest}", accept: dockerV2 + ", */*"},
	{method: "GET", path: "/v2/{name}/blobs/{blob}", rng: "bytes=0-3"},
	{method: "GET", path: "/v2/{name}/blobs/{blob}", rng: "bytes=9-1"},
	{method: "HEAD", path: "/v2/{name}/blobs/{config}"},
	{method: "POST", path: "/v2/{name}/blobs/uploads/"},
	{method: "POST", path: "/v2/{name}/blobs/uploads/", query: "mount={blob}&from=" + fuzzOther},
	{method: "POST", path: "/v2/{name}/blobs/uploads/", query: "digest={bodydigest}", contentType: octets, body: "monolithic"},
	{method: "GET", path: "{upload}"},
	{method: "PATCH", path: "{upload}", contentType: octets, contentRange: "0-4", body: "hello"},
	{method: "PATCH", path: "{upload}", contentType: octets, length: "chunked", body: "streamed chunk"},
	{method: "PATCH", path: "{upload}", contentType: octets, contentRange: "bytes=10-19", body: "0123456789"},
	{method: "PUT", path: "{upload}", query: "digest={bodydigest}", contentType: octets, body: "one blob"},
	{method: "PUT", path: "{upload}", query: "digest=sha512:" + strings.Repeat("ab", 64), contentType: octets, body: "x"},
	{method: "PUT", path: "{upload}", query: "digest={bodydigest}", contentType: octets, length: "100", body: "short"},
	{method: "DELETE", path: "{upload}"},
	{method: "PUT", path: "/v2/{name}/manifests/t1", contentType: ociManifest, body: `{"schemaVersion":2,"mediaType":"` + ociManifest + `",` +
		`"config":{"mediaType":"` + ociConfig + `","digest":"{config}","size":2},` +
		`"layers":[{"mediaType":"` + ociLayer + `","digest":"{blob}","size":4}],"annotations":{"a":"b"}}`},
	{method: "PUT", path: "/v2/{name}/manifests/t2", contentType: ociManifest, body: `{"schemaVersion":2,"mediaType":"` + ociManifest + `",` +
		`"config":{"mediaType":"` + ociConfig + `","digest":"{config}","size":2},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"sha256:` + strings.Repeat("1", 64) + `","size":4,"urls":["https://example.com/l"]}]}`},
	{method: "PUT", path: "/v2/{name}/manifests/t3", contentType: ociManifest, body: `{"schemaVersion":2,"mediaType":"` + ociManifest + `",` +
		`"artifactType":"application/x-fuzz","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2},` +
		`"layers":[],"subject":{"mediaType":"` + ociManifest + `","digest":"{manifest}","size":10}}`},
	{method: "PUT", path: "/v2/{name}/manifests/i1", contentType: ociIndex, body: `{"schemaVersion":2,"mediaType":"` + ociIndex + `",` +
		`"manifests":[{"mediaType":"` + ociManifest + `","digest":"{manifest}","size":10,"platform":{"architecture":"amd64","os":"linux"}}]}`},
	{method: "PUT", path: "/v2/{name}/manifests/d1", contentType: dockerV2, body: `{"schemaVersion":2,"mediaType":"` + dockerV2 + `",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{config}","size":2},` +
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{blob}","size":4,"urls":["http://example.com/f"]}]}`},
	{method: "PUT", path: "/v2/{name}/manifests/{bodydigest}", contentType: ociManifest, body: `{"schemaVersion":2,"config":{"mediaType":"x","digest":"{config}","size":2},"layers":[]}`},
	{method: "PUT", path: "/v2/{name}/manifests/bad", contentType: ociManifest, body: `{"schemaVersion":3,"config":{"digest":"sha256:00"},"layers":[{"digest":"md5:00","urls":["ftp://x"]}]}`},
	{method: "PUT", path: "/v2/{name}/manifests/odd", contentType: "application/x-junk", body: "{}"},
	{method: "PUT", path: "/v2/{name}/manifests/t4", contentType: ociManifest + "; charset=utf-8", body: `{"schemaVersion":2,` +
		`"config":{"mediaType":"` + ociConfig + `","digest":"{config}","size":2},` +
		`"layers":[{"mediaType":"application/x-unknown","digest":"{blob}","size":4},{"mediaType":"` + ociLayer + `","digest":"{blob}","size":4,"urls":["https://x/y"]}],` +
		`"annotations":{"big":"` + strings.Repeat("a", 1<<20) + `"}}`},
	{method: "PUT", path: "/v2/{name}/manifests/i2", contentType: ociIndex, body: `{"schemaVersion":2,"manifests":null,"subject":{"digest":"{manifest}"}}`},
	{method: "DELETE", path: "/v2/{name}/manifests/nosuchtag"},
	{method: "DELETE", path: "/v2/{name}/manifests/sha256:" + strings.Repeat("2", 64)},
	{method: "GET", path: "/v2/User1/Junk/manifests/v1"},
	{method: "GET", path: "/v2/{name}/blobs/md5:0123"},
	{method: "GET", path: "/v2/{name}/referrers/{manifest}"},
	{method: "GET", path: "/v2/{name}/tags/list", query: "n=-5"},
	{method: "GET", path: "/v2/{name}/tags/list", query: "last=%00"},
	{method: "GET", path: "/v2/{name}/tags/list", query: "last=v1/current/link"},
	{method: "GET", path: "/v2/_catalog", query: "last=%00&n=1"},
}

// FuzzFrontDoor drives the real handler chain, token authorization on and
// a real storage root, with mutations of valid requests, sent with a token
// for everything they do, without one, or with a pull-only one (auth). No
// answer may be a 5xx, nothing may panic, the registry must answer /v2/
// afterwards, and a refused request must leave no new blob or tag behind.
func FuzzFrontDoor(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(uint8(0), s.method, s.path, s.query, s.contentType, s.contentRange, s.length, s.rng, s.accept, []byte(s.body))
	}
	fz := newFuzzRegistry(f)
	// Distribution logs every refusal at error level; millions of them
	// would only slow the fuzzer down.
	logrus.SetLevel(logrus.PanicLevel)
	f.Fuzz(func(t *testing.T, auth uint8, method, path, query, contentType, contentRange, length, rng, accept string, body []byte) {
		fz.t = t
		req := fz.request(method, path, query, contentType, contentRange, length, rng, accept, body)
		if req == nil {
			return // net/http would refuse it before any handler runs
		}
		switch auth % 3 {
		case 1:
			req.Header.Del("Authorization")
		case 2:
			req.Header.Set("Authorization", "Bearer "+fz.pullToken)
		}
		before := fz.last
		rec := httptest.NewRecorder()
		fz.reg.handler.ServeHTTP(rec, req)
		t.Logf("%s %s: %d", req.Method, req.URL, rec.Code)
		fz.last = fz.stored()
		if rec.Code >= 500 {
			t.Fatalf("%s %s: status %d: %s", req.Method, req.URL, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var added []string
			for e := range fz.last {
				if !before[e] {
					added = append(added, e)
				}
			}
			if len(added) > 0 {
				t.Fatalf("%s %s refused with %d stored %q", req.Method, req.URL, rec.Code, added)
			}
		}
		if code := fz.get("/v2/"); code != http.StatusOK {
			t.Fatalf("GET /v2/ after %s %s: status %d", req.Method, req.URL, code)
		}
	})
}

// fuzzRegistry is one registry for a whole fuzzing run, with some content.
type fuzzRegistry struct {
	t                      *testing.T
	reg                    *testRegistry
	root                   string
	token                  string // pull, push and delete on fuzzRepo, pull and push on fuzzOther, the catalog
	pullToken              string // pull on fuzzRepo only
	blob, config, manifest string
	last                   map[string]bool // stored after the previous request
}

func newFuzzRegistry(f *testing.F) *fuzzRegistry {
	reg := newTestRegistry(f, tokentest.NewKey(f, "P-256"), false)
	tok := tokentest.Sign(f, reg.key, tokentest.Claims("fuzzer",
		tokentest.Repo(fuzzRepo, "pull", "push", "delete"), tokentest.Repo(fuzzOther, "pull", "push"),
		tokentest.Access{Type: "registry", Name: "catalog", Actions: []string{"*"}}))
	pull := tokentest.Sign(f, reg.key, tokentest.Claims("fuzzer", tokentest.Repo(fuzzRepo, "pull")))
	fz := &fuzzRegistry{reg: reg, root: reg.root, token: tok, pullToken: pull}
	fz.blob = reg.pushBlob(fuzzOther, tok, []byte("blob"))
	reg.pushBlob(fuzzRepo, tok, []byte("blob"))
	fz.config = reg.pushBlob(fuzzRepo, tok, []byte("{}"))
	reg.pushImage(fuzzRepo, "v1", tok, []byte("layer"))
	resp := reg.do(http.MethodHead, "/v2/"+fuzzRepo+"/manifests/v1", tok, nil, http.Header{"Accept": {ociManifest}})
	fz.manifest = resp.Header.Get("Docker-Content-Digest")
	if fz.manifest == "" {
		f.Fatal("no manifest digest")
	}
	fz.last = fz.stored()
	return fz
}

// request builds the request net/http's server would hand the handler for
// the mutated fields, or nil when the server would refuse it itself.
func (fz *fuzzRegistry) request(method, path, query, contentType, contentRange, length, rng, accept string, body []byte) *http.Request {
	expand := strings.NewReplacer("{name}", fuzzRepo, "{blob}", fz.blob, "{config}", fz.config, "{manifest}", fz.manifest)
	body = []byte(expand.Replace(string(body)))
	bodyDigest := strings.NewReplacer("{bodydigest}", fmt.Sprintf("sha256:%x", sha256.Sum256(body)))
	path, query = bodyDigest.Replace(expand.Replace(path)), bodyDigest.Replace(expand.Replace(query))
	if path == "{upload}" {
		u, err := url.Parse(fz.startUpload())
		if err != nil {
			fz.t.Fatal(err)
		}
		path = u.Path
		if query != "" {
			query = u.RawQuery + "&" + query
		} else {
			query = u.RawQuery
		}
	}
	target := path
	if query != "" {
		target += "?" + query
	}
	var raw bytes.Buffer
	fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: registry.local\r\nAuthorization: Bearer %s\r\n", method, target, fz.token)
	for _, h := range []struct{ name, value string }{
		{"Content-Type", contentType}, {"Content-Range", contentRange}, {"Range", rng}, {"Accept", accept},
	} {
		if h.value != "" {
			fmt.Fprintf(&raw, "%s: %s\r\n", h.name, h.value)
		}
	}
	switch {
	case length == "chunked":
		raw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if len(body) > 0 {
			fmt.Fprintf(&raw, "%x\r\n%s\r\n", len(body), body)
		}
		raw.WriteString("0\r\n\r\n")
	case length != "":
		fmt.Fprintf(&raw, "Content-Length: %s\r\n\r\n%s", length, body)
	case len(body) > 0:
		fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n%s", len(body), body)
	default:
		raw.WriteString("\r\n")
	}
	req, err := http.ReadRequest(bufio.NewReader(&raw))
	if err != nil {
		return nil
	}
	if n, err := strconv.ParseInt(length, 10, 64); length != "" && length != "chunked" && (err != nil || n < 0) {
		return nil // the server refuses a bad Content-Length with 400
	}
	req.RemoteAddr = "192.0.2.1:1234"
	return req
}

// startUpload starts an upload in fuzzRepo and returns its Location.
func (fz *fuzzRegistry) startUpload() string {
	req := httptest.NewRequest(http.MethodPost, "/v2/"+fuzzRepo+"/blobs/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+fz.token)
	rec := httptest.NewRecorder()
	fz.reg.handler.ServeHTTP(rec, req)
	loc := rec.Header().Get("Location")
	if rec.Code != http.StatusAccepted || loc == "" {
		fz.t.Fatalf("start upload: status %d: %s", rec.Code, rec.Body)
	}
	return loc
}

// get answers a GET of path with the fuzzer's token.
func (fz *fuzzRegistry) get(path string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+fz.token)
	rec := httptest.NewRecorder()
	fz.reg.handler.ServeHTTP(rec, req)
	return rec.Code
}

// stored lists the blobs and tags in the storage root (uploads in progress
// are not stored content).
func (fz *fuzzRegistry) stored() map[string]bool {
	entries := make(map[string]bool)
	v2 := filepath.Join(fz.root, "docker", "registry", "v2")
	_ = filepath.WalkDir(v2, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && d.Name() == "_uploads" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			entries[strings.TrimPrefix(p, v2)] = true
		}
		return nil
	})
	return entries
}
