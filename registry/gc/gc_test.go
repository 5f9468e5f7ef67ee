package gc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// store writes distribution's filesystem layout by hand.
type store struct {
	t    *testing.T
	root string
}

func newStore(t *testing.T) *store {
	root := t.TempDir()
	return &store{t: t, root: root}
}

func (s *store) write(rel string, data []byte, age time.Duration) {
	s.t.Helper()
	p := filepath.Join(s.root, v2, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		s.t.Fatal(err)
	}
	old := time.Now().Add(-age)
	if err := os.Chtimes(p, old, old); err != nil {
		s.t.Fatal(err)
	}
}

// blob stores data and returns its digest.
func (s *store) blob(data string, age time.Duration) string {
	sum := sha256.Sum256([]byte(data))
	h := hex.EncodeToString(sum[:])
	s.write("blobs/sha256/"+h[:2]+"/"+h+"/data", []byte(data), age)
	return "sha256:" + h
}

func (s *store) exists(d string) bool {
	_, err := os.Stat(filepath.Join(s.root, blobDir(d), "data"))
	return err == nil
}

func (s *store) layerLink(repo, d string, age time.Duration) {
	s.write("repositories/"+repo+"/_layers/"+strings.Replace(d, ":", "/", 1)+"/link", []byte(d), age)
}

// image stores a config, layers and an OCI manifest in repo (with links),
// tags it if tag is set, and returns the manifest digest.
func (s *store) image(repo, tag string, age time.Duration, layers ...string) string {
	cfg := s.blob(`{"config":"`+repo+tag+`"}`, age)
	m := map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"digest": cfg}}
	var ls []map[string]any
	for _, l := range append([]string{cfg}, layers...) {
		s.layerLink(repo, l, age)
		if l != cfg {
			ls = append(ls, map[string]any{"digest": l})
		}
	}
	m["layers"] = ls
	return s.manifest(repo, tag, age, m)
}

func (s *store) manifest(repo, tag string, age time.Duration, m map[string]any) string {
	b, _ := json.Marshal(m)
	d := s.blob(string(b), age)
	s.write("repositories/"+repo+"/_manifests/revisions/"+strings.Replace(d, ":", "/", 1)+"/link", []byte(d), age)
	if tag != "" {
		s.tag(repo, tag, d, age)
	}
	return d
}

func (s *store) tag(repo, tag, d string, age time.Duration) {
	s.write("repositories/"+repo+"/_manifests/tags/"+tag+"/current/link", []byte(d), age)
	s.write("repositories/"+repo+"/_manifests/tags/"+tag+"/index/"+strings.Replace(d, ":", "/", 1)+"/link", []byte(d), age)
}

// deleteManifest does what distribution does for DELETE of a manifest:
// the revision link and every tag pointing to it go.
func (s *store) deleteManifest(repo, d string) {
	os.RemoveAll(filepath.Join(s.root, v2, "repositories", repo, "_manifests/revisions", strings.Replace(d, ":", "/", 1)))
}

