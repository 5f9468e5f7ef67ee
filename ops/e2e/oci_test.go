package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"stx-registry/shared/testrig"
)

// OCI media types the tests name.
const (
	mediaManifest = testrig.MediaManifest
	mediaConfig   = testrig.MediaConfig
	// layerPayloadBytes is the random file in each layer: a few KB, so
	// pushes are quick but the bytes cannot compress away.
	layerPayloadBytes = 4 << 10
)

// descriptor is an OCI content descriptor.
type descriptor = testrig.Descriptor

// newImage writes an image with one fresh random layer to a new OCI layout,
// tagged tag.
func newImage(t testing.TB, tag string) *testrig.Image {
	t.Helper()
	im, err := testrig.NewImage(layoutDir(t), tag, 1, layerPayloadBytes, testrig.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// newImageSharing writes an image whose first layer is other's first layer,
// followed by a fresh one: pushing it where other already is lets a client
// try a cross-repository mount.
func newImageSharing(t testing.TB, tag string, other *testrig.Image) *testrig.Image {
	t.Helper()
	dir := layoutDir(t)
	l, err := testrig.RandomLayer(dir, layerPayloadBytes, testrig.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	im, err := testrig.WriteImage(dir, tag, other.Layers[0], l)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// layoutDir is a new directory for an OCI layout, removed at cleanup.
func layoutDir(t testing.TB) string {
	t.Helper()
	// Not under t.TempDir: podman names an image pulled from oci:DIR after
	// DIR, and a test name's capitals make that an invalid reference.
	tmp, err := os.MkdirTemp("", "e2e-oci-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	return filepath.Join(tmp, "layout")
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// layoutManifest reads the manifest tagged tag in the OCI layout dir, as a
// client wrote it, and returns its digest and its layers' digests.
func layoutManifest(t testing.TB, dir, tag string) (string, []string) {
	t.Helper()
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	for _, m := range index.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] != tag {
			continue
		}
		var man struct {
			Layers []descriptor `json:"layers"`
		}
		readJSON(t, filepath.Join(dir, "blobs", "sha256", m.Digest[len("sha256:"):]), &man)
		var layers []string
		for _, l := range man.Layers {
			layers = append(layers, l.Digest)
		}
		return m.Digest, layers
	}
	t.Fatalf("%s: no manifest tagged %q in index.json", dir, tag)
	return "", nil
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
