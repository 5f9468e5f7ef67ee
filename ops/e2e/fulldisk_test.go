package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"stx-registry/shared/testrig"
)

// The full-disk test's filesystem: a 64 MiB ext4 image with no blocks
// reserved for root (the registry runs as root here, and f_bavail must be
// what it can write), a 16 MiB storage_reserve and 3 MiB layers.
const (
	fullFSBytes    = 64 << 20
	fullReserve    = "16M"
	fullLayerBytes = 3 << 20
	fullMaxPushes  = 30 // bound on the filling loop
	fullGrace      = time.Second
	// storageFullText is how skopeo and podman print the refusal: the
	// error code, then the registry's message.
	storageFullText = "denied: the registry's storage is full: uploads are refused until an administrator frees space (stx-registry gc)"
)

// loopMount mounts a fresh ext4 filesystem of size bytes, on a loop
// device from the rig, on dir with mode 0700. Cleanup unmounts it and
// detaches the device.
func loopMount(t *testing.T, dir string, size int64) {
	t.Helper()
	needTool(t, "losetup", "mkfs.ext4", "mount", "umount")
	device, detach, err := testrig.LoopDevice(t.TempDir(), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := detach(); err != nil {
			t.Log(err)
		}
	})
	if out, err := exec.Command("mount", device, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount %s %s: %v\n%s", device, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v\n%s", dir, err, out)
		}
	})
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// readyz returns the status and reason of GET /readyz.
func (e *env) readyz(t *testing.T) (int, string) {
	t.Helper()
	r := e.api(t, "GET", "/readyz", "", nil, nil)
	var body struct{ Status, Reason string }
	_ = json.Unmarshal(r.body, &body)
	return r.status, body.Reason
}

// bigImage writes an image with one incompressible layer of n bytes, gzip
// framed so that clients push it as it is.
func bigImage(t *testing.T, tag string, n int64) *testrig.Image {
	t.Helper()
	im, err := testrig.NewImage(layoutDir(t), tag, 1, n, testrig.GzipStored)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestFullDisk fills a small loop-mounted ext4 storage root by pushing,
// then checks: the refusal below storage_reserve and its message with
// skopeo and podman, /readyz, pulls, an admin push into the reserve, an
// upload that runs out of space (ENOSPC) leaving nothing behind, and that
// deleting and collecting makes room for pushes again.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestFullDisk needs root for losetup and mount (run make test as root, as CI does)")
	}
	needTool(t, "skopeo", "podman")
	e := gcEnv(t, func(e *env) {
		loopMount(t, e.storageRoot(), fullFSBytes)
		t.Cleanup(func() { e.stop() }) // before the unmount
	},
		[]string{"require_mount"}, "require_mount yes", "storage_reserve "+fullReserve, fmt.Sprintf("gc_grace %s", fullGrace))
	h := newClientHome(t)

	// Fill: user1 pushes until the registry refuses.
	var ok []*testrig.Image
	var refusal string
	for i := range fullMaxPushes {
		im := bigImage(t, fmt.Sprintf("f%d", i), fullLayerBytes)
		r := e.skopeoPush(t, h, "user1", im, "user1/fill:"+im.Tag)
		if r.err != nil {
			refusal = r.output
			break
		}
		ok = append(ok, im)
	}
	if refusal == "" || len(ok) == 0 {
		t.Fatalf("%d pushes, no refusal", len(ok))
	}
	if !strings.Contains(refusal, storageFullText) {
		t.Fatalf("skopeo's refusal does not say the storage is full:\n%s", refusal)
	}
	t.Logf("skopeo refused after %d pushes:\n%s", len(ok), refusal)
	if status, reason := e.readyz(t); status != 503 || !strings.Contains(reason, "storage_reserve") {
		t.Errorf("/readyz while full: %d %q", status, reason)
	}
	if status, err := e.healthz(e.registryAddr); err != nil || status != 200 {
		t.Errorf("/healthz while full: %d %v, want 200", status, err)
	}

	// podman gets the same refusal.
	small := newImage(t, "p1")
	id := lastLine(mustOK(t, h.podman(t, "pull", "--signature-policy", h.policy, small.Ref()), "podman pull"))
	ref := e.registryAddr + "/user1/podman:p1"
	mustOK(t, h.podman(t, "tag", id, ref), "podman tag")
	r := h.podman(t, "push", "--cert-dir", e.certDir(), "--creds", e.creds("user1"), ref)
	if r.err == nil || !strings.Contains(r.output, storageFullText) {
		t.Fatalf("podman push while full: %v\n%s", r.err, r.output)
	}
	t.Logf("podman refused:\n%s", r.output)

	// Pulls still work.
	dir, pr := e.skopeoPull(t, h, "user1", "user1/fill:"+ok[0].Tag)
	if pr.err != nil {
		t.Fatalf("pull while full: %v\n%s", pr.err, pr.output)
	}
	if d, _ := layoutManifest(t, dir, "pulled"); d != ok[0].Manifest.Digest {
		t.Errorf("pulled %s, pushed %s", d, ok[0].Manifest.Digest)
	}

	// An admin pushes into the reserve.
	adminIm := newImage(t, "v1")
	e.mustPush(t, h, "admin", adminIm, "starlingx/kube:v1")

	// An upload larger than the space left runs out of space (ENOSPC): the
	// client gets the storage-full error and nothing of it stays.
	sp := statfsFree(t, e.storageRoot())
	huge := bigImage(t, "huge", int64(sp)+(4<<20))
	r = e.skopeoPush(t, h, "admin", huge, "starlingx/huge:v1")
	if r.err == nil {
		t.Fatal("a push larger than the free space succeeded")
	}
	if !strings.Contains(r.output, storageFullText) {
		t.Errorf("ENOSPC push: the client was not told the storage is full:\n%s", r.output)
	}
	t.Logf("admin push hitting ENOSPC:\n%s", r.output)
	tok := e.tokenFor(t, "admin", "repository:starlingx/huge:pull")
	if got := e.api(t, "GET", "/v2/starlingx/huge/manifests/v1", tok, nil, acceptOCI); got.status != 404 {
		t.Errorf("the failed push's manifest: %d, want 404", got.status)
	}
	if got := e.api(t, "HEAD", "/v2/starlingx/huge/blobs/"+huge.Layers[0].Digest, tok, nil, nil); got.status != 404 {
		t.Errorf("the failed push's layer: %d, want 404", got.status)
	}
	if n := uploadsLeft(t, e.storageRoot()); n != 0 {
		t.Errorf("%d partial uploads left in the storage", n)
	}

	// Delete, collect, push again.
	for _, im := range ok[1:] {
		mustOK(t, h.skopeo(t, "delete", "--creds", e.creds("user1"), "--cert-dir", e.certDir(),
			"docker://"+e.registryAddr+"/user1/fill:"+im.Tag), "skopeo delete")
	}
	time.Sleep(fullGrace + 200*time.Millisecond)
	res := e.runGC(0)
	if res.err != nil || res.bytes < int64(len(ok)-1)*fullLayerBytes {
		t.Fatalf("gc after deleting %d images: %v\n%s", len(ok)-1, res.err, res.output)
	}
	t.Logf("gc: %s", strings.TrimSpace(res.output))
	if status, reason := e.readyz(t); status != 200 {
		t.Errorf("/readyz after gc: %d %q", status, reason)
	}
	checkMetrics(t, e, res.bytes)
	out, err := exec.Command(bin.Registry, "usage", "-f", e.registryConf()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "user1 ") || !strings.Contains(string(out), "total ") {
		t.Errorf("stx-registry usage: %v\n%s", err, out)
	}
	t.Logf("stx-registry usage:\n%s", out)
	again := bigImage(t, "again", fullLayerBytes)
	e.mustPush(t, h, "user1", again, "user1/fill:again")
	mustOK(t, h.podman(t, "push", "--cert-dir", e.certDir(), "--creds", e.creds("user1"), ref), "podman push after gc")
	e.checkHealthy(t)
}