func (s *store) collect(opts Options) Result {
	s.t.Helper()
	lock, err := OpenLock(s.root)
	if err != nil {
		s.t.Fatal(err)
	}
	if opts.Grace == 0 {
		opts.Grace = time.Minute
	}
	res, err := Collect(context.Background(), s.root, lock, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	return res
}

const old = time.Hour

func TestCollect(t *testing.T) {
	s := newStore(t)
	shared := s.blob("shared layer", old)
	only := s.blob("deleted image's own layer", old)
	keep := s.image("team/app", "v1", old, shared)
	gone := s.image("team/app", "v2", old, shared, only)
	untagged := s.image("team/app", "", old, s.blob("untagged layer", old))
	s.deleteManifest("team/app", gone)
	os.RemoveAll(filepath.Join(s.root, v2, "repositories/team/app/_manifests/tags/v2"))
	young := s.blob("pushed, manifest not yet", time.Second)
	s.layerLink("team/other", young, time.Second)
	orphanOld := s.blob("orphan", old)

	dry := s.collect(Options{DryRun: true})
	if !s.exists(only) || !s.exists(orphanOld) {
		t.Fatal("dry run removed blobs")
	}
	res := s.collect(Options{})
	if res != (Result{Blobs: 4, LayerLinks: 2, Bytes: res.Bytes, Kept: res.Kept, Young: 1, Duration: res.Duration, Waited: res.Waited}) || res.Bytes == 0 {
		t.Errorf("result %+v", res)
	}
	if dry.Blobs != res.Blobs || dry.Bytes != res.Bytes {
		t.Errorf("dry run %+v differs from the run %+v", dry, res)
	}
	for _, d := range []string{shared, keep, untagged, young} {
		if !s.exists(d) {
			t.Errorf("blob %s removed", d)
		}
	}
	for _, d := range []string{only, gone, orphanOld} {
		if s.exists(d) {
			t.Errorf("blob %s kept", d)
		}
	}
	if _, err := os.Stat(filepath.Join(s.root, v2, "repositories/team/app/_layers", strings.Replace(only, ":", "/", 1))); err == nil {
		t.Error("layer link to a swept blob kept")
	}

	// Nothing left to collect: a second run removes nothing.
	if again := s.collect(Options{}); again.Blobs != 0 || again.Manifests != 0 || again.LayerLinks != 0 {
		t.Errorf("second run %+v", again)
	}
	st, err := ReadStatus(s.root)
	if err != nil || st.Runs != 2 || st.Bytes != uint64(res.Bytes) {
		t.Errorf("status %+v, %v", st, err)
	}

	// With DeleteUntagged the untagged image goes.
	res = s.collect(Options{DeleteUntagged: true})
	if res.Manifests != 1 || s.exists(untagged) || !s.exists(keep) {
		t.Errorf("delete untagged: %+v", res)
	}
}

func TestCollectIndexAndReferrers(t *testing.T) {
	s := newStore(t)
	a := s.image("p/multi", "", old, s.blob("amd64", old))
	b := s.image("p/multi", "", old, s.blob("arm64", old))
	idx := s.manifest("p/multi", "latest", old, map[string]any{"schemaVersion": 2,
		"manifests": []map[string]any{{"digest": a}, {"digest": b}}})
	sig := s.manifest("p/multi", "", old, map[string]any{"schemaVersion": 2,
		"config": map[string]any{"digest": s.blob("sig config", old)}, "subject": map[string]any{"digest": idx}})
	loose := s.image("p/multi", "", old, s.blob("loose", old))
	young := s.image("p/multi", "", time.Second, s.blob("young", time.Second))

	res := s.collect(Options{DeleteUntagged: true})
	for _, d := range []string{a, b, idx, sig, young} {
		if !s.exists(d) {
			t.Errorf("manifest %s removed", d)
		}
	}
	if s.exists(loose) || res.Manifests != 1 {
		t.Errorf("loose untagged manifest: %+v", res)
	}
}

func TestCollectEmptyRoot(t *testing.T) {
	s := newStore(t)
	if res := s.collect(Options{}); res.Blobs != 0 || res.Kept != 0 {
		t.Errorf("%+v", res)
	}
}

// A collection waits for a commit step in flight, and a commit step waits
// for a collection.
func TestLock(t *testing.T) {
	root := t.TempDir()
	l, err := OpenLock(root)
	if err != nil {
		t.Fatal(err)
	}
	release, err := l.Shared(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := l.Exclusive(ctx); err == nil {
		t.Fatal("exclusive taken beside a shared holder")
	}
	release()
	releaseEx, err := l.Exclusive(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := l.Shared(ctx2); err == nil {
		t.Fatal("shared taken beside a collection")
	}
	releaseEx()
	r, err := l.Shared(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r()
}

// A collection cut short (kill -9, failover) leaves a blob directory
// without its data, a deleted manifest whose blobs are still there, and
// links to removed blobs: the next collection removes them all, and
// removes nothing a live image needs.
func TestCollectAfterInterruption(t *testing.T) {
	s := newStore(t)
	live := s.image("team/app", "v1", old, s.blob("live layer", old))
	half := s.blob("half removed", old)
	if err := os.Remove(filepath.Join(s.root, blobDir(half), "data")); err != nil {
		t.Fatal(err)
	}
	s.layerLink("team/app", half, old)
	dead := s.image("team/app", "", old, s.blob("dead layer", old))
	s.deleteManifest("team/app", dead)
	// A link left after its blob was removed.
	gone := s.blob("removed earlier", old)
	s.layerLink("team/app", gone, old)
	os.RemoveAll(filepath.Join(s.root, blobDir(gone)))

	res := s.collect(Options{})
	if res.Blobs != 4 || res.LayerLinks != 4 {
		t.Errorf("%+v", res)
	}
	if _, err := os.Stat(filepath.Join(s.root, blobDir(half))); !os.IsNotExist(err) {
		t.Errorf("half-removed blob directory kept: %v", err)
	}
	if !s.exists(live) || s.exists(dead) {
		t.Error("wrong manifest removed")
	}
}

// A commit step that never ends (a slow client's final PUT) does not keep
// other pushes out: the collection reopens the gate after gateClosed.
func TestLockSlowCommitStep(t *testing.T) {
	l, err := OpenLock(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l.gateClosed = 50 * time.Millisecond
	slow, err := l.Shared(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	collected := make(chan func())
	go func() {
		release, err := l.Exclusive(context.Background())
		if err != nil {
			t.Error(err)
		}
		collected <- release
	}()
	time.Sleep(20 * time.Millisecond) // the collection closes the gate
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	other, err := l.Shared(ctx)
	if err != nil {
		t.Fatalf("a push stayed held behind a slow one: %v", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("a push waited %s", waited)
	}
	other()
	slow()
	(<-collected)()
}

// BenchmarkCollect measures a collection of a root holding 500 tagged
// images of 3 layers in 50 repositories, with nothing to remove: the time
// the lock is held.
func BenchmarkCollect(b *testing.B) {
	s := &store{t: &testing.T{}, root: b.TempDir()}
	for i := range 500 {
		repo := fmt.Sprintf("ns%d/app%d", i%5, i%50)
		s.image(repo, fmt.Sprintf("v%d", i), old,
			s.blob(fmt.Sprint("a", i), old), s.blob(fmt.Sprint("b", i), old), s.blob(fmt.Sprint("c", i), old))
	}
	lock, err := OpenLock(s.root)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Collect(context.Background(), s.root, lock, Options{Grace: time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
}
