package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stx-registry/registry/referrers"
	"stx-registry/registry/tokenauth/tokentest"
)

// Media types of the artifacts the referrers tests push.
const (
	mediaManifest  = "application/vnd.oci.image.manifest.v1+json"
	mediaIndex     = "application/vnd.oci.image.index.v1+json"
	mediaEmpty     = "application/vnd.oci.empty.v1+json"
	typeSignature  = "application/vnd.example.signature.v1"
	typeSBOMConfig = "application/vnd.example.sbom.config.v1+json"
)

// emptyJSON is the OCI empty descriptor's content.
var emptyJSON = []byte("{}")

func sha256Digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// manifestDesc is a descriptor of pushed content.
type manifestDesc struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// artifact is an image manifest with an empty layer, naming subject when
// it is not nil. artifactType may be empty (the config's media type then
// stands for it).
func artifact(t testing.TB, subject *manifestDesc, artifactType, configType string, annotations map[string]string) []byte {
	t.Helper()
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        manifestDesc{MediaType: configType, Digest: sha256Digest(emptyJSON), Size: 2},
		"layers":        []manifestDesc{{MediaType: mediaEmpty, Digest: sha256Digest(emptyJSON), Size: 2}},
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	if subject != nil {
		m["subject"] = subject
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putManifest PUTs body to name at ref (a digest when empty) and returns
// the response, failing unless distribution answered 201.
func (r *testRegistry) putManifest(name, ref, bearer, mediaType string, body []byte) (*http.Response, manifestDesc) {
	r.t.Helper()
	if ref == "" {
		ref = sha256Digest(body)
	}
	resp := r.do(http.MethodPut, "/v2/"+name+"/manifests/"+ref, bearer, body, http.Header{"Content-Type": {mediaType}})
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("PUT manifest %s:%s: status %d, want 201: %s", name, ref, resp.StatusCode, b)
	}
	return resp, manifestDesc{MediaType: mediaType, Digest: sha256Digest(body), Size: int64(len(body))}
}

// referrerIndex is the body of a referrers listing.
type referrerIndex struct {
	SchemaVersion int            `json:"schemaVersion"`
	MediaType     string         `json:"mediaType"`
	Manifests     []manifestDesc `json:"manifests"`
}

// listReferrers GETs path and decodes the index, failing unless it is a
// 200 with the index media type.
func (r *testRegistry) listReferrers(path, bearer string) (referrerIndex, *http.Response) {
	r.t.Helper()
	resp := r.do(http.MethodGet, path, bearer, nil, nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("GET %s: status %d, want 200: %s", path, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != mediaIndex {
		r.t.Errorf("GET %s: Content-Type %q, want %q", path, ct, mediaIndex)
	}
	var idx referrerIndex
	if err := json.Unmarshal(body, &idx); err != nil {
		r.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != mediaIndex || idx.Manifests == nil {
		r.t.Errorf("GET %s: not an OCI index with a manifests list: %s", path, body)
	}
	return idx, resp
}

func digests(ds []manifestDesc) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Digest)
	}
	slices.Sort(out)
	return out
}

// TestReferrers pushes an image, a signature, an SBOM, an index of
// attestations and a referrer of a subject not pushed yet, and checks the
// listing, its filter, OCI-Subject, deletes, other repositories and
// authorization.
func TestReferrers(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	alice := r.token("alice", tokentest.Repo("alice/y", "pull", "push", "delete"))
	r.pushBlob("alice/y", alice, emptyJSON)
	r.pushImage("alice/y", "v1", alice, []byte("layer"))
	resp := r.do(http.MethodHead, "/v2/alice/y/manifests/v1", alice, nil, http.Header{"Accept": {mediaManifest}})
	image := manifestDesc{MediaType: mediaManifest, Digest: resp.Header.Get("Docker-Content-Digest")}
	image.Size = resp.ContentLength
	if image.Digest == "" {
		t.Fatal("no digest for alice/y:v1")
	}

	sigBody := artifact(t, &image, typeSignature, mediaEmpty, map[string]string{"org.example.signer": "alice"})
	resp, sig := r.putManifest("alice/y", "", alice, mediaManifest, sigBody)
	if got := resp.Header.Get("OCI-Subject"); got != image.Digest {
		t.Errorf("signature PUT: OCI-Subject %q, want %q", got, image.Digest)
	}
	sig.ArtifactType, sig.Annotations = typeSignature, map[string]string{"org.example.signer": "alice"}

	// No artifactType: the config's media type stands for it. Pushed by tag.
	resp, sbom := r.putManifest("alice/y", "sbom", alice, mediaManifest, artifact(t, &image, "", typeSBOMConfig, nil))
	if got := resp.Header.Get("OCI-Subject"); got != image.Digest {
		t.Errorf("SBOM PUT: OCI-Subject %q, want %q", got, image.Digest)
	}
	sbom.ArtifactType = typeSBOMConfig

	indexBody, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mediaIndex, "artifactType": "application/vnd.example.attestations",
		"manifests": []manifestDesc{sig}, "subject": image,
	})
	resp, idx := r.putManifest("alice/y", "", alice, mediaIndex, indexBody)
	if got := resp.Header.Get("OCI-Subject"); got != image.Digest {
		t.Errorf("index PUT: OCI-Subject %q, want %q", got, image.Digest)
	}
	idx.ArtifactType = "application/vnd.example.attestations"

	// An image without a subject answers without OCI-Subject.
	resp, _ = r.putManifest("alice/y", "", alice, mediaManifest, artifact(t, nil, "", mediaEmpty, map[string]string{"n": "1"}))
	if got, ok := resp.Header["Oci-Subject"]; ok {
		t.Errorf("PUT without subject: OCI-Subject %q", got)
	}

	list := "/v2/alice/y/referrers/" + image.Digest
	got, resp := r.listReferrers(list, alice)
	want := []manifestDesc{sig, sbom, idx}
	slices.SortFunc(want, func(a, b manifestDesc) int { return strings.Compare(a.Digest, b.Digest) })
	if !equalJSON(got.Manifests, want) {
		t.Errorf("listing:\n got %s\nwant %s", mustJSON(got.Manifests), mustJSON(want))
	}
	if resp.Header.Get("OCI-Filters-Applied") != "" || resp.Header.Get("Link") != "" {
		t.Errorf("unfiltered single page: OCI-Filters-Applied %q, Link %q", resp.Header.Get("OCI-Filters-Applied"), resp.Header.Get("Link"))
	}

	got, resp = r.listReferrers(list+"?artifactType="+url.QueryEscape(typeSBOMConfig), alice)
	if !equalJSON(got.Manifests, []manifestDesc{sbom}) {
		t.Errorf("filtered listing: %s", mustJSON(got.Manifests))
	}
	if h := resp.Header.Get("OCI-Filters-Applied"); h != "artifactType" {
		t.Errorf("OCI-Filters-Applied %q, want artifactType", h)
	}

	// A subject that is not there yet: recorded and listed all the same.
	missing := manifestDesc{MediaType: mediaManifest, Digest: sha256Digest([]byte("not pushed")), Size: 10}
	resp, early := r.putManifest("alice/y", "", alice, mediaManifest, artifact(t, &missing, typeSignature, mediaEmpty, nil))
	if got := resp.Header.Get("OCI-Subject"); got != missing.Digest {
		t.Errorf("PUT naming a missing subject: OCI-Subject %q", got)
	}
	got, _ = r.listReferrers("/v2/alice/y/referrers/"+missing.Digest, alice)
	if d := digests(got.Manifests); len(d) != 1 || d[0] != early.Digest {
		t.Errorf("referrers of a missing subject: %v", d)
	}

	// No referrers, or no repository at all: an empty index.
	for _, p := range []string{"/v2/alice/y/referrers/" + sha256Digest([]byte("nothing")), "/v2/alice/nothere/referrers/" + image.Digest} {
		tok := r.token("alice", tokentest.Repo("alice/y", "pull"), tokentest.Repo("alice/nothere", "pull"))
		if got, _ := r.listReferrers(p, tok); len(got.Manifests) != 0 {
			t.Errorf("%s: %d entries, want none", p, len(got.Manifests))
		}
	}

	// bob's repository holds a referrer of alice's image digest, and bob
	// pushes alice's signature bytes too: neither shows in alice's list,
	// and alice's never shows in bob's.
	bob := r.token("bob", tokentest.Repo("bob/x", "pull", "push", "delete"))
	r.pushBlob("bob/x", bob, emptyJSON)
	_, bobSig := r.putManifest("bob/x", "", bob, mediaManifest, artifact(t, &image, typeSignature, mediaEmpty, map[string]string{"who": "bob"}))
	r.putManifest("bob/x", "", bob, mediaManifest, sigBody)
	got, _ = r.listReferrers(list, alice)
	if slices.Contains(digests(got.Manifests), bobSig.Digest) || len(got.Manifests) != 3 {
		t.Errorf("alice's listing shows bob's manifests: %v", digests(got.Manifests))
	}
	got, _ = r.listReferrers("/v2/bob/x/referrers/"+image.Digest, bob)
	if d := digests(got.Manifests); !slices.Equal(d, digests([]manifestDesc{bobSig, sig})) {
		t.Errorf("bob's listing %v", d)
	}

	// Authorization: pull on alice/y, as any read; a token that lacks it is
	// DENIED by the front door, as for any other route.
	for _, tt := range []struct{ name, bearer, code string }{
		{"no token", "", "UNAUTHORIZED"},
		{"token for another repository", r.token("alice", tokentest.Repo("alice/z", "pull")), "DENIED"},
		{"bob's token", bob, "DENIED"},
		{"push only", r.token("alice", tokentest.Repo("alice/y", "push")), "DENIED"},
	} {
		resp := r.do(http.MethodGet, list, tt.bearer, nil, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"`+tt.code+`"`) {
			t.Errorf("%s: status %d %s, want 401 %s", tt.name, resp.StatusCode, body, tt.code)
		}
		if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `scope="repository:alice/y:pull"`) {
			t.Errorf("%s: challenge %q names no pull scope", tt.name, ch)
		}
	}

	// Deleting a referrer takes it off the list at once; deleting a tag
	// does not.
	if resp := r.do(http.MethodDelete, "/v2/alice/y/manifests/"+sig.Digest, alice, nil, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE signature: status %d", resp.StatusCode)
	}
	if resp := r.do(http.MethodDelete, "/v2/alice/y/manifests/sbom", alice, nil, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE tag sbom: status %d", resp.StatusCode)
	}
	got, _ = r.listReferrers(list, alice)
	if d := digests(got.Manifests); !slices.Equal(d, digests([]manifestDesc{sbom, idx})) {
		t.Errorf("after the delete: %v", d)
	}
}

// TestReferrersBadRequests checks the 4xx answers: never a 5xx, never a
// listing.
func TestReferrersBadRequests(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	tok := r.token("alice", tokentest.Repo("alice/y", "pull"))
	sha512 := "sha512:" + strings.Repeat("ab", 64)
	subject := sha256Digest([]byte("x"))
	tests := []struct {
		name, method, path string
		body               []byte
		status             int
		code               string
	}{
		{"sha512 subject", http.MethodGet, "/v2/alice/y/referrers/" + sha512, nil, 400, "DIGEST_INVALID"},
		{"not a digest", http.MethodGet, "/v2/alice/y/referrers/latest", nil, 400, "DIGEST_INVALID"},
		{"short hex", http.MethodGet, "/v2/alice/y/referrers/sha256:abc", nil, 400, "DIGEST_INVALID"},
		{"n zero", http.MethodGet, "/v2/alice/y/referrers/" + subject + "?n=0", nil, 400, "PAGINATION_NUMBER_INVALID"},
		{"n not a number", http.MethodGet, "/v2/alice/y/referrers/" + subject + "?n=x", nil, 400, "PAGINATION_NUMBER_INVALID"},
		{"last not a digest", http.MethodGet, "/v2/alice/y/referrers/" + subject + "?last=x", nil, 400, "DIGEST_INVALID"},
		{"last sha512", http.MethodGet, "/v2/alice/y/referrers/" + subject + "?last=" + sha512, nil, 400, "DIGEST_INVALID"},
		{"long artifactType", http.MethodGet, "/v2/alice/y/referrers/" + subject + "?artifactType=" + strings.Repeat("a", 256), nil, 400, "UNSUPPORTED"},
		{"bad name", http.MethodGet, "/v2/alice/Y/referrers/" + subject, nil, 400, "NAME_INVALID"},
		{"POST", http.MethodPost, "/v2/alice/y/referrers/" + subject, nil, 405, "UNSUPPORTED"},
		{"body", http.MethodGet, "/v2/alice/y/referrers/" + subject, []byte("x"), 400, "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := r.do(tt.method, tt.path, tok, tt.body, nil)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), `"`+tt.code+`"`) {
				t.Errorf("status %d %s, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" && ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	// A manifest whose subject is a sha512 digest is stored, as
	// distribution does, but not recorded: no OCI-Subject, so clients fall
	// back to the tag schema.
	push := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	r.pushBlob("alice/y", push, emptyJSON)
	resp, _ := r.putManifest("alice/y", "", push, mediaManifest,
		artifact(t, &manifestDesc{MediaType: mediaManifest, Digest: sha512, Size: 3}, typeSignature, mediaEmpty, nil))
	if got, ok := resp.Header["Oci-Subject"]; ok {
		t.Errorf("sha512 subject: OCI-Subject %q", got)
	}
}

// TestReferrersCrashLeftovers removes a referrer's manifest behind the
// registry's back (as a crash between a delete and the record's removal
// would leave it): the listing skips it; a damaged record is described
// from its manifest.
func TestReferrersCrashLeftovers(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	tok := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	r.pushBlob("alice/y", tok, emptyJSON)
	subject := manifestDesc{MediaType: mediaManifest, Digest: sha256Digest([]byte("s")), Size: 1}
	_, a := r.putManifest("alice/y", "", tok, mediaManifest, artifact(t, &subject, "application/vnd.example.a", mediaEmpty, nil))
	_, b := r.putManifest("alice/y", "", tok, mediaManifest, artifact(t, &subject, "application/vnd.example.b", mediaEmpty, nil))
	repo := filepath.Join(r.root, "docker/registry/v2/repositories/alice/y")
	if err := os.RemoveAll(filepath.Join(repo, "_manifests/revisions/sha256", strings.TrimPrefix(a.Digest, "sha256:"))); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(repo, "_referrers/sha256", strings.TrimPrefix(subject.Digest, "sha256:"), strings.TrimPrefix(b.Digest, "sha256:"))
	if err := os.WriteFile(record, []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, _ := r.listReferrers("/v2/alice/y/referrers/"+subject.Digest, tok)
	if len(got.Manifests) != 1 || got.Manifests[0].Digest != b.Digest || got.Manifests[0].ArtifactType != "application/vnd.example.b" {
		t.Errorf("listing after the crash: %s", mustJSON(got.Manifests))
	}
}

// TestReferrersPaging pushes 1,000 referrers of one subject and 10,000
// other manifests to the same repository, and reads the referrers back in
// pages.
func TestReferrersPaging(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 11,000 manifests")
	}
	const nReferrers, nOthers = 1000, 10000
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	tok := r.token("alice", tokentest.Repo("alice/big", "pull", "push"))
	r.pushBlob("alice/big", tok, emptyJSON)
	subject := manifestDesc{MediaType: mediaManifest, Digest: sha256Digest([]byte("subject")), Size: 7}
	other := manifestDesc{MediaType: mediaManifest, Digest: sha256Digest([]byte("other")), Size: 5}
	start := time.Now()
	want := r.pushMany(t, "alice/big", tok, nReferrers, func(i int) []byte {
		return artifact(t, &subject, typeSignature, mediaEmpty, map[string]string{"i": fmt.Sprint(i)})
	})
	t.Logf("pushed %d referrers in %s", nReferrers, time.Since(start))
	start = time.Now()
	// Unrelated: 100 referrers of another subject, the rest plain images.
	r.pushMany(t, "alice/big", tok, nOthers, func(i int) []byte {
		if i < 100 {
			return artifact(t, &other, typeSignature, mediaEmpty, map[string]string{"i": fmt.Sprint(i)})
		}
		return artifact(t, nil, "", mediaEmpty, map[string]string{"i": fmt.Sprint(i)})
	})
	t.Logf("pushed %d other manifests in %s", nOthers, time.Since(start))
	slices.Sort(want)

	start = time.Now()
	// One page holds them all by default: the bound is 1,000.
	got, resp := r.listReferrers("/v2/alice/big/referrers/"+subject.Digest, tok)
	if d := digests(got.Manifests); !slices.Equal(d, want) || resp.Header.Get("Link") != "" {
		t.Errorf("default page: %d entries, Link %q; want %d and no Link", len(d), resp.Header.Get("Link"), len(want))
	}
	// n above the bound is lowered to it.
	got, _ = r.listReferrers("/v2/alice/big/referrers/"+subject.Digest+"?n=5000", tok)
	if len(got.Manifests) != referrers.MaxPageEntries {
		t.Errorf("n=5000: %d entries, want %d", len(got.Manifests), referrers.MaxPageEntries)
	}
	// Pages of 300 through the Link header.
	var paged []string
	next, pages := "/v2/alice/big/referrers/"+subject.Digest+"?n=300", 0
	for next != "" {
		got, resp := r.listReferrers(next, tok)
		pages++
		if len(got.Manifests) > 300 {
			t.Fatalf("page %d: %d entries", pages, len(got.Manifests))
		}
		for _, m := range got.Manifests {
			paged = append(paged, m.Digest)
		}
		next = linkNext(t, resp.Header.Get("Link"))
		if pages > 10 {
			t.Fatal("too many pages")
		}
	}
	t.Logf("listed in %s", time.Since(start))
	if pages != 4 || !slices.Equal(paged, want) {
		t.Errorf("%d pages, %d entries in order %v; want 4 pages with all %d", pages, len(paged), slices.IsSorted(paged), len(want))
	}
}

// linkNext returns the URL of a Link header's rel="next", or "".
func linkNext(t testing.TB, link string) string {
	t.Helper()
	if link == "" {
		return ""
	}
	u, rest, ok := strings.Cut(strings.TrimPrefix(link, "<"), ">")
	if !ok || strings.TrimSpace(rest) != `; rel="next"` {
		t.Fatalf("Link %q", link)
	}
	return u
}

// pushMany PUTs n manifests made by body to name by digest, 8 at a time,
// and returns their digests.
func (r *testRegistry) pushMany(t testing.TB, name, bearer string, n int, body func(i int) []byte) []string {
	t.Helper()
	out := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				b := body(i)
				out[i] = sha256Digest(b)
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut,
					r.srv.URL+"/v2/"+name+"/manifests/"+out[i], bytes.NewReader(b))
				req.Header.Set("Content-Type", mediaManifest)
				req.Header.Set("Authorization", "Bearer "+bearer)
				resp, err := r.srv.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("PUT %d: status %d", i, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// equalJSON compares two values by their JSON encoding.
func equalJSON(a, b any) bool { return mustJSON(a) == mustJSON(b) }

// TestReferrersRecordFailure makes the record impossible to write: the
// push is answered 500, never 201, and succeeds once the record can be
// written.
func TestReferrersRecordFailure(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	tok := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	r.pushBlob("alice/y", tok, emptyJSON)
	blocker := filepath.Join(r.root, "docker/registry/v2/repositories/alice/y/_referrers")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	subject := manifestDesc{MediaType: mediaManifest, Digest: sha256Digest([]byte("s")), Size: 1}
	body := artifact(t, &subject, typeSignature, mediaEmpty, nil)
	resp := r.do(http.MethodPut, "/v2/alice/y/manifests/"+sha256Digest(body), tok, body, http.Header{"Content-Type": {mediaManifest}})
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("OCI-Subject") != "" || resp.Header.Get("Location") != "" {
		t.Errorf("unrecordable push: status %d, OCI-Subject %q, Location %q: %s",
			resp.StatusCode, resp.Header.Get("OCI-Subject"), resp.Header.Get("Location"), msg)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	r.putManifest("alice/y", "", tok, mediaManifest, body)
	got, _ := r.listReferrers("/v2/alice/y/referrers/"+subject.Digest, tok)
	if d := digests(got.Manifests); len(d) != 1 || d[0] != sha256Digest(body) {
		t.Errorf("after the retry: %v", d)
	}
}
