package referrers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layout writes distribution's filesystem layout by hand: what a manifest
// PUT leaves (blob data and the repository's revision link) and what a
// DELETE removes (the link).
type layout struct {
	t    *testing.T
	dir  string
	repo string
}

func newLayout(t *testing.T) (*layout, *Store) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &layout{t: t, dir: dir, repo: "team/app"}, s
}

func (l *layout) write(rel string, data []byte) {
	l.t.Helper()
	p := filepath.Join(l.dir, v2, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		l.t.Fatal(err)
	}
}

// put stores manifest m in the repository and returns its digest.
func (l *layout) put(m map[string]any) digest.Digest {
	l.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		l.t.Fatal(err)
	}
	d := digest.FromBytes(b)
	l.write(fmt.Sprintf("blobs/sha256/%s/%s/data", d.Encoded()[:2], d.Encoded()), b)
	l.write(fmt.Sprintf("repositories/%s/_manifests/revisions/sha256/%s/link", l.repo, d.Encoded()), []byte(d))
	return d
}

// unlink deletes manifest d from the repository, as distribution does.
func (l *layout) unlink(d digest.Digest) {
	l.t.Helper()
	if err := os.RemoveAll(filepath.Join(l.dir, v2, "repositories", l.repo, "_manifests/revisions/sha256", d.Encoded())); err != nil {
		l.t.Fatal(err)
	}
}

func referrerOf(subject digest.Digest, artifactType string, n int) map[string]any {
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest.FromString("{}"), "size": 2},
		"layers":        []any{},
		"annotations":   map[string]string{"n": fmt.Sprint(n)},
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	if subject != "" {
		m["subject"] = map[string]any{"mediaType": ocispec.MediaTypeImageManifest, "digest": subject, "size": 1}
	}
	return m
}