// statfsFree is the free space of the filesystem at dir.
func statfsFree(t *testing.T, dir string) uint64 {
	t.Helper()
	out, err := exec.Command("stat", "-f", "-c", "%a %S", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	var blocks, size uint64
	if _, err := fmt.Sscan(string(out), &blocks, &size); err != nil {
		t.Fatal(err)
	}
	return blocks * size
}

// uploadsLeft counts the upload sessions left in every repository.
func uploadsLeft(t *testing.T, root string) int {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(root, "docker/registry/v2/repositories/*/*/_uploads/*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(dirs)
}

// checkMetrics scrapes /metrics (the test runs on loopback, the default
// metrics_network), parses it with Prometheus' own parser and checks the
// storage and collection metrics.
func checkMetrics(t *testing.T, e *env, freed int64) {
	t.Helper()
	r := e.api(t, "GET", "/metrics", "", nil, nil)
	if r.status != 200 {
		t.Fatalf("GET /metrics: %d", r.status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	value := func(name string) float64 {
		f := families[name]
		if f == nil || len(f.Metric) != 1 {
			t.Fatalf("/metrics has no single %s", name)
		}
		if c := f.Metric[0].Counter; c != nil {
			return c.GetValue()
		}
		return f.Metric[0].Gauge.GetValue()
	}
	if v := value("stx_registry_gc_runs_total"); v < 1 {
		t.Errorf("stx_registry_gc_runs_total %v", v)
	}
	if v := value("stx_registry_gc_freed_bytes_total"); v < float64(freed) {
		t.Errorf("stx_registry_gc_freed_bytes_total %v, gc said %d", v, freed)
	}
	if size, free := value("stx_registry_storage_size_bytes"), value("stx_registry_storage_free_bytes"); size < fullFSBytes/2 || free <= 0 || free > size {
		t.Errorf("storage size %v free %v", size, free)
	}
	if v := value("stx_registry_storage_reserve_bytes"); v != 16<<20 {
		t.Errorf("stx_registry_storage_reserve_bytes %v", v)
	}
	var refused float64
	for _, m := range families["stx_registry_requests_total"].Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["method"] == "POST" && labels["route"] == "upload" && labels["status"] == "4xx" {
			refused = m.Counter.GetValue()
		}
	}
	if refused < 2 {
		t.Errorf("refused uploads (POST upload 4xx) counted %v, want the skopeo and podman refusals", refused)
	}
	for name := range families {
		if !strings.HasPrefix(name, "stx_registry_") {
			t.Errorf("unexpected metric %s", name)
		}
	}
	if strings.Contains(string(r.body), "user1") || strings.Contains(string(r.body), "starlingx") {
		t.Error("a repository name appears in /metrics")
	}
}
