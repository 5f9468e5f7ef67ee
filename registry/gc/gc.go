// Package gc owns online garbage collection of the registry's storage
// root: Collect marks every manifest and blob still needed and sweeps the
// rest, while the daemon keeps serving; Lock is what makes that safe, and
// CommitSteps is the middleware through which the daemon's pushes take it.
//
// The argument, also in stx-registry(8):
//
//   - A push becomes visible through short commit steps: the final PUT of
//     a blob upload (which moves the data into place and writes the
//     repository's layer link), a blob mount or monolithic POST, and a
//     manifest PUT (which checks that every blob it names exists, then
//     writes the manifest and its tag). Each holds the lock shared.
//   - A collection holds the lock exclusive from the first read of the
//     mark to the last delete of the sweep, so no commit step runs
//     beside it: a manifest PUT lands either before the mark (and its
//     blobs are marked) or after the sweep (and distribution refuses it
//     with MANIFEST_BLOB_UNKNOWN if a blob it names was swept; the client
//     uploads the blob again on retry). Pulls take no lock and never wait.
//   - Between a blob's commit and the manifest PUT naming it, the blob is
//     referenced by nothing. The grace age covers that window: a blob whose
//     data or any link to it is younger than the grace age is never swept,
//     nor, with DeleteUntagged, a manifest younger than it.
//   - Every delete removes one directory whose absence distribution
//     already handles (a missing blob, a missing link), in an order where
//     an interrupted collection (kill -9, failover) leaves only garbage
//     that the next collection removes: untagged manifests first, then
//     blobs, then the links to swept blobs.
//
// The collection reads distribution's filesystem layout directly (it is
// the only storage driver stx-registry links) through an os.Root confined
// to root_directory.
package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"stx-registry/registry/referrers"
)

// DefaultGrace is the default grace age (gc_grace): longer than any push
// takes between a blob's upload and the manifest that names it.
const DefaultGrace = time.Hour

// maxManifestBytes bounds a manifest read during the mark: distribution
// refuses manifests larger than 4 MiB.
const maxManifestBytes = 4 << 20

// v2 is where distribution's filesystem driver keeps everything, relative
// to root_directory.
const v2 = "docker/registry/v2"

// Options say what a collection may remove.
type Options struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// DeleteUntagged also removes manifests that no tag reaches (directly
	// or through an index). Off by default: Kubernetes pulls by digest.
	DeleteUntagged bool
	// Grace is the age below which nothing is removed.
	Grace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Result is what a collection removed (or, in a dry run, would remove).
type Result struct {
	Blobs      int           // blobs removed (layers, configs and manifests' own blobs)
	Manifests  int           // untagged manifests removed (DeleteUntagged)
	LayerLinks int           // repositories' links to removed blobs
	Bytes      int64         // bytes of the removed blobs' data
	Kept       int           // blobs still referenced or younger than the grace age
	Young      int           // of Kept, the unreferenced ones younger than the grace age
	Duration   time.Duration // from taking the lock to releasing it
	Waited     time.Duration // waiting for the lock (commit steps in flight)
}

