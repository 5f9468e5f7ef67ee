package main

// Test images as OCI layouts: random, incompressible data in uncompressed
// tar layers, so that pushes and pulls measure the registry moving bytes,
// not gzip.

import (
	"archive/tar"
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
)

// Media types of the generated image.
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar" // uncompressed
	imageTag      = "v1"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// image is a generated OCI layout.
type image struct {
	dir        string
	layers     []descriptor
	layerBytes int64 // sum of the layer blob sizes: what MB/s is computed on
}

// blobPath is where a layout keeps the blob with digest d.
func blobPath(dir, d string) string {
	return filepath.Join(dir, "blobs", "sha256", d[len("sha256:"):])
}

// makeImage writes an OCI layout in dir with layers layers, each holding
// one file of size random bytes.
func makeImage(dir string, layers int, size int64) (*image, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o700); err != nil {
		return nil, err
	}
	var seed [32]byte
	rand.Read(seed[:])
	rng := mrand.NewChaCha8(seed)
	img := &image{dir: dir}
	var diffIDs []string
	for i := range layers {
		d, err := writeLayer(dir, fmt.Sprintf("layer-%03d.bin", i), size, rng)
		if err != nil {
			return nil, err
		}
		img.layers = append(img.layers, d)
		img.layerBytes += d.Size
		diffIDs = append(diffIDs, d.Digest) // uncompressed: the diff ID is the digest
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return nil, err
	}
	cd, err := writeBlob(dir, mediaConfig, cfg)
	if err != nil {
		return nil, err
	}
	m, err := json.Marshal(manifest{SchemaVersion: 2, MediaType: mediaManifest, Config: cd, Layers: img.layers})
	if err != nil {
		return nil, err
	}
	md, err := writeBlob(dir, mediaManifest, m)
	if err != nil {
		return nil, err
	}
	md.Annotations = map[string]string{"org.opencontainers.image.ref.name": imageTag}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []descriptor{md}})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o600); err != nil {
		return nil, err
	}
	return img, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600)
}

func writeBlob(dir, mediaType string, data []byte) (descriptor, error) {
	sum := sha256.Sum256(data)
	d := descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}
	return d, os.WriteFile(blobPath(dir, d.Digest), data, 0o600)
}

// writeLayer writes a tar of one file of size random bytes as a blob.
func writeLayer(dir, name string, size int64, rng *mrand.ChaCha8) (descriptor, error) {
	f, err := os.CreateTemp(filepath.Join(dir, "blobs", "sha256"), ".layer-*")
	if err != nil {
		return descriptor{}, err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	tw := tar.NewWriter(bw)
	err = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
	if err == nil {
		_, err = io.CopyN(tw, rng, size)
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return descriptor{}, fmt.Errorf("writing layer %s: %w", name, err)
	}
	d := descriptor{MediaType: mediaLayer, Digest: digestOf(h), Size: cw.n}
	return d, os.Rename(f.Name(), blobPath(dir, d.Digest))
}

func digestOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
