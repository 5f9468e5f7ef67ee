package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"stx-registry/shared/testrig"
)

// Test tools named in go.mod's tool block, built from the module's own
// requirements into the daemons' temporary directory.
const (
	conformancePkg = "github.com/opencontainers/distribution-spec/conformance"
	orasPkg        = "oras.land/oras/cmd/oras"
	// toolBuildTimeout bounds building one tool; the first build downloads
	// and compiles its modules.
	toolBuildTimeout = 10 * time.Minute
	// conformanceTimeout bounds one run of the conformance suite.
	conformanceTimeout = 10 * time.Minute
)

var (
	toolsMu sync.Mutex
	tools   = map[string]string{} // package → built binary
)

// tool builds pkg once per test process and returns the binary.
func tool(t testing.TB, pkg string) string {
	t.Helper()
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if b, ok := tools[pkg]; ok {
		return b
	}
	out := filepath.Join(bin.Dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), toolBuildTimeout)
	defer cancel()
	if err := testrig.GoBuild(ctx, moduleRoot, out, pkg); err != nil {
		t.Fatal(err)
	}
	tools[pkg] = out
	return out
}

// conformanceRun is one configuration of the OCI conformance suite.
type conformanceRun struct {
	name string
	repo string // OCI_REPO1 is repo+"-1", OCI_REPO2 repo+"-2", in user1's namespace
	env  []string
}

// conformanceRuns are the two runs make test does: the spec's 1.1 features
// (the referrers API, subjects, sha512) off, and on with sha512 off
// (distribution's storage is sha256 only). Non-distributable layers, a 1.0
// feature deprecated in 1.1, are tested in both.
var conformanceRuns = []conformanceRun{
	{"1.1-off", "user1/oci-v10", []string{
		"OCI_API_REFERRER=false",
		"OCI_DATA_SHA512=false",
		"OCI_DATA_SUBJECT=false",
		"OCI_DATA_SUBJECT_MISSING=false",
		"OCI_DATA_SUBJECT_LIST=false",
	}},
	{"1.1-on-sha512-off", "user1/oci-v11", []string{
		"OCI_API_REFERRER=true",
		"OCI_DATA_SHA512=false",
	}},
}

// TestOCIConformance runs the OCI distribution-spec conformance suite
// against the daemons, as user1 on two repositories of its namespace.
func TestOCIConformance(t *testing.T) {
	e := sharedEnv(t)
	suite := tool(t, conformancePkg)
	for _, run := range conformanceRuns {
		t.Run(run.name, func(t *testing.T) {
			results := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), conformanceTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, suite)
			cmd.Dir = results
			cmd.Env = append([]string{
				"PATH=" + os.Getenv("PATH"),
				"HOME=" + results,
				"SSL_CERT_FILE=" + e.caFile(),
				"OCI_REGISTRY=" + e.registryAddr,
				"OCI_TLS=enabled",
				"OCI_REPO1=" + run.repo + "-1",
				"OCI_REPO2=" + run.repo + "-2",
				"OCI_USERNAME=user1",
				"OCI_PASSWORD=" + e.passwords["user1"],
				"OCI_RESULTS_DIR=" + results,
				"OCI_HIDE_SKIPPED_WORKFLOWS=1",
			}, run.env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("conformance suite timed out after %v\n%s", conformanceTimeout, tail(out.String(), 4000))
			}
			passed, failed := junitCounts(t, filepath.Join(results, "junit.xml"))
			t.Logf("conformance %s: %d passed, %d failed", run.name, passed, len(failed))
			if err != nil || len(failed) > 0 {
				t.Errorf("conformance %s: %v; failed tests:\n  %s\n%s", run.name, err,
					strings.Join(failed, "\n  "), tail(out.String(), 4000))
			}
			e.checkHealthy(t)
		})
	}
}

