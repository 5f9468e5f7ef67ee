package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"stx-registry/shared/testrig"
)

// The operations of the authorization matrix.
const (
	opPush    = "push"    // skopeo copy oci: → docker://
	opPull    = "pull"    // skopeo copy docker:// → oci:
	opDelete  = "delete"  // DELETE /v2/NAME/manifests/DIGEST with a delete token
	opGrant   = "grant"   // ask for pull,push,delete; check what the token grants
	opCatalog = "catalog" // GET /v2/_catalog with a registry:catalog:* token
)

// deniedOutput is how skopeo reports a refused token or push.
var deniedOutput = regexp.MustCompile(`(?i)denied|unauthorized|authentication required`)

// TestAuthorizationMatrix drives the policy through the real clients and
// the registry: pushes with skopeo, grants read back from the tokens,
// deletes and the catalog through the registry API. The steps run in order;
// later ones rely on the pushes of earlier ones.
func TestAuthorizationMatrix(t *testing.T) {
	e := sharedEnv(t)
	h := newClientHome(t)
	images := map[string]*testrig.Image{}
	img := func(name string) *testrig.Image {
		if images[name] == nil {
			images[name] = newImage(t, "v1")
		}
		return images[name]
	}

	steps := []struct {
		name  string
		user  string
		op    string
		repo  string   // NAME:TAG for push and pull, NAME for the others
		image string   // push: which test image; delete: whose digest
		ok    bool     // push, pull, delete, catalog: allowed
		grant []string // grant: the actions expected, sorted
	}{
		{name: "own namespace push", user: "user1", op: opPush, repo: "user1/app:v1", image: "app", ok: true},
		{name: "own namespace pull", user: "user1", op: opPull, repo: "user1/app:v1", ok: true},
		{name: "own namespace grant", user: "user1", op: opGrant, repo: "user1/app", grant: []string{"delete", "pull", "push"}},
		{name: "user2 pushes its own", user: "user2", op: opPush, repo: "user2/testimage:v1.0", image: "testimage", ok: true},
		{name: "other namespace push denied", user: "user1", op: opPush, repo: "user2/x:v1", image: "x"},
		{name: "other namespace grant empty", user: "user1", op: opGrant, repo: "user2/testimage"},
		{name: "other namespace delete denied", user: "user1", op: opDelete, repo: "user2/testimage", image: "testimage"},
		{name: "other namespace image still pulls", user: "user2", op: opPull, repo: "user2/testimage:v1.0", ok: true},
		{name: "name prefix is not a namespace", user: "user1", op: opPush, repo: "user10/x:v1", image: "x"},
		{name: "name prefix grant empty", user: "user1", op: opGrant, repo: "user10/x"},
		{name: "uppercase user owns no uppercase name", user: "User1", op: opGrant, repo: "User1/x"},
		{name: "uppercase user owns no lowercased name", user: "User1", op: opGrant, repo: "user1/x"},
		{name: "uppercase user cannot push to the lowercased name", user: "User1", op: opPush, repo: "user1/upper:v1", image: "x"},
		{name: "reserved namespace push denied", user: "user1", op: opPush, repo: "platform/x:v1", image: "x"},
		{name: "reserved namespace admin push", user: "admin", op: opPush, repo: "platform/x:v1", image: "platform", ok: true},
		{name: "reserved namespace pull denied", user: "user1", op: opGrant, repo: "platform/x"},
		{name: "public namespace admin push", user: "admin", op: opPush, repo: "public/base:v1", image: "base", ok: true},
		{name: "public namespace user pull", user: "user1", op: opPull, repo: "public/base:v1", ok: true},
		{name: "public namespace user push denied", user: "user1", op: opPush, repo: "public/base:v1", image: "x"},
		{name: "public namespace user grant is pull", user: "user1", op: opGrant, repo: "public/base", grant: []string{"pull"}},
		{name: "user named public owns nothing", user: "public", op: opGrant, repo: "public/mine", grant: []string{"pull"}},
		{name: "user named public cannot push", user: "public", op: opPush, repo: "public/mine:v1", image: "x"},
		{name: "public repository admin push", user: "admin", op: opPush, repo: "library/shared:v1", image: "shared", ok: true},
		{name: "public repository user pull", user: "user1", op: opPull, repo: "library/shared:v1", ok: true},
		{name: "public repository user push denied", user: "user1", op: opPush, repo: "library/shared:v1", image: "x"},
		{name: "public repository neighbour not public", user: "user1", op: opGrant, repo: "library/other"},
		{name: "catalog denied to a user", user: "user1", op: opCatalog},
		{name: "catalog for admin", user: "admin", op: opCatalog, ok: true},
		{name: "own namespace delete", user: "user1", op: opDelete, repo: "user1/app", image: "app", ok: true},
		{name: "own namespace push again", user: "user1", op: opPush, repo: "user1/app:v1", image: "app", ok: true},
	}
	for _, s := range steps {
		t.Run(strings.ReplaceAll(s.name, " ", "_"), func(t *testing.T) {
			switch s.op {
			case opPush:
				r := e.skopeoPush(t, h, s.user, img(s.image), s.repo)
				if s.ok {
					if r.err != nil {
						t.Fatalf("%s push %s: %v\n%s", s.user, s.repo, r.err, r.output)
					}
					return
				}
				if r.err == nil {
					t.Fatalf("%s push %s succeeded, want denied", s.user, s.repo)
				}
				if !deniedOutput.MatchString(r.output) {
					t.Errorf("%s push %s failed, but not as denied:\n%s", s.user, s.repo, r.output)
				}
				name, tag, _ := strings.Cut(s.repo, ":")
				if e.manifestDigest(t, name, tag) == img(s.image).Manifest.Digest {
					t.Errorf("%s holds the image of the denied push", s.repo)
				}
			case opPull:
				dir, r := e.skopeoPull(t, h, s.user, s.repo)
				if s.ok != (r.err == nil) {
					t.Fatalf("%s pull %s: err %v, want allowed %v\n%s", s.user, s.repo, r.err, s.ok, r.output)
				}
				if s.ok {
					name, tag, _ := strings.Cut(s.repo, ":")
					if got, _ := layoutManifest(t, dir, "pulled"); got != e.manifestDigest(t, name, tag) {
						t.Errorf("pulled %s, registry holds %s", got, e.manifestDigest(t, name, tag))
					}
				}
			case opDelete:
				digest := img(s.image).Manifest.Digest
				tok := e.tokenFor(t, s.user, "repository:"+s.repo+":delete")
				r := e.api(t, http.MethodDelete, "/v2/"+s.repo+"/manifests/"+digest, tok, nil, nil)
				want := http.StatusUnauthorized
				if s.ok {
					want = http.StatusAccepted
				}
				if r.status != want {
					t.Fatalf("%s DELETE %s@%s: status %d, want %d: %s", s.user, s.repo, digest, r.status, want, r.body)
				}
				after := e.manifestStatus(t, "admin", s.repo, digest)
				if s.ok && after != http.StatusNotFound {
					t.Errorf("after the delete, HEAD %s@%s answers %d, want 404", s.repo, digest, after)
				}
				if !s.ok && after != http.StatusOK {
					t.Errorf("after the denied delete, HEAD %s@%s answers %d, want 200", s.repo, digest, after)
				}
			case opGrant:
				scope := "repository:" + s.repo + ":pull,push,delete"
				tok := e.tokenFor(t, s.user, scope)
				if got := granted(t, tok, "repository", s.repo); !slices.Equal(got, s.grant) {
					t.Errorf("%s asked %s, granted %v, want %v", s.user, scope, got, s.grant)
				}
			case opCatalog:
				tok := e.tokenFor(t, s.user, "registry:catalog:*")
				r := e.api(t, http.MethodGet, "/v2/_catalog", tok, nil, nil)
				if !s.ok {
					if r.status != http.StatusUnauthorized {
						t.Errorf("%s GET /v2/_catalog: status %d, want 401: %s", s.user, r.status, r.body)
					}
					return
				}
				if r.status != http.StatusOK {
					t.Fatalf("%s GET /v2/_catalog: status %d, want 200: %s", s.user, r.status, r.body)
				}
				var cat struct {
					Repositories []string `json:"repositories"`
				}
				if err := json.Unmarshal(r.body, &cat); err != nil {
					t.Fatalf("catalog: %v: %s", err, r.body)
				}
				for _, want := range []string{"user1/app", "user2/testimage", "platform/x", "public/base", "library/shared"} {
					if !slices.Contains(cat.Repositories, want) {
						t.Errorf("catalog %v lacks %s", cat.Repositories, want)
					}
				}
			default:
				t.Fatalf("unknown op %q", s.op)
			}
		})
	}
}

