package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// podman runs podman as root with a private vfs store under h.
func (h *clientHome) podman(t testing.TB, args ...string) result {
	t.Helper()
	return h.podmanInput(t, "", args...)
}

func (h *clientHome) podmanInput(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	needTool(t, "podman")
	global := []string{
		"--root", filepath.Join(h.dir, "root"),
		"--runroot", filepath.Join(h.dir, "runroot"),
		"--storage-driver", "vfs",
	}
	return h.runInput(t, stdin, "podman", append(global, args...)...)
}

func mustOK(t testing.TB, r result, what string) string {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v\n%s", what, r.err, r.output)
	}
	return r.output
}

// lastLine is the last non-empty line of out: podman pull prints the image
// ID there.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestPodmanRoundTrip logs in with podman, pushes an image to user1's
// namespace, removes it locally and pulls it back: the image ID (config
// digest) and the manifest digest must survive. A wrong password must not
// log in.
func TestPodmanRoundTrip(t *testing.T) {
	e := sharedEnv(t)
	h := newClientHome(t)
	ref := e.registryAddr + "/user1/podman:v1"

	r := h.podmanInput(t, "wrong-"+e.passwords["user1"]+"\n", "login", "--cert-dir", e.certDir(), "-u", "user1", "--password-stdin", e.registryAddr)
	if r.err == nil {
		t.Fatalf("podman login with a wrong password succeeded:\n%s", r.output)
	}
	mustOK(t, h.podmanInput(t, e.passwords["user1"]+"\n", "login", "--cert-dir", e.certDir(), "-u", "user1", "--password-stdin", e.registryAddr), "podman login")

	im := newImage(t, "v1")
	id := lastLine(mustOK(t, h.podman(t, "pull", "--signature-policy", h.policy, im.Ref()), "podman pull "+im.Ref()))
	if want := strings.TrimPrefix(im.Config.Digest, "sha256:"); id != want {
		t.Fatalf("podman pull printed image ID %q, want the config digest %s", id, want)
	}
	mustOK(t, h.podman(t, "tag", id, ref), "podman tag")
	digestFile := filepath.Join(h.dir, "digest")
	mustOK(t, h.podman(t, "push", "--cert-dir", e.certDir(), "--digestfile", digestFile, ref), "podman push")
	pushed, err := os.ReadFile(digestFile)
	if err != nil {
		t.Fatal(err)
	}
	pushedDigest := strings.TrimSpace(string(pushed))
	if !strings.HasPrefix(pushedDigest, "sha256:") {
		t.Fatalf("podman push wrote digest %q", pushedDigest)
	}

	mustOK(t, h.podman(t, "rmi", "--force", "--all"), "podman rmi")
	if out := mustOK(t, h.podman(t, "images", "--quiet"), "podman images"); strings.TrimSpace(out) != "" {
		t.Fatalf("images left after rmi --all: %s", out)
	}

	mustOK(t, h.podman(t, "pull", "--cert-dir", e.certDir(), "--signature-policy", h.policy, ref), "podman pull "+ref)
	out := mustOK(t, h.podman(t, "image", "inspect", "--format", "{{.ID}} {{.Digest}}", ref), "podman image inspect")
	fields := strings.Fields(lastLine(out))
	if len(fields) != 2 {
		t.Fatalf("podman image inspect printed %q", out)
	}
	if fields[0] != id {
		t.Errorf("pulled image ID %s, pushed %s", fields[0], id)
	}
	if fields[1] != pushedDigest {
		t.Errorf("pulled manifest digest %s, podman pushed %s", fields[1], pushedDigest)
	}
}