// digestRE is the digest of a stored blob, as a path: algorithm and hex.
var digestRE = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$`)

// repository is what the walk found in one repository.
type repository struct {
	revisions map[string]time.Time // manifest digest → revision link mtime
	tags      map[string]string    // tag → manifest digest (current link)
	tagIndex  map[string][]string  // manifest digest → tags whose index names it
	layers    map[string]time.Time // blob digest → layer link mtime
	live      map[string]bool      // manifests marked in this repository
	subjects  map[string]string    // unmarked manifest digest → its subject
}

// collector is one collection's state.
type collector struct {
	root  *os.Root
	refs  *referrers.Store // the referrers API's records on the same root
	fsys  fs.FS
	opts  Options
	now   time.Time
	repos map[string]*repository
	// marked holds every blob digest some live manifest needs.
	marked map[string]bool
	// young holds digests named by a link younger than the grace age.
	young map[string]bool
}

// Collect runs one collection of the storage root at rootDir, holding lock
// exclusive throughout (see the package doc). ctx cancels only the wait for
// the lock.
func Collect(ctx context.Context, rootDir string, lock *Lock, opts Options) (Result, error) {
	var res Result
	start := time.Now()
	release, err := lock.Exclusive(ctx)
	if err != nil {
		return res, err
	}
	defer release()
	locked := time.Now()
	res.Waited = locked.Sub(start)

	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	defer root.Close()
	refs, err := referrers.Open(rootDir)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	defer refs.Close()
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	c := &collector{root: root, refs: refs, fsys: root.FS(), opts: opts, now: now(),
		repos: map[string]*repository{}, marked: map[string]bool{}, young: map[string]bool{}}
	if err := c.walkRepositories(); err != nil {
		return res, err
	}
	c.mark()
	if err := c.sweepManifests(&res); err != nil {
		return res, err
	}
	swept, stored, err := c.sweepBlobs(&res)
	if err != nil {
		return res, err
	}
	if err := c.sweepLayerLinks(swept, stored, &res); err != nil {
		return res, err
	}
	res.Duration = time.Since(locked)
	if !opts.DryRun {
		if err := addStatus(rootDir, res, c.now.Unix()); err != nil {
			return res, err
		}
	}
	return res, nil
}

// old reports whether t is older than the grace age.
func (c *collector) old(t time.Time) bool { return c.now.Sub(t) >= c.opts.Grace }

// walkRepositories reads every repository's links.
func (c *collector) walkRepositories() error {
	base := v2 + "/repositories"
	err := fs.WalkDir(c.fsys, base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // nothing pushed yet, or removed under us
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if d.Name() == "_uploads" {
			return fs.SkipDir // upload sessions: distribution purges them
		}
		// Each link sits alone in its directory: read it without listing
		// the directory, which is most of the walk's cost.
		if rel := strings.TrimPrefix(p, base+"/"); isLinkDir(rel) {
			c.addLink(rel + "/link")
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: reading repositories: %w", err)
	}
	return nil
}

// splitLink splits rel (relative to repositories/) at the first
// "/_manifests/" or "/_layers/" into the repository name, that marker and
// the path elements after it. Repository path components cannot start
// with "_", so the marker is unambiguous.
func splitLink(rel string) (repo, kind string, parts []string) {
	for _, k := range []string{"/_manifests/", "/_layers/"} {
		if i := strings.Index(rel, k); i > 0 {
			return rel[:i], k, strings.Split(rel[i+len(k):], "/")
		}
	}
	return "", "", nil
}

// isLinkDir reports whether rel is a directory holding one link file:
// _layers/ALG/HEX, _manifests/revisions/ALG/HEX, _manifests/tags/TAG/current
// or _manifests/tags/TAG/index/ALG/HEX.
func isLinkDir(rel string) bool {
	_, kind, parts := splitLink(rel)
	switch {
	case kind == "/_layers/":
		return len(parts) == 2
	case len(parts) == 3 && parts[0] == "revisions":
		return true
	case len(parts) == 3 && parts[0] == "tags" && parts[2] == "current":
		return true
	case len(parts) == 5 && parts[0] == "tags" && parts[2] == "index":
		return true
	}
	return false
}

// addLink records the link file at rel (relative to repositories/). A
// link removed under the walk (a delete, which needs no lock) is skipped.
func (c *collector) addLink(rel string) {
	repoName, kind, parts := splitLink(rel)
	if repoName == "" {
		return
	}
	r := c.repo(repoName)
	file := v2 + "/repositories/" + rel
	pathDigest := func(alg, hex string) (string, bool) {
		d := alg + ":" + hex
		return d, digestRE.MatchString(d)
	}
	mtime := func() (time.Time, bool) {
		fi, err := fs.Stat(c.fsys, file)
		if err != nil {
			return time.Time{}, false
		}
		return fi.ModTime(), true
	}
	switch {
	case kind == "/_layers/" && len(parts) == 3:
		if d, ok := pathDigest(parts[0], parts[1]); ok {
			if t, ok := mtime(); ok {
				r.layers[d] = t
				c.noteLink(d, t)
			}
		}
	case len(parts) == 4 && parts[0] == "revisions":
		if d, ok := pathDigest(parts[1], parts[2]); ok {
			if t, ok := mtime(); ok {
				r.revisions[d] = t
				c.noteLink(d, t)
			}
		}
	case len(parts) == 4 && parts[0] == "tags" && parts[2] == "current":
		if b, err := fs.ReadFile(c.fsys, file); err == nil {
			if d := strings.TrimSpace(string(b)); digestRE.MatchString(d) {
				r.tags[parts[1]] = d
			}
		}
	case len(parts) == 6 && parts[0] == "tags" && parts[2] == "index":
		if d, ok := pathDigest(parts[3], parts[4]); ok {
			r.tagIndex[d] = append(r.tagIndex[d], parts[1])
		}
	}
}

// noteLink remembers a digest named by a link younger than the grace age.
func (c *collector) noteLink(d string, mtime time.Time) {
	if !c.old(mtime) {
		c.young[d] = true
	}
}

func (c *collector) repo(name string) *repository {
	r := c.repos[name]
	if r == nil {
		r = &repository{revisions: map[string]time.Time{}, tags: map[string]string{},
			tagIndex: map[string][]string{}, layers: map[string]time.Time{},
			live: map[string]bool{}, subjects: map[string]string{}}
		c.repos[name] = r
	}
	return r
}

// mark marks, in every repository, the manifests that must stay and every
// blob they need: tagged manifests, every manifest unless DeleteUntagged,
// manifests younger than the grace age, and what an index reaches. A
// referrer (a manifest whose subject is live) stays with its subject.
func (c *collector) mark() {
	for _, r := range c.repos {
		for _, d := range r.tags {
			c.markManifest(r, d)
		}
		for d, mtime := range r.revisions {
			if !c.opts.DeleteUntagged || !c.old(mtime) {
				c.markManifest(r, d)
			}
		}
		c.markReferrers(r)
	}
}

// markReferrers is the hook for the Referrers API: distribution v3.1.2
// has none, but an image pushed with a subject (a signature, an SBOM) is
// kept as long as its subject is.
func (c *collector) markReferrers(r *repository) {
	for d := range r.revisions {
		if r.live[d] {
			continue
		}
		if refs, err := c.readManifest(d); err == nil && refs.Subject != nil {
			r.subjects[d] = refs.Subject.Digest
		}
	}
	for changed := true; changed; {
		changed = false
		for d, s := range r.subjects {
			if !r.live[d] && r.live[s] {
				c.markManifest(r, d)
				changed = true
			}
		}
	}
}

// manifestRefs is every field of an OCI or Docker manifest or index that
// names another blob or manifest.
type manifestRefs struct {
	Config    *struct{ Digest string }  `json:"config"`
	Layers    []struct{ Digest string } `json:"layers"`
	Manifests []struct{ Digest string } `json:"manifests"`
	Blobs     []struct{ Digest string } `json:"blobs"`
	Subject   *struct{ Digest string }  `json:"subject"`
}

// markManifest marks manifest d of r, its own blob and everything it
// names; manifests an index names in the same repository are marked
// recursively.
func (c *collector) markManifest(r *repository, d string) {
	if r.live[d] {
		return
	}
	r.live[d] = true
	c.marked[d] = true
	refs, err := c.readManifest(d)
	if err != nil {
		return // a missing or unreadable manifest blob keeps nothing more
	}
	var named []string
	if refs.Config != nil {
		named = append(named, refs.Config.Digest)
	}
	for _, l := range [][]struct{ Digest string }{refs.Layers, refs.Manifests, refs.Blobs} {
		for _, x := range l {
			named = append(named, x.Digest)
		}
	}
	for _, n := range named {
		if !digestRE.MatchString(n) {
			continue
		}
		c.marked[n] = true
		if _, isManifest := r.revisions[n]; isManifest {
			c.markManifest(r, n)
		}
	}
}

// readManifest reads and parses the blob of manifest d.
func (c *collector) readManifest(d string) (*manifestRefs, error) {
	f, err := c.fsys.Open(blobDir(d) + "/data")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var refs manifestRefs
	dec := json.NewDecoder(&limitedReader{r: f, n: maxManifestBytes})
	if err := dec.Decode(&refs); err != nil {
		return nil, err
	}
	return &refs, nil
}

// blobDir is where distribution keeps blob d: blobs/ALG/XX/HEX.
func blobDir(d string) string {
	alg, hex, _ := strings.Cut(d, ":")
	return path.Join(v2, "blobs", alg, hex[:2], hex)
}

// sweepManifests removes, with DeleteUntagged, the manifests the mark left
// unmarked and older than the grace age: the revision link, the tag
// history entries naming it and, for a referrer, its record in the
// referrers API. Their blobs go in sweepBlobs.
func (c *collector) sweepManifests(res *Result) error {
	if !c.opts.DeleteUntagged {
		return nil
	}
	for name, r := range c.repos {
		for d, mtime := range r.revisions {
			if r.live[d] || !c.old(mtime) {
				continue
			}
			res.Manifests++
			if c.opts.DryRun {
				continue
			}
			alg, hex, _ := strings.Cut(d, ":")
			dirs := []string{path.Join(v2, "repositories", name, "_manifests/revisions", alg, hex)}
			for _, tag := range r.tagIndex[d] {
				dirs = append(dirs, path.Join(v2, "repositories", name, "_manifests/tags", tag, "index", alg, hex))
			}
			for _, dir := range dirs {
				if err := c.root.RemoveAll(dir); err != nil {
					return fmt.Errorf("gc: removing manifest %s of %s: %w", d, name, err)
				}
			}
			if s, ok := r.subjects[d]; ok {
				// After the revision link: a record left by a cut collection
				// names a manifest that is gone, which listings skip.
				subject, err1 := digest.Parse(s)
				referrer, err2 := digest.Parse(d)
				if err1 == nil && err2 == nil {
					if err := c.refs.Forget(name, subject, referrer); err != nil {
						return fmt.Errorf("gc: removing the referrer record of %s in %s: %w", d, name, err)
					}
				}
			}
		}
	}
	return nil
}

// sweepBlobs removes every blob that is unmarked, older than the grace age
// and named by no link younger than it, and returns their digests and
// those of every blob stored. A blob directory without data (left by an
// interrupted removal) goes too.
func (c *collector) sweepBlobs(res *Result) (swept, stored map[string]bool, err error) {
	swept, stored = map[string]bool{}, map[string]bool{}
	err = forEachBlob(c.fsys, func(d, dir string) error {
		stored[d] = true
		if c.marked[d] || c.young[d] {
			res.Kept++
			if !c.marked[d] {
				res.Young++
			}
			return nil
		}
		var size int64
		if fi, err := fs.Stat(c.fsys, dir+"/data"); err == nil {
			if !c.old(fi.ModTime()) {
				res.Kept++
				res.Young++
				return nil
			}
			size = fi.Size()
		}
		res.Blobs++
		res.Bytes += size
		swept[d] = true
		if c.opts.DryRun {
			return nil
		}
		if err := c.root.RemoveAll(dir); err != nil {
			return fmt.Errorf("gc: removing blob %s: %w", d, err)
		}
		return nil
	})
	return swept, stored, err
}

// sweepLayerLinks removes the repositories' links to swept blobs, so that
// a pushing client sees the blob missing and uploads it again, and old
// links to blobs that are not stored at all (left by an interrupted
// collection or another tool).
func (c *collector) sweepLayerLinks(swept, stored map[string]bool, res *Result) error {
	names := make([]string, 0, len(c.repos))
	for name := range c.repos {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for d, mtime := range c.repos[name].layers {
			dangling := !stored[d] && !c.marked[d] && c.old(mtime)
			if !swept[d] && !dangling {
				continue
			}
			res.LayerLinks++
			if c.opts.DryRun {
				continue
			}
			alg, hex, _ := strings.Cut(d, ":")
			if err := c.root.RemoveAll(path.Join(v2, "repositories", name, "_layers", alg, hex)); err != nil {
				return fmt.Errorf("gc: removing layer link %s of %s: %w", d, name, err)
			}
		}
	}
	return nil
}
