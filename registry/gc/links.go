package gc

import (
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// Links is what one repository links to: its manifests (revisions) and the
// blobs linked into it (layers and configs).
type Links struct {
	Manifests []string
	Blobs     []string
}

// ReadLinks lists the links of every repository under rootDir, by
// repository name, without taking the lock: a concurrent push or delete
// makes it a little out of date, never wrong in what it read.
func ReadLinks(rootDir string) (map[string]Links, error) {
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	defer root.Close()
	c := &collector{root: root, fsys: root.FS(), repos: map[string]*repository{}, young: map[string]bool{}}
	if err := c.walkRepositories(); err != nil {
		return nil, err
	}
	out := make(map[string]Links, len(c.repos))
	for name, r := range c.repos {
		var l Links
		for d := range r.revisions {
			l.Manifests = append(l.Manifests, d)
		}
		for d := range r.layers {
			l.Blobs = append(l.Blobs, d)
		}
		slices.Sort(l.Manifests)
		slices.Sort(l.Blobs)
		out[name] = l
	}
	return out, nil
}

// BlobSizes returns the size of every stored blob by digest.
func BlobSizes(rootDir string) (map[string]int64, error) {
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	defer root.Close()
	sizes := map[string]int64{}
	err = forEachBlob(root.FS(), func(d, dir string) error {
		if fi, err := fs.Stat(root.FS(), dir+"/data"); err == nil {
			sizes[d] = fi.Size()
		}
		return nil
	})
	return sizes, err
}

// forEachBlob calls fn with the digest and directory of every blob
// directory under blobs/ALG/XX/.
func forEachBlob(fsys fs.FS, fn func(d, dir string) error) error {
	base := v2 + "/blobs"
	algs, err := fs.ReadDir(fsys, base)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("gc: reading blobs: %w", err)
	}
	for _, alg := range algs {
		prefixes, err := fs.ReadDir(fsys, base+"/"+alg.Name())
		if err != nil {
			return fmt.Errorf("gc: reading blobs: %w", err)
		}
		for _, prefix := range prefixes {
			dir := base + "/" + alg.Name() + "/" + prefix.Name()
			entries, err := fs.ReadDir(fsys, dir)
			if err != nil {
				return fmt.Errorf("gc: reading blobs: %w", err)
			}
			for _, e := range entries {
				d := alg.Name() + ":" + e.Name()
				if !digestRE.MatchString(d) {
					continue
				}
				if err := fn(d, dir+"/"+e.Name()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
