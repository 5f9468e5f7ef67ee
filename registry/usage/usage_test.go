package usage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// put stores data as a blob under root, links it into each repository,
// and returns its digest.
func put(t *testing.T, root, data string, repos ...string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(data))
	h := hex.EncodeToString(sum[:])
	write := func(rel, content string) {
		p := filepath.Join(root, "docker/registry/v2", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("blobs/sha256/"+h[:2]+"/"+h+"/data", data)
	for _, r := range repos {
		write("repositories/"+r+"/_layers/sha256/"+h+"/link", "sha256:"+h)
	}
	return "sha256:" + h
}

func TestMeasure(t *testing.T) {
	root := t.TempDir()
	put(t, root, strings.Repeat("s", 100), "alice/a", "alice/b", "bob/x") // shared
	put(t, root, strings.Repeat("a", 10), "alice/a")
	put(t, root, strings.Repeat("b", 1000), "bob/x")
	put(t, root, strings.Repeat("o", 7)) // stored, linked nowhere
	r, err := Measure(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []Namespace{{"bob", 1, 2, 1100}, {"alice", 2, 2, 110}}
	if len(r.Namespaces) != 2 || r.Namespaces[0] != want[0] || r.Namespaces[1] != want[1] {
		t.Errorf("namespaces %+v, want %+v", r.Namespaces, want)
	}
	if r.Blobs != 4 || r.Bytes != 1117 {
		t.Errorf("total %d blobs %d bytes", r.Blobs, r.Bytes)
	}
	var out bytes.Buffer
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "bob ") || !strings.HasPrefix(lines[3], "total ") || !strings.Contains(lines[3], "1117") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestMeasureEmpty(t *testing.T) {
	r, err := Measure(t.TempDir())
	if err != nil || len(r.Namespaces) != 0 || r.Bytes != 0 {
		t.Errorf("%+v %v", r, err)
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1.0K", 1536: "1.5K", 3 << 20: "3.0M", 5 << 30: "5.0G"} {
		if got := Human(n); got != want {
			t.Errorf("Human(%d) = %s, want %s", n, got, want)
		}
	}
}
