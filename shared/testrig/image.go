package testrig

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
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
	"runtime"
	"time"
)

// OCI media types of the images NewImage writes.
const (
	MediaIndex     = "application/vnd.oci.image.index.v1+json"
	MediaManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaConfig    = "application/vnd.oci.image.config.v1+json"
	MediaLayer     = "application/vnd.oci.image.layer.v1.tar"
	MediaLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Compression is how a random layer's tar is stored.
type Compression int

const (
	// Gzip compresses the tar at gzip's default level, as clients do.
	Gzip Compression = iota
	// GzipStored is gzip framing around stored (level 0) data: a gzip
	// layer that is quick to make however big.
	GzipStored
	// Tar stores the tar uncompressed, so that a push or pull moves exactly
	// the random bytes and measures the registry, not gzip.
	Tar
)

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Layer is a layer blob in an OCI layout.
type Layer struct {
	Descriptor
	DiffID string // digest of the uncompressed tar
	blob   string // where the blob is
}

// Image is an OCI layout directory with one manifest, tagged.
type Image struct {
	Dir      string // the layout; use as Ref()
	Tag      string
	Manifest Descriptor
	Config   Descriptor
	Layers   []Layer
	Raw      []byte // the manifest's bytes
}

// Path is the file holding the layer's blob.
func (l Layer) Path() string { return l.blob }

// Ref is the image's skopeo/podman transport reference.
func (im *Image) Ref() string { return "oci:" + im.Dir + ":" + im.Tag }

// LayerDigests lists the layers' digests, in order.
func (im *Image) LayerDigests() []string {
	var ds []string
	for _, l := range im.Layers {
		ds = append(ds, l.Digest)
	}
	return ds
}

// LayerBytes is the sum of the layer blobs' sizes.
func (im *Image) LayerBytes() int64 {
	var n int64
	for _, l := range im.Layers {
		n += l.Size
	}
	return n
}

func (im *Image) String() string { return fmt.Sprintf("%s@%s", im.Ref(), im.Manifest.Digest) }

// NewImage writes an image tagged tag to the new OCI layout dir, with
// layers fresh random layers of size bytes each.
func NewImage(dir, tag string, layers int, size int64, c Compression) (*Image, error) {
	if err := makeLayout(dir); err != nil {
		return nil, err
	}
	ls := make([]Layer, layers)
	for i := range ls {
		var err error
		if ls[i], err = RandomLayer(dir, size, c); err != nil {
			return nil, err
		}
	}
	return WriteImage(dir, tag, ls...)
}

func makeLayout(dir string) error {
	return os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
}

func blobPath(dir, digest string) string {
	return filepath.Join(dir, "blobs", "sha256", digest[len("sha256:"):])
}

// RandomLayer writes into the OCI layout dir (created if missing) a layer
// blob: a tar of one file of size random, incompressible bytes.
func RandomLayer(dir string, size int64, c Compression) (_ Layer, err error) {
	if err := makeLayout(dir); err != nil {
		return Layer{}, err
	}
	var seed [32]byte
	rand.Read(seed[:])
	payload := mrand.NewChaCha8(seed)
	f, err := os.CreateTemp(filepath.Join(dir, "blobs", "sha256"), ".layer-*")
	if err != nil {
		return Layer{}, err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	blobHash, tarHash := sha256.New(), sha256.New()
	blob := &countWriter{w: io.MultiWriter(f, blobHash)}
	bw := bufio.NewWriterSize(blob, 1<<20)
	var tarOut io.Writer = bw
	var zw *gzip.Writer
	if c != Tar {
		level := gzip.DefaultCompression
		if c == GzipStored {
			level = gzip.NoCompression
		}
		if zw, err = gzip.NewWriterLevel(bw, level); err != nil {
			return Layer{}, err
		}
		tarOut = zw
	}
	tw := tar.NewWriter(io.MultiWriter(tarOut, tarHash))
	name := "layer-" + RandomHex(8)
	err = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg})
	if err == nil {
		_, err = io.CopyN(tw, payload, size)
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil && zw != nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Layer{}, fmt.Errorf("writing layer %s: %w", name, err)
	}
	l := Layer{Descriptor: Descriptor{MediaType: MediaLayerGzip, Digest: digestOf(blobHash), Size: blob.n}, DiffID: digestOf(tarHash)}
	if c == Tar {
		l.MediaType = MediaLayer
	}
	l.blob = blobPath(dir, l.Digest)
	return l, os.Rename(f.Name(), l.blob)
}

// WriteImage writes the config, the manifest tagged tag and the index of
// an image of layers into the OCI layout dir, copying a layer's blob there
// when it is another layout's.
func WriteImage(dir, tag string, layers ...Layer) (*Image, error) {
	if err := makeLayout(dir); err != nil {
		return nil, err
	}
	im := &Image{Dir: dir, Tag: tag}
	diffIDs := make([]string, len(layers))
	descs := make([]Descriptor, len(layers))
	for i, l := range layers {
		if p := blobPath(dir, l.Digest); p != l.blob {
			if _, err := os.Stat(p); err != nil {
				if err := copyFile(l.blob, p); err != nil {
					return nil, err
				}
			}
			l.blob = p
		}
		im.Layers = append(im.Layers, l)
		diffIDs[i] = l.DiffID
		descs[i] = l.Descriptor
	}
	cfg, err := json.Marshal(map[string]any{
		"created":      "1970-01-01T00:00:00Z",
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=/usr/bin:/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return nil, err
	}
	if im.Config, err = writeBlob(dir, MediaConfig, cfg); err != nil {
		return nil, err
	}
	if im.Raw, err = json.Marshal(Manifest{SchemaVersion: 2, MediaType: MediaManifest, Config: im.Config, Layers: descs}); err != nil {
		return nil, err
	}
	if im.Manifest, err = writeBlob(dir, MediaManifest, im.Raw); err != nil {
		return nil, err
	}
	tagged := im.Manifest
	tagged.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaIndex, "manifests": []Descriptor{tagged}})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		return nil, err
	}
	return im, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func writeBlob(dir, mediaType string, data []byte) (Descriptor, error) {
	d := Descriptor{MediaType: mediaType, Digest: Digest(data), Size: int64(len(data))}
	return d, os.WriteFile(blobPath(dir, d.Digest), data, 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// Digest is the sha256 digest of b, as "sha256:HEX".
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
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