// manifestStatus is the status of HEAD /v2/NAME/manifests/REF with a pull
// token of user.
func (e *env) manifestStatus(t testing.TB, user, name, ref string) int {
	t.Helper()
	tok := e.tokenFor(t, user, "repository:"+name+":pull")
	return e.api(t, http.MethodHead, "/v2/"+name+"/manifests/"+ref, tok, nil, acceptManifest).status
}

// manifestDigest is the digest the registry holds for NAME:REF, read as
// admin, or "" when there is none.
func (e *env) manifestDigest(t testing.TB, name, ref string) string {
	t.Helper()
	tok := e.tokenFor(t, "admin", "repository:"+name+":pull")
	r := e.api(t, http.MethodHead, "/v2/"+name+"/manifests/"+ref, tok, nil, acceptManifest)
	if r.status != http.StatusOK {
		return ""
	}
	return r.header.Get("Docker-Content-Digest")
}

var acceptManifest = http.Header{"Accept": {mediaManifest}}

// TestCrossNamespaceMount pushes into user2's namespace an image that
// shares a layer with user1/app. The mount from user1/app must not be
// granted, must not fail the push (the registry starts a normal upload:
// 202, not 401, not 201), and user2 must still not read user1/app's blobs.
func TestCrossNamespaceMount(t *testing.T) {
	e := sharedEnv(t)
	h := newClientHome(t)
	base := newImage(t, "v1")
	e.mustPush(t, h, "user1", base, "user1/mountsrc:v1")
	shared := base.Layers[0].Digest

	// Through skopeo: the layer is known from user1/mountsrc in its blob
	// info cache, so it may try the mount; the push must succeed.
	derived := newImageSharing(t, "v1", base)
	mark := e.registry.LogSize()
	e.mustPush(t, h, "user2", derived, "user2/derived:v1")
	// skopeo 1.9 first checks the candidate with a HEAD on user1/mountsrc,
	// is refused, and then uploads without trying the mount; containerd
	// does try it (TestContainerdPull). Any mount that was tried must have
	// been answered with a normal upload.
	for _, m := range mountRequests(e.registry.LogSince(mark)) {
		if m.status != "202" {
			t.Errorf("skopeo's mount from %s answered %s, want 202", m.from, m.status)
		}
	}
	if got := e.manifestDigest(t, "user2/derived", "v1"); got != derived.Manifest.Digest {
		t.Errorf("user2/derived:v1 is %q, pushed %s", got, derived.Manifest.Digest)
	}

	// The exact request: user2's token has pull,push on its own repository
	// and nothing on user1/mountsrc.
	tok := e.tokenFor(t, "user2", "repository:user2/mnt:pull,push", "repository:user1/mountsrc:pull")
	if got := granted(t, tok, "repository", "user1/mountsrc"); len(got) != 0 {
		t.Fatalf("user2 was granted %v on user1/mountsrc", got)
	}
	r := e.api(t, http.MethodPost, "/v2/user2/mnt/blobs/uploads/?mount="+shared+"&from=user1/mountsrc", tok, nil, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("cross-namespace mount: status %d, want 202 (a normal upload): %s", r.status, r.body)
	}
	if loc := r.header.Get("Location"); loc == "" {
		t.Errorf("202 without a Location to upload to")
	} else {
		e.api(t, http.MethodDelete, loc, tok, nil, nil) // cancel the upload
	}
	if r := e.api(t, http.MethodHead, "/v2/user2/mnt/blobs/"+shared, tok, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("after the refused mount, user2/mnt has the blob: HEAD status %d, want 404", r.status)
	}

	// user2 still cannot read user1's blobs.
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		if r := e.api(t, m, "/v2/user1/mountsrc/blobs/"+shared, tok, nil, nil); r.status != http.StatusUnauthorized {
			t.Errorf("user2 %s user1/mountsrc blob: status %d, want 401", m, r.status)
		}
	}

	// Control: within user1's namespace the same mount is granted and done.
	tok1 := e.tokenFor(t, "user1", "repository:user1/copy:pull,push", "repository:user1/mountsrc:pull")
	r = e.api(t, http.MethodPost, "/v2/user1/copy/blobs/uploads/?mount="+shared+"&from=user1/mountsrc", tok1, nil, nil)
	if r.status != http.StatusCreated {
		t.Errorf("same-namespace mount: status %d, want 201: %s", r.status, r.body)
	}
}