// junitCounts reads the suite's junit.xml: the number of passed test cases
// and the names of the failed ones, wherever the suites nest them.
func junitCounts(t testing.TB, path string) (passed int, failed []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("conformance results: %v", err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("conformance results %s: %v", path, err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local != "testcase" {
			continue
		}
		var c struct {
			Name      string    `xml:"name,attr"`
			Classname string    `xml:"classname,attr"`
			Status    string    `xml:"status,attr"`
			Failure   *struct{} `xml:"failure"`
			Error     *struct{} `xml:"error"`
			Skipped   *struct{} `xml:"skipped"`
		}
		if err := dec.DecodeElement(&c, &start); err != nil {
			t.Fatalf("conformance results %s: %v", path, err)
		}
		switch {
		case c.Failure != nil || c.Error != nil || c.Status == "failure" || c.Status == "error":
			failed = append(failed, c.Classname+" "+c.Name)
		case c.Skipped == nil && c.Status != "skipped":
			passed++
		}
	}
	if passed == 0 && len(failed) == 0 {
		t.Fatalf("conformance results %s: no test cases", path)
	}
	return passed, failed
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// oras runs the oras client as user with the test CA, in h's private home.
func (e *env) oras(t testing.TB, h *clientHome, user string, args ...string) result {
	t.Helper()
	args = append(args, "--ca-file", e.caFile(), "--username", user, "--password-stdin")
	return h.runInput(t, e.passwords[user], tool(t, orasPkg), args...)
}

// discovered is what oras discover --format json reports: the subject's
// referrers (newer oras) or manifests (older oras).
type discovered struct {
	Referrers []referrer `json:"referrers"`
	Manifests []referrer `json:"manifests"`
}

// referrer is one entry of oras discover's output.
type referrer struct {
	Digest       string `json:"digest"`
	ArtifactType string `json:"artifactType"`
}

func (e *env) orasDiscover(t testing.TB, h *clientHome, user, ref string, extra ...string) []referrer {
	t.Helper()
	r := e.oras(t, h, user, append([]string{"discover", "--format", "json", ref}, extra...)...)
	if r.err != nil {
		t.Fatalf("oras discover %s as %s: %v\n%s", ref, user, r.err, r.output)
	}
	var d discovered
	start := strings.Index(r.output, "{")
	if start < 0 || json.Unmarshal([]byte(r.output[start:]), &d) != nil {
		t.Fatalf("oras discover %s: output is not JSON:\n%s", ref, r.output)
	}
	return append(d.Referrers, d.Manifests...)
}

func artifactTypes(ds []referrer) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ArtifactType)
	}
	slices.Sort(out)
	return out
}

