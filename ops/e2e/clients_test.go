package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stx-registry/shared/testrig"
)

// clientTimeout bounds one skopeo, podman or ctr run; the images are a few
// KB, so anything near this is a hang.
const clientTimeout = 90 * time.Second

// clientHome is a private configuration for skopeo and podman, so that
// nothing is read from or left in the machine's own: HOME, the auth file,
// registries.conf, the signature policy, the runtime dir.
type clientHome struct {
	dir      string
	authFile string
	policy   string
}

func newClientHome(t testing.TB) *clientHome {
	t.Helper()
	dir := t.TempDir()
	h := &clientHome{dir: dir, authFile: filepath.Join(dir, "auth.json"), policy: filepath.Join(dir, "policy.json")}
	writeFile(t, h.policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	writeFile(t, filepath.Join(dir, "registries.conf"), []byte("unqualified-search-registries = []\n"))
	// podman refuses a REGISTRY_AUTH_FILE that does not exist.
	writeFile(t, h.authFile, []byte(`{"auths":{}}`))
	writeFile(t, filepath.Join(dir, "containers.conf"), []byte("[engine]\nevents_logger = \"none\"\n"))
	for _, d := range []string{"run", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// environ is the environment the clients run with.
func (h *clientHome) environ() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + h.dir,
		"XDG_RUNTIME_DIR=" + filepath.Join(h.dir, "run"),
		"XDG_CONFIG_HOME=" + filepath.Join(h.dir, "config"),
		"TMPDIR=" + filepath.Join(h.dir, "tmp"),
		"REGISTRY_AUTH_FILE=" + h.authFile,
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(h.dir, "registries.conf"),
		"CONTAINERS_CONF=" + filepath.Join(h.dir, "containers.conf"),
	}
}

// result is what one client run did.
type result struct {
	err    error
	output string // stdout and stderr together
}

// run runs name with args in home's environment, bounded by clientTimeout.
func (h *clientHome) run(t testing.TB, name string, args ...string) result {
	t.Helper()
	return h.runInput(t, "", name, args...)
}

// runInput is run with stdin as the standard input, for passwords.
func (h *clientHome) runInput(t testing.TB, stdin, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = h.environ()
	cmd.Dir = h.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out after %v\n%s", name, strings.Join(args, " "), clientTimeout, out.String())
	}
	t.Logf("$ %s %s: %v", name, strings.Join(args, " "), err)
	return result{err: err, output: out.String()}
}

// skopeo runs skopeo with the private signature policy.
func (h *clientHome) skopeo(t testing.TB, args ...string) result {
	t.Helper()
	needTool(t, "skopeo")
	return h.run(t, "skopeo", append([]string{"--policy", h.policy}, args...)...)
}

// skopeoPush copies im to docker://REG/repo as user.
func (e *env) skopeoPush(t testing.TB, h *clientHome, user string, im *testrig.Image, repo string) result {
	t.Helper()
	return h.skopeo(t, "copy", "--dest-creds", e.creds(user), "--dest-cert-dir", e.certDir(),
		im.Ref(), "docker://"+e.registryAddr+"/"+repo)
}

// skopeoPull copies docker://REG/repo as user into a new OCI layout under
// t.TempDir, tagged "pulled", and returns the layout directory.
func (e *env) skopeoPull(t testing.TB, h *clientHome, user, repo string) (string, result) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pulled")
	return dir, h.skopeo(t, "copy", "--src-creds", e.creds(user), "--src-cert-dir", e.certDir(),
		"docker://"+e.registryAddr+"/"+repo, "oci:"+dir+":pulled")
}

// mustPush pushes im to repo as user and fails the test if that fails.
func (e *env) mustPush(t testing.TB, h *clientHome, user string, im *testrig.Image, repo string) {
	t.Helper()
	if r := e.skopeoPush(t, h, user, im, repo); r.err != nil {
		t.Fatalf("pushing %s as %s: %v\n%s", repo, user, r.err, r.output)
	}
}
