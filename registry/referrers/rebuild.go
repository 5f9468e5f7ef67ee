package referrers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// staleTempAge is the age after which a record's temporary file is left
// over from a crash rather than being written right now.
const staleTempAge = time.Minute

// RebuildResult counts what Rebuild did.
type RebuildResult struct {
	Repositories int // repositories read
	Manifests    int // manifests read
	Written      int // records written: missing, or not matching their manifest
	Removed      int // records removed: their manifest is gone or names another subject
}

// Rebuild makes the records of every repository match its manifests: it
// reads every manifest, writes the record of each one that names a subject
// if it is missing or differs, and removes the records whose manifest is
// gone or names another subject, and temporary files left by a crash. It
// is safe while the daemon serves: a record written by a push beside it is
// never removed (see Forget). Its cost follows the number of manifests.
func (s *Store) Rebuild(ctx context.Context) (RebuildResult, error) {
	var res RebuildResult
	repos, err := s.repositories()
	if err != nil {
		return res, err
	}
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := s.rebuildRepository(repo, &res); err != nil {
			return res, err
		}
		res.Repositories++
	}
	return res, nil
}

// repositories lists the repositories: the directories under
// repositories/ that hold a _manifests directory.
func (s *Store) repositories() ([]string, error) {
	base := path.Join(v2, "repositories")
	var repos []string
	err := fs.WalkDir(s.root.FS(), base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // nothing pushed yet
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if d.Name() == "_manifests" {
			repos = append(repos, strings.TrimPrefix(path.Dir(p), base+"/"))
		}
		if strings.HasPrefix(d.Name(), "_") {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("referrers: reading repositories: %w", err)
	}
	return repos, nil
}

func (s *Store) rebuildRepository(repo string, res *RebuildResult) error {
	revisions, err := digestNames(s.root, path.Join(repoDir(repo), "_manifests/revisions", digest.SHA256.String()))
	if err != nil {
		return err
	}
	for _, n := range revisions {
		m := digest.NewDigestFromEncoded(digest.SHA256, n)
		if !s.inRepository(repo, m) {
			continue
		}
		payload, err := s.manifest(m)
		if err != nil {
			continue // unreadable: distribution cannot serve it either
		}
		res.Manifests++
		ref, err := Describe(m, payload)
		if err != nil || ref.Subject == "" {
			continue
		}
		want, err := json.Marshal(ref.Descriptor)
		if err != nil {
			return fmt.Errorf("referrers: %w", err)
		}
		if have, err := readBounded(s.root, recordPath(repo, ref.Subject, m)); err == nil && bytes.Equal(have, want) {
			continue
		}
		if err := s.add(repo, ref.Subject, ref.Descriptor); err != nil {
			return err
		}
		res.Written++
	}
	subjects, err := s.Subjects(repo)
	if err != nil {
		return err
	}
	for _, subject := range subjects {
		s.removeStaleTemps(subjectDir(repo, subject))
		referrers, err := s.Referrers(repo, subject)
		if err != nil {
			return err
		}
		for _, m := range referrers {
			if s.names(repo, m, subject) {
				continue
			}
			if err := s.Forget(repo, subject, m); err != nil {
				return err
			}
			res.Removed++
		}
	}
	return nil
}

// names reports whether manifest m is in repo and names subject.
func (s *Store) names(repo string, m, subject digest.Digest) bool {
	if !s.inRepository(repo, m) {
		return false
	}
	payload, err := s.manifest(m)
	if err != nil {
		return false
	}
	ref, err := Describe(m, payload)
	return err == nil && ref.Subject == subject
}

// removeStaleTemps removes the temporary files in dir that a crash left.
func (s *Store) removeStaleTemps(dir string) {
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), ".tmp-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTempAge {
			_ = s.root.Remove(path.Join(dir, e.Name()))
		}
	}
}