// TestOrasReferrers attaches a signature-like artifact and an SBOM to an
// image pushed with skopeo, discovers them with oras through the referrers
// API, filters, deletes one and discovers again, as user1 in its own
// namespace; user2 gets nothing from user1's referrers.
func TestOrasReferrers(t *testing.T) {
	e := sharedEnv(t)
	h := newClientHome(t)
	im := newImage(t, "v1")
	e.mustPush(t, h, "user1", im, "user1/signed:v1")
	ref := e.registryAddr + "/user1/signed:v1"
	const (
		sigType  = "application/vnd.example.signature.v1"
		sbomType = "application/spdx+json"
	)
	writeFile(t, filepath.Join(h.dir, "sig.bin"), []byte("not really a signature"))
	writeFile(t, filepath.Join(h.dir, "sbom.json"), []byte(`{"spdxVersion":"SPDX-2.3"}`))
	for _, a := range []struct{ typ, file string }{{sigType, "sig.bin"}, {sbomType, "sbom.json"}} {
		r := e.oras(t, h, "user1", "attach", "--distribution-spec", "v1.1-referrers-api",
			"--artifact-type", a.typ, ref, a.file)
		if r.err != nil {
			t.Fatalf("oras attach %s: %v\n%s", a.typ, r.err, r.output)
		}
	}
	all := e.orasDiscover(t, h, "user1", ref)
	if got := artifactTypes(all); !slices.Equal(got, []string{sbomType, sigType}) {
		t.Fatalf("oras discover: artifact types %v, want both", got)
	}
	if got := artifactTypes(e.orasDiscover(t, h, "user1", ref, "--artifact-type", sbomType)); !slices.Equal(got, []string{sbomType}) {
		t.Errorf("oras discover --artifact-type %s: %v", sbomType, got)
	}
	// The registry answered OCI-Subject, so oras used no fallback tag.
	tags := e.api(t, http.MethodGet, "/v2/user1/signed/tags/list", e.tokenFor(t, "user1", "repository:user1/signed:pull"), nil, nil)
	if bytes.Contains(tags.body, []byte("sha256-")) {
		t.Errorf("referrers tag schema used: %s", tags.body)
	}

	var sig referrer
	for _, d := range all {
		if d.ArtifactType == sigType {
			sig = d
		}
	}
	r := e.oras(t, h, "user1", "manifest", "delete", "--force", e.registryAddr+"/user1/signed@"+sig.Digest)
	if r.err != nil {
		t.Fatalf("oras manifest delete: %v\n%s", r.err, r.output)
	}
	if got := artifactTypes(e.orasDiscover(t, h, "user1", ref)); !slices.Equal(got, []string{sbomType}) {
		t.Errorf("oras discover after the delete: %v", got)
	}

	// user2 may not pull user1/signed: oras fails, and the API answers 401
	// with user2's own token.
	if r := e.oras(t, h, "user2", "discover", "--format", "json", ref); r.err == nil {
		t.Errorf("oras discover as user2 succeeded:\n%s", r.output)
	} else if strings.Contains(r.output, sbomType) {
		t.Errorf("oras discover as user2 shows user1's referrers:\n%s", r.output)
	}
	tok := e.tokenFor(t, "user2", "repository:user1/signed:pull")
	listing := e.api(t, http.MethodGet, "/v2/user1/signed/referrers/"+im.Manifest.Digest, tok, nil, nil)
	if listing.status != http.StatusUnauthorized || bytes.Contains(listing.body, []byte(sbomType)) {
		t.Errorf("user2 lists user1's referrers: status %d %s", listing.status, listing.body)
	}
	e.checkHealthy(t)
}

// TestReferrersSHA512 checks that a sha512 subject gets a 4xx registry
// error, never a 5xx.
func TestReferrersSHA512(t *testing.T) {
	e := sharedEnv(t)
	tok := e.tokenFor(t, "user1", "repository:user1/signed:pull")
	r := e.api(t, http.MethodGet, "/v2/user1/signed/referrers/sha512:"+strings.Repeat("0", 128), tok, nil, nil)
	if r.status != http.StatusBadRequest || !bytes.Contains(r.body, []byte(`"DIGEST_INVALID"`)) {
		t.Errorf("sha512 subject: status %d %s, want 400 DIGEST_INVALID", r.status, r.body)
	}
}