func listAll(t *testing.T, s *Store, repo string, subject digest.Digest) []digest.Digest {
	t.Helper()
	p, err := s.List(repo, subject, Query{Limit: MaxPageEntries}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var out []digest.Digest
	for _, d := range p.Manifests {
		out = append(out, d.Digest)
	}
	return out
}

func sorted(ds ...digest.Digest) []digest.Digest {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

func TestDescribe(t *testing.T) {
	subject := digest.FromString("s")
	tests := []struct {
		name, manifest       string
		mediaType, artifType string
		subject              digest.Digest
	}{
		{"own artifactType", `{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"a/b","config":{"mediaType":"c/d"},"subject":{"digest":"` + subject.String() + `"}}`,
			ocispec.MediaTypeImageManifest, "a/b", subject},
		{"config media type", `{"config":{"mediaType":"c/d"},"subject":{"digest":"` + subject.String() + `"}}`,
			ocispec.MediaTypeImageManifest, "c/d", subject},
		{"index without mediaType", `{"manifests":[],"artifactType":"x/y"}`, ocispec.MediaTypeImageIndex, "x/y", ""},
		{"sha512 subject", `{"subject":{"digest":"sha512:` + fmt.Sprintf("%0128d", 0) + `"}}`, ocispec.MediaTypeImageManifest, "", ""},
		{"bad subject", `{"subject":{"digest":"sha256:zz"}}`, ocispec.MediaTypeImageManifest, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := digest.FromString(tt.manifest)
			r, err := Describe(m, []byte(tt.manifest))
			if err != nil {
				t.Fatal(err)
			}
			if r.Descriptor.MediaType != tt.mediaType || r.Descriptor.ArtifactType != tt.artifType || r.Subject != tt.subject ||
				r.Descriptor.Digest != m || r.Descriptor.Size != int64(len(tt.manifest)) {
				t.Errorf("got %+v", r)
			}
		})
	}
	if _, err := Describe(digest.FromString("x"), []byte("{")); err == nil {
		t.Error("Describe accepted broken JSON")
	}
}

// TestRecordAndForget covers the records the daemon keeps, and the API the
// garbage collection uses.
func TestRecordAndForget(t *testing.T) {
	l, s := newLayout(t)
	subject := digest.FromString("subject")
	a := l.put(referrerOf(subject, "x/a", 1))
	b := l.put(referrerOf(subject, "x/b", 2))
	plain := l.put(referrerOf("", "", 3))
	for _, m := range []digest.Digest{a, b, plain} {
		got, err := s.Record(l.repo, m)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]digest.Digest{true: "", false: subject}[m == plain]; got != want {
			t.Errorf("Record(%s) = %q, want %q", m, got, want)
		}
	}
	if got := listAll(t, s, l.repo, subject); !slices.Equal(got, sorted(a, b)) {
		t.Errorf("listing %v", got)
	}
	if got, _ := s.Subjects(l.repo); !slices.Equal(got, []digest.Digest{subject}) {
		t.Errorf("Subjects %v", got)
	}
	if got, _ := s.Referrers(l.repo, subject); !slices.Equal(got, sorted(a, b)) {
		t.Errorf("Referrers %v", got)
	}
	// Another repository sees none of them.
	if got := listAll(t, s, "team/other", subject); len(got) != 0 {
		t.Errorf("other repository lists %v", got)
	}

	// Forget while the manifest is still in the repository (a PUT beside
	// the delete): the record comes back.
	if err := s.Forget(l.repo, subject, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Referrers(l.repo, subject); !slices.Equal(got, sorted(a, b)) {
		t.Errorf("after Forget of a manifest still there: %v", got)
	}
	// Unrecord after the delete removes it.
	l.unlink(a)
	if err := s.Unrecord(l.repo, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Referrers(l.repo, subject); !slices.Equal(got, []digest.Digest{b}) {
		t.Errorf("after Unrecord: %v", got)
	}
	// Unrecord when the blob is gone too (swept): found by its record.
	l.unlink(b)
	if err := os.RemoveAll(filepath.Join(l.dir, v2, "blobs/sha256", b.Encoded()[:2], b.Encoded())); err != nil {
		t.Fatal(err)
	}
	if err := s.Unrecord(l.repo, b); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Subjects(l.repo); len(got) != 0 {
		t.Errorf("subjects left after the last referrer went: %v", got)
	}
}

// TestListSkipsStale lists a subject whose records outlived some
// manifests, with paging and a filter.
func TestListSkipsStale(t *testing.T) {
	l, s := newLayout(t)
	subject := digest.FromString("subject")
	var all []digest.Digest
	for i := range 10 {
		typ := "x/even"
		if i%2 == 1 {
			typ = "x/odd"
		}
		m := l.put(referrerOf(subject, typ, i))
		if _, err := s.Record(l.repo, m); err != nil {
			t.Fatal(err)
		}
		all = append(all, m)
	}
	slices.Sort(all)
	l.unlink(all[0])
	l.unlink(all[5])
	live := slices.Concat(all[1:5], all[6:])
	var paged []digest.Digest
	q := Query{Limit: 3}
	for range 10 {
		p, err := s.List(l.repo, subject, q, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Manifests {
			paged = append(paged, d.Digest)
		}
		if !p.More {
			break
		}
		q.After = p.Manifests[len(p.Manifests)-1].Digest
	}
	if !slices.Equal(paged, live) {
		t.Errorf("paged %v, want %v", paged, live)
	}
	p, _ := s.List(l.repo, subject, Query{Limit: 100, ArtifactType: "x/odd"}, slog.New(slog.DiscardHandler))
	for _, d := range p.Manifests {
		if d.ArtifactType != "x/odd" {
			t.Errorf("filter let %s through", d.ArtifactType)
		}
	}
}

// TestRebuild loses every record and writes them back from the manifests;
// stale records and records naming the wrong subject go.
func TestRebuild(t *testing.T) {
	l, s := newLayout(t)
	subject := digest.FromString("subject")
	a := l.put(referrerOf(subject, "x/a", 1))
	b := l.put(referrerOf(subject, "x/b", 2))
	gone := l.put(referrerOf(subject, "x/c", 3))
	for _, m := range []digest.Digest{a, b, gone} {
		if _, err := s.Record(l.repo, m); err != nil {
			t.Fatal(err)
		}
	}
	l.unlink(gone)
	if err := os.RemoveAll(filepath.Join(l.dir, v2, "repositories", l.repo, recordsDir, "sha256", subject.Encoded(), a.Encoded())); err != nil {
		t.Fatal(err)
	}
	// A record under a subject its manifest does not name.
	wrong := digest.FromString("wrong")
	if err := s.add(l.repo, wrong, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: b, Size: 1}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Rebuild(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Repositories != 1 || res.Manifests != 2 || res.Written != 1 || res.Removed != 2 {
		t.Errorf("rebuild %+v, want 1 repository, 2 manifests, 1 written, 2 removed", res)
	}
	if got, _ := s.Referrers(l.repo, subject); !slices.Equal(got, sorted(a, b)) {
		t.Errorf("after the rebuild: %v", got)
	}
	if got, _ := s.Subjects(l.repo); !slices.Equal(got, []digest.Digest{subject}) {
		t.Errorf("subjects after the rebuild: %v", got)
	}
	// A second rebuild has nothing to do.
	if res, err := s.Rebuild(context.Background()); err != nil || res.Written+res.Removed != 0 {
		t.Errorf("second rebuild %+v, %v", res, err)
	}
}

// TestRecordChecksBytes refuses to record a manifest whose stored bytes do
// not match its digest.
func TestRecordChecksBytes(t *testing.T) {
	l, s := newLayout(t)
	m := l.put(referrerOf(digest.FromString("s"), "x/a", 1))
	l.write(fmt.Sprintf("blobs/sha256/%s/%s/data", m.Encoded()[:2], m.Encoded()), []byte(`{"tampered":true}`))
	if _, err := s.Record(l.repo, m); err == nil {
		t.Error("recorded a manifest whose bytes do not match")
	}
	if _, err := s.Record(l.repo, digest.Digest("sha512:"+fmt.Sprintf("%x", sha256.Sum256(nil))+fmt.Sprintf("%x", sha256.Sum256(nil)))); err == nil {
		t.Error("recorded a sha512 manifest")
	}
}

// BenchmarkList lists one page of 1000 referrers of a subject in a
// repository that also holds 10000 other manifests, 1000 of them
// referrers of other subjects.
func BenchmarkList(b *testing.B) {
	t := &testing.T{}
	dir := b.TempDir()
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := &layout{t: t, dir: dir, repo: "team/app"}
	subject := digest.FromString("subject")
	for i := range 11000 {
		subj := digest.Digest("")
		switch {
		case i < 1000:
			subj = subject
		case i < 2000:
			subj = digest.FromString(fmt.Sprint("other ", i%10))
		}
		m := l.put(referrerOf(subj, "x/sig", i))
		if subj != "" {
			if _, err := s.Record(l.repo, m); err != nil {
				b.Fatal(err)
			}
		}
	}
	logger := slog.New(slog.DiscardHandler)
	b.ResetTimer()
	for b.Loop() {
		p, err := s.List(l.repo, subject, Query{Limit: MaxPageEntries}, logger)
		if err != nil || len(p.Manifests) != 1000 {
			b.Fatalf("%d entries, %v", len(p.Manifests), err)
		}
	}
}
