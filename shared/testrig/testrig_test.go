package testrig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestNoDaemonLinksRig: the rig runs programs and writes files for tests;
// neither daemon may link it.
func TestNoDaemonLinksRig(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"./registry", "./token"} {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		if slices.Contains(strings.Fields(string(out)), "stx-registry/shared/testrig") {
			t.Errorf("%s links stx-registry/shared/testrig", pkg)
		}
	}
}

func TestEditConf(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.conf")
	if err := WriteConf(src, "# comment", "listen 127.0.0.1:1", "users_file /u", "listen_extra x"); err != nil {
		t.Fatal(err)
	}
	if err := AppendConf(src, "log_format json"); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "b.conf")
	if err := EditConf(src, dst, []string{"listen", "users_file"}, "listen 127.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	want := "# comment\nlisten_extra x\nlog_format json\nlisten 127.0.0.1:2\n"
	if string(got) != want {
		t.Errorf("EditConf wrote %q, want %q", got, want)
	}
}

// TestImages checks that every blob of a written layout has its digest and
// size, and that an image sharing another's layer holds a copy of it.
func TestImages(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []Compression{Gzip, GzipStored, Tar} {
		a, err := NewImage(filepath.Join(dir, "a", strings.Repeat("x", int(c)+1)), "v1", 2, 1000, c)
		if err != nil {
			t.Fatal(err)
		}
		checkLayout(t, a)
		bdir := filepath.Join(dir, "b", strings.Repeat("x", int(c)+1))
		l, err := RandomLayer(bdir, 10, c)
		if err != nil {
			t.Fatal(err)
		}
		b, err := WriteImage(bdir, "v2", a.Layers[0], l)
		if err != nil {
			t.Fatal(err)
		}
		checkLayout(t, b)
		if b.Layers[0].Digest != a.Layers[0].Digest || b.Layers[1].Digest == a.Layers[1].Digest {
			t.Errorf("sharing image layers %v, first image's %v", b.LayerDigests(), a.LayerDigests())
		}
		if c == Tar && a.Layers[0].DiffID != a.Layers[0].Digest {
			t.Errorf("uncompressed layer: diff ID %s, digest %s", a.Layers[0].DiffID, a.Layers[0].Digest)
		}
		if c != Tar && a.Layers[0].MediaType != MediaLayerGzip {
			t.Errorf("compression %d: media type %s", c, a.Layers[0].MediaType)
		}
	}
}

func checkLayout(t *testing.T, im *Image) {
	t.Helper()
	var index struct {
		Manifests []Descriptor `json:"manifests"`
	}
	b, err := os.ReadFile(filepath.Join(im.Dir, "index.json"))
	if err != nil || json.Unmarshal(b, &index) != nil || len(index.Manifests) != 1 {
		t.Fatalf("%s: index.json %s (%v)", im.Dir, b, err)
	}
	if m := index.Manifests[0]; m.Digest != im.Manifest.Digest || m.Annotations["org.opencontainers.image.ref.name"] != im.Tag {
		t.Errorf("%s: index names %+v, want %s tagged %s", im.Dir, m, im.Manifest.Digest, im.Tag)
	}
	for _, d := range append([]Descriptor{im.Manifest, im.Config}, descriptors(im.Layers)...) {
		data, err := os.ReadFile(blobPath(im.Dir, d.Digest))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.Digest || int64(len(data)) != d.Size {
			t.Errorf("%s: blob %s has digest %s and %d bytes, want %d", im.Dir, d.Digest, got, len(data), d.Size)
		}
	}
}

func descriptors(ls []Layer) []Descriptor {
	var ds []Descriptor
	for _, l := range ls {
		ds = append(ds, l.Descriptor)
	}
	return ds
}

// TestTrustCA: Stop removes the CA files TrustCA placed and the
// directories it created, and nothing else; an existing ca.crt is refused.
func TestTrustCA(t *testing.T) {
	tmp := t.TempDir()
	saved := dockerCertsDir
	t.Cleanup(func() { dockerCertsDir = saved })
	dockerCertsDir = filepath.Join(tmp, "etc", "docker", "certs.d")
	if err := os.Mkdir(filepath.Join(tmp, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(tmp, "ca.pem")
	if err := os.WriteFile(ca, []byte("CA"), 0o600); err != nil {
		t.Fatal(err)
	}

	d := &Dockerd{}
	for _, hp := range []string{"127.0.0.1:1", "127.0.0.1:2"} {
		if err := d.TrustCA(hp, ca); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dockerCertsDir, hp, "ca.crt")); err != nil || string(b) != "CA" {
			t.Fatalf("%s/ca.crt: %q, %v", hp, b, err)
		}
	}
	if err := d.TrustCA("127.0.0.1:1", ca); err == nil {
		t.Error("TrustCA replaced a ca.crt that was already there")
	}
	// Someone else's entry, added meanwhile, stays, and so do the
	// directories holding it.
	other := filepath.Join(dockerCertsDir, "127.0.0.1:3")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	d.Stop()
	for _, p := range []string{filepath.Join(dockerCertsDir, "127.0.0.1:1"), filepath.Join(dockerCertsDir, "127.0.0.1:2")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left after Stop: %v", p, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("Stop removed another entry: %v", err)
	}
	// With nothing else there, Stop removes the directories it made.
	for _, p := range []string{other, dockerCertsDir, filepath.Dir(dockerCertsDir)} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	d = &Dockerd{}
	if err := d.TrustCA("127.0.0.1:1", ca); err != nil {
		t.Fatal(err)
	}
	d.Stop()
	if _, err := os.Stat(filepath.Join(tmp, "etc", "docker")); !os.IsNotExist(err) {
		t.Errorf("Stop left the directories TrustCA created: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "etc")); err != nil {
		t.Errorf("Stop removed a directory TrustCA did not create: %v", err)
	}
}