// TestReferrersKillAndRebuild pushes referrers with oras, kills the
// registry with SIGKILL and starts it again: the listing is intact. Then it
// loses every record and stx-registry referrers-rebuild writes them back.
func TestReferrersKillAndRebuild(t *testing.T) {
	needTool(t, "openssl")
	e, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.stop()
		os.RemoveAll(e.dir)
	})
	if err := e.passwd("user1"); err != nil {
		t.Fatal(err)
	}
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
	h := newClientHome(t)
	im := newImage(t, "v1")
	e.mustPush(t, h, "user1", im, "user1/killed:v1")
	ref := e.registryAddr + "/user1/killed:v1"
	writeFile(t, filepath.Join(h.dir, "sig.bin"), []byte("signature"))
	for _, typ := range []string{"application/vnd.example.a", "application/vnd.example.b"} {
		if r := e.oras(t, h, "user1", "attach", "--artifact-type", typ, ref, "sig.bin"); r.err != nil {
			t.Fatalf("oras attach: %v\n%s", r.err, r.output)
		}
	}
	want := []string{"application/vnd.example.a", "application/vnd.example.b"}

	if err := e.registry.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.registry.Done()
	if e.registry, err = testrig.StartDaemon(bin.Registry, e.registryConf(), filepath.Join(e.dir, "registry-2.log")); err != nil {
		t.Fatal(err)
	}
	if err := e.waitHealthy(e.registryAddr, e.registry); err != nil {
		t.Fatal(err)
	}
	if got := artifactTypes(e.orasDiscover(t, h, "user1", ref)); !slices.Equal(got, want) {
		t.Errorf("after kill -9: %v, want %v", got, want)
	}

	records := filepath.Join(e.dir, "storage/docker/registry/v2/repositories/user1/killed/_referrers")
	if err := os.RemoveAll(records); err != nil {
		t.Fatal(err)
	}
	if got := artifactTypes(e.orasDiscover(t, h, "user1", ref)); len(got) != 0 {
		t.Errorf("records removed, yet listed: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin.Registry, "referrers-rebuild", "-f", e.registryConf()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "wrote 2 records") {
		t.Fatalf("referrers-rebuild: %v\n%s", err, out)
	}
	if got := artifactTypes(e.orasDiscover(t, h, "user1", ref)); !slices.Equal(got, want) {
		t.Errorf("after referrers-rebuild: %v, want %v", got, want)
	}
}

// TestReferrersGC runs stx-registry gc -delete-untagged over referrers: an
// untagged signature of a tagged image is kept and still listed; a
// signature whose subject is gone is collected with its record, so that
// referrers-rebuild finds nothing stale.
func TestReferrersGC(t *testing.T) {
	e := gcEnv(t, nil, []string{"gc_grace"}, "gc_grace 1s")
	h := newClientHome(t)
	live, gone := newImage(t, "v1"), newImage(t, "v1")
	e.mustPush(t, h, "user1", live, "user1/gcref:live")
	e.mustPush(t, h, "user1", gone, "user1/gcref:gone")
	writeFile(t, filepath.Join(h.dir, "sig.bin"), []byte("signature"))
	for _, tag := range []string{"live", "gone"} {
		if r := e.oras(t, h, "user1", "attach", "--artifact-type", "application/vnd.example.sig", e.registryAddr+"/user1/gcref:"+tag, "sig.bin"); r.err != nil {
			t.Fatalf("oras attach: %v\n%s", r.err, r.output)
		}
	}
	tok := e.tokenFor(t, "user1", "repository:user1/gcref:pull,delete")
	list := func(subject string) int {
		r := e.api(t, http.MethodGet, "/v2/user1/gcref/referrers/"+subject, tok, nil, nil)
		var idx struct{ Manifests []referrer }
		if r.status != http.StatusOK || json.Unmarshal(r.body, &idx) != nil {
			t.Fatalf("listing %s: status %d %s", subject, r.status, r.body)
		}
		return len(idx.Manifests)
	}
	if list(live.Manifest.Digest) != 1 || list(gone.Manifest.Digest) != 1 {
		t.Fatal("attached signatures not listed")
	}
	if r := e.api(t, http.MethodDelete, "/v2/user1/gcref/manifests/"+gone.Manifest.Digest, tok, nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("delete the subject: status %d %s", r.status, r.body)
	}
	time.Sleep(1100 * time.Millisecond) // past gc_grace
	if r := e.runGC(0, "-delete-untagged"); r.err != nil {
		t.Fatalf("gc: %v\n%s", r.err, r.output)
	}
	if n := list(live.Manifest.Digest); n != 1 {
		t.Errorf("untagged signature of a live image: %d listed after gc, want 1", n)
	}
	if n := list(gone.Manifest.Digest); n != 0 {
		t.Errorf("signature of a deleted image: %d listed after gc, want 0", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin.Registry, "referrers-rebuild", "-f", e.registryConf()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed 0\n") {
		t.Errorf("referrers-rebuild after gc: %v\n%s", err, out)
	}
}
