package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// OCI media types the built images use.
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	// layerPayloadBytes is the random file in each layer: a few KB, so
	// pushes are quick but the bytes cannot compress away.
	layerPayloadBytes = 4 << 10
)

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// layer is one gzip'd tar layer and the digest of its uncompressed tar.
type layer struct {
	data   []byte
	digest string
	diffID string
}

// image is an image written to an OCI layout directory.
type image struct {
	dir      string // the OCI layout; use as "oci:"+dir+":"+tag
	tag      string
	manifest descriptor
	config   descriptor
	layers   []layer
	raw      []byte // the manifest bytes
}

// ref is the image's skopeo/podman transport reference.
func (im *image) ref() string { return "oci:" + im.dir + ":" + im.tag }

// newLayer makes a layer holding one file of random bytes.
func newLayer(t testing.TB) layer {
	t.Helper()
	return randomLayer(t, layerPayloadBytes, gzip.DefaultCompression)
}

// randomLayer makes a gzip'd tar layer holding one file of n random bytes,
// compressed at the given gzip level (gzip.NoCompression keeps big layers
// quick to make).
func randomLayer(t testing.TB, n, level int) layer {
	t.Helper()
	payload := make([]byte, n)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	name := "e2e-" + hex.EncodeToString(payload[:8])
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(n), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return layer{data: gz.Bytes(), digest: sha256Digest(gz.Bytes()), diffID: sha256Digest(tarBuf.Bytes())}
}

// newImage writes an image with one fresh random layer to a new OCI layout
// under t.TempDir, tagged tag.
func newImage(t testing.TB, tag string) *image {
	t.Helper()
	return newImageWithLayers(t, tag, newLayer(t))
}

// newImageSharing writes an image whose first layer is other's first layer,
// followed by a fresh one: pushing it where other already is lets a client
// try a cross-repository mount.
func newImageSharing(t testing.TB, tag string, other *image) *image {
	t.Helper()
	return newImageWithLayers(t, tag, other.layers[0], newLayer(t))
}

func newImageWithLayers(t testing.TB, tag string, layers ...layer) *image {
	t.Helper()
	// Not under t.TempDir: podman names an image pulled from oci:DIR after
	// DIR, and a test name's capitals make that an invalid reference.
	tmp, err := os.MkdirTemp("", "e2e-oci-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	dir := filepath.Join(tmp, "layout")
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	im := &image{dir: dir, tag: tag, layers: layers}
	diffIDs := make([]string, len(layers))
	layerDescs := make([]descriptor, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.diffID
		layerDescs[i] = writeBlob(t, dir, mediaLayer, l.data)
	}
	cfg := map[string]any{
		"created":      "1970-01-01T00:00:00Z",
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=/usr/bin:/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	im.config = writeBlob(t, dir, mediaConfig, mustJSON(t, cfg))
	manifest := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        im.config,
		"layers":        layerDescs,
	}
	im.raw = mustJSON(t, manifest)
	im.manifest = writeBlob(t, dir, mediaManifest, im.raw)
	index := map[string]any{
		"schemaVersion": 2,
		"manifests": []descriptor{{
			MediaType:   mediaManifest,
			Digest:      im.manifest.Digest,
			Size:        im.manifest.Size,
			Annotations: map[string]string{"org.opencontainers.image.ref.name": tag},
		}},
	}
	writeFile(t, filepath.Join(dir, "index.json"), mustJSON(t, index))
	writeFile(t, filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	return im
}

func writeBlob(t testing.TB, dir, mediaType string, data []byte) descriptor {
	t.Helper()
	d := sha256Digest(data)
	writeFile(t, filepath.Join(dir, "blobs", "sha256", d[len("sha256:"):]), data)
	return descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
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

// layerDigests lists the image's layer digests, in order.
func (im *image) layerDigests() []string {
	var ds []string
	for _, l := range im.layers {
		ds = append(ds, l.digest)
	}
	return ds
}

func (im *image) String() string { return fmt.Sprintf("%s@%s", im.ref(), im.manifest.Digest) }
