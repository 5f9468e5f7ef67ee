package referrers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxPageEntries is the most referrers one listing page holds, and its
// size when the client gives no n: the same bound as distribution's tag
// list pages.
const MaxPageEntries = 1000

// maxPageBytes bounds the descriptors of one page: clients read a
// referrers index like a manifest and refuse one over 4 MiB (oras does),
// so a page ends before it would grow past that, whatever n says. The
// rest of the index (its brackets and media type) fits in the margin.
const maxPageBytes = maxManifestBytes - 4<<10

// Query selects one page of a subject's referrers.
type Query struct {
	// ArtifactType keeps only the referrers of that artifact type; empty
	// keeps all.
	ArtifactType string
	// After is the last referrer of the previous page; the page starts
	// after it. Empty starts at the beginning.
	After digest.Digest
	// Limit is the most entries of the page, 1 to MaxPageEntries.
	Limit int
}

// Page is one page of a listing, in digest order.
type Page struct {
	Manifests []ocispec.Descriptor
	// More is true when referrers follow the page; the next page starts
	// after its last entry.
	More bool
}

// List returns a page of the referrers of subject in repo whose manifests
// are still in repo. It reads the subject's directory, and the records and
// the existence of the manifests of one page, through directory handles
// opened once per listing.
func (s *Store) List(repo string, subject digest.Digest, q Query, logger *slog.Logger) (Page, error) {
	page := Page{Manifests: []ocispec.Descriptor{}}
	dirs, err := s.openListing(repo, subject)
	if errors.Is(err, fs.ErrNotExist) {
		return page, nil // no records, or no such repository
	}
	if err != nil {
		return Page{}, fmt.Errorf("referrers: %w", err)
	}
	defer dirs.close()
	names, err := digestNames(dirs.records, ".")
	if err != nil {
		return Page{}, err
	}
	limit := min(max(q.Limit, 1), MaxPageEntries)
	size := 0
	for _, n := range names {
		if q.After != "" && n <= q.After.Encoded() {
			continue
		}
		if !dirs.inRepository(n) {
			continue // a record that outlived its manifest
		}
		m := digest.NewDigestFromEncoded(digest.SHA256, n)
		d, encoded, ok := s.readRecord(dirs.records, repo, subject, m, logger)
		if !ok || (q.ArtifactType != "" && d.ArtifactType != q.ArtifactType) {
			continue
		}
		if len(page.Manifests) == limit || (len(page.Manifests) > 0 && size+encoded > maxPageBytes) {
			page.More = true
			break
		}
		page.Manifests = append(page.Manifests, d)
		size += encoded + 1
	}
	return page, nil
}

// listing holds the directories one listing reads, so that each entry
// costs two short lookups: its revision link and its record.
type listing struct {
	records   *os.Root // the subject's records
	revisions *os.Root // the repository's _manifests/revisions/sha256
}

func (s *Store) openListing(repo string, subject digest.Digest) (*listing, error) {
	var l listing
	var err error
	if l.records, err = s.root.OpenRoot(subjectDir(repo, subject)); err != nil {
		return nil, err
	}
	if l.revisions, err = s.root.OpenRoot(path.Join(repoDir(repo), "_manifests/revisions", digest.SHA256.String())); err != nil {
		l.close()
		return nil, err
	}
	return &l, nil
}

func (l *listing) close() {
	for _, r := range []*os.Root{l.records, l.revisions} {
		if r != nil {
			r.Close()
		}
	}
}

// inRepository reports whether the manifest of sha256 hex n is in the
// repository: its revision link is there. Distribution removes that link
// when the manifest is deleted, and the garbage collection removes it
// before the manifest's bytes, so the link alone answers.
func (l *listing) inRepository(n string) bool {
	_, err := l.revisions.Stat(n + "/link")
	return err == nil
}

// readRecord returns the descriptor of referrer m and its encoded size. A
// record that cannot be read as the descriptor of m (a bug, or a damaged
// disk) is replaced by one made from the manifest itself.
func (s *Store) readRecord(records *os.Root, repo string, subject, m digest.Digest, logger *slog.Logger) (ocispec.Descriptor, int, bool) {
	var d ocispec.Descriptor
	b, err := readBounded(records, m.Encoded())
	if err == nil {
		err = json.Unmarshal(b, &d)
	}
	if err == nil && d.Digest == m {
		return d, len(b), true
	}
	if errors.Is(err, fs.ErrNotExist) {
		return d, 0, false // removed since the directory was read
	}
	logger.Warn("referrer record unreadable, describing the manifest instead", "repository", repo, "subject", subject, "referrer", m, "err", err)
	payload, err := s.manifest(m)
	if err != nil {
		return d, 0, false
	}
	ref, err := Describe(m, payload)
	if err != nil || ref.Subject != subject {
		return d, 0, false
	}
	b, err = json.Marshal(ref.Descriptor)
	if err != nil {
		return d, 0, false
	}
	return ref.Descriptor, len(b), true
}

// readBounded reads a record of at most maxRecordBytes.
func readBounded(root *os.Root, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRecordBytes {
		return nil, errors.New("record too large")
	}
	return b, nil
}
