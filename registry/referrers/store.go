// Package referrers owns the OCI 1.1 referrers API, which distribution
// v3.1.2 lacks: the records of which manifest names which subject, the
// listing GET /v2/<name>/referrers/<digest>, the OCI-Subject answer to a
// manifest PUT, and the rebuild of the records from the manifests.
//
// A record is one small file per referrer, on the storage root next to the
// repository's own files, so that it moves with the storage filesystem:
//
//	docker/registry/v2/repositories/<name>/_referrers/sha256/<subject hex>/<referrer hex>
//
// It holds the referrer's descriptor (media type, digest, size, artifact
// type, annotations) as JSON. A listing reads one directory, that
// subject's, so its cost follows the subject's referrers, not the
// repository's size. Distribution's catalog skips directories whose name
// starts with "_", and no repository name component can.
//
// Crash safety: a record is written (temporary file, fsync, rename, fsync
// of the directory) after distribution stored the manifest and before the
// client is told 201, so a push answered 201 is never missing from a
// listing. A record may outlive its manifest (kill -9 between a delete and
// the record's removal, or a garbage collection): every listing checks
// that each referrer's manifest is still in the repository and skips the
// ones that are not. Rebuild (stx-registry referrers-rebuild) writes the
// records again from the manifests and removes the stale ones.
//
// Only sha256 is supported, as everywhere in distribution's storage: a
// subject named by another algorithm is neither recorded nor listed.
package referrers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifestBytes bounds a manifest read from storage: distribution
// refuses to store a manifest larger than 4 MiB.
const maxManifestBytes = 4 << 20

// maxRecordBytes bounds a record read: a descriptor taken from a manifest
// is smaller than the manifest.
const maxRecordBytes = maxManifestBytes

// v2 is where distribution's filesystem driver keeps everything, relative
// to root_directory.
const v2 = "docker/registry/v2"

// recordsDir is the directory of a repository holding its records, beside
// distribution's _manifests, _layers and _uploads.
const recordsDir = "_referrers"

// Store is the referrer records of one storage root. It is safe for
// concurrent use, also by several processes (the daemon, the rebuild and
// the garbage collection): every change is one rename or one unlink.
type Store struct {
	root *os.Root
}

// Open opens the records of the storage root at dir.
func Open(dir string) (*Store, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("referrers: %w", err)
	}
	return &Store{root: root}, nil
}

// Close releases the storage root.
func (s *Store) Close() error { return s.root.Close() }

// supported reports whether d is a digest the storage can hold: a valid
// sha256 digest.
func supported(d digest.Digest) bool {
	return d.Validate() == nil && d.Algorithm() == digest.SHA256
}

func repoDir(repo string) string { return path.Join(v2, "repositories", repo) }

func subjectDir(repo string, subject digest.Digest) string {
	return path.Join(repoDir(repo), recordsDir, subject.Algorithm().String(), subject.Encoded())
}

func recordPath(repo string, subject, referrer digest.Digest) string {
	return path.Join(subjectDir(repo, subject), referrer.Encoded())
}

// revisionLink is distribution's link that puts manifest m in repo.
func revisionLink(repo string, m digest.Digest) string {
	return path.Join(repoDir(repo), "_manifests/revisions", m.Algorithm().String(), m.Encoded(), "link")
}

// blobData is distribution's copy of blob b's bytes.
func blobData(b digest.Digest) string {
	e := b.Encoded()
	return path.Join(v2, "blobs", b.Algorithm().String(), e[:2], e, "data")
}

// inRepository reports whether manifest m is in repo as distribution sees
// it: the repository links it and its bytes are there.
func (s *Store) inRepository(repo string, m digest.Digest) bool {
	if _, err := s.root.Stat(revisionLink(repo, m)); err != nil {
		return false
	}
	_, err := s.root.Stat(blobData(m))
	return err == nil
}

// Referrer is what one manifest says about itself: its descriptor, and
// the subject it names (empty when it names none this registry can list).
type Referrer struct {
	Descriptor ocispec.Descriptor
	Subject    digest.Digest
}

// manifestFields are the parts of an image manifest or index a referrer
// listing needs.
type manifestFields struct {
	MediaType    string `json:"mediaType"`
	ArtifactType string `json:"artifactType"`
	Config       *struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Manifests   json.RawMessage                 `json:"manifests"`
	Subject     *struct{ Digest digest.Digest } `json:"subject"`
	Annotations map[string]string               `json:"annotations"`
}

// Describe parses manifest m (its stored bytes) into its descriptor and
// subject, as the referrers listing shows it: artifactType is the
// manifest's own, else its config's media type; a manifest without a
// mediaType is an index if it has a manifests list, else an image
// manifest, as distribution decides. A subject whose digest is not a valid
// sha256 digest is left out.
func Describe(m digest.Digest, payload []byte) (Referrer, error) {
	var f manifestFields
	if err := json.Unmarshal(payload, &f); err != nil {
		return Referrer{}, fmt.Errorf("referrers: manifest %s: %w", m, err)
	}
	d := ocispec.Descriptor{
		MediaType:    f.MediaType,
		Digest:       m,
		Size:         int64(len(payload)),
		ArtifactType: f.ArtifactType,
		Annotations:  f.Annotations,
	}
	if d.MediaType == "" {
		d.MediaType = ocispec.MediaTypeImageManifest
		if f.Manifests != nil {
			d.MediaType = ocispec.MediaTypeImageIndex
		}
	}
	if d.ArtifactType == "" && f.Config != nil {
		d.ArtifactType = f.Config.MediaType
	}
	r := Referrer{Descriptor: d}
	if f.Subject != nil && supported(f.Subject.Digest) {
		r.Subject = f.Subject.Digest
	}
	return r, nil
}

// manifest reads manifest m's stored bytes and checks them against m.
func (s *Store) manifest(m digest.Digest) ([]byte, error) {
	f, err := s.root.Open(blobData(m))
	if err != nil {
		return nil, fmt.Errorf("referrers: manifest %s: %w", m, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("referrers: manifest %s: %w", m, err)
	}
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("referrers: manifest %s is larger than %d bytes", m, maxManifestBytes)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m.Encoded() {
		return nil, fmt.Errorf("referrers: manifest %s: stored bytes do not match the digest", m)
	}
	return b, nil
}

// Record reads manifest m, just stored in repo, and records it as a
// referrer when it names a subject. It returns the subject, or "" when
// there is none. It returns only once the record is on disk.
func (s *Store) Record(repo string, m digest.Digest) (digest.Digest, error) {
	if !supported(m) {
		return "", fmt.Errorf("referrers: manifest digest %q is not a sha256 digest", m)
	}
	payload, err := s.manifest(m)
	if err != nil {
		return "", err
	}
	ref, err := Describe(m, payload)
	if err != nil || ref.Subject == "" {
		return "", err
	}
	return ref.Subject, s.add(repo, ref.Subject, ref.Descriptor)
}

// Unrecord removes manifest m, just deleted from repo, from the referrers
// of the subject it names. The manifest's bytes are still in the blob
// store after a delete; when they are not, the repository's subjects are
// searched for m instead.
func (s *Store) Unrecord(repo string, m digest.Digest) error {
	if !supported(m) {
		return fmt.Errorf("referrers: manifest digest %q is not a sha256 digest", m)
	}
	if payload, err := s.manifest(m); err == nil {
		ref, err := Describe(m, payload)
		if err != nil || ref.Subject == "" {
			return err
		}
		return s.Forget(repo, ref.Subject, m)
	}
	subjects, err := s.Subjects(repo)
	if err != nil {
		return err
	}
	for _, subj := range subjects {
		if _, err := s.root.Stat(recordPath(repo, subj, m)); err == nil {
			if err := s.Forget(repo, subj, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// add writes the record of referrer d under subject in repo: a temporary
// file, fsync, rename over the record, fsync of its directory, and fsync
// of every directory it had to create. The subject's directory may be
// removed by a concurrent Forget between its creation and the write; the
// write is then tried once more.
func (s *Store) add(repo string, subject digest.Digest, d ocispec.Descriptor) error {
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("referrers: %w", err)
	}
	for attempt := 0; ; attempt++ {
		err := s.write(repo, subject, d.Digest, data)
		if err == nil || attempt == 1 || !errors.Is(err, fs.ErrNotExist) {
			if err != nil {
				return fmt.Errorf("referrers: recording %s as a referrer of %s in %s: %w", d.Digest, subject, repo, err)
			}
			return nil
		}
	}
}

func (s *Store) write(repo string, subject, referrer digest.Digest, data []byte) error {
	dir := subjectDir(repo, subject)
	if err := s.mkdirs(repoDir(repo), dir); err != nil {
		return err
	}
	name := recordPath(repo, subject, referrer)
	tmp := path.Join(dir, "."+referrer.Encoded()+".tmp-"+randomSuffix())
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer s.root.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := s.root.Rename(tmp, name); err != nil {
		return err
	}
	return s.syncDir(dir)
}

// mkdirs creates dir and its missing parents below base (which must
// exist), fsyncing the parent of each directory it creates.
func (s *Store) mkdirs(base, dir string) error {
	rel := dir[len(base)+1:]
	cur := base
	for _, part := range strings.Split(rel, "/") {
		next := path.Join(cur, part)
		err := s.root.Mkdir(next, 0o700)
		switch {
		case err == nil:
			if err := s.syncDir(cur); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrExist):
			return err
		}
		cur = next
	}
	return nil
}

// randomSuffix makes a temporary file's name unique among concurrent
// writers of the same record.
func randomSuffix() string { return rand.Text()[:12] }

func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Forget removes the record of referrer under subject in repo, and the
// subject's directory when it is left empty. If the referrer's manifest
// is in the repository after the removal (a PUT of the same manifest ran
// beside a delete), the record is written again, so that a manifest in the
// repository is never left without its record.
func (s *Store) Forget(repo string, subject, referrer digest.Digest) error {
	if !supported(subject) || !supported(referrer) {
		return fmt.Errorf("referrers: %q or %q is not a sha256 digest", subject, referrer)
	}
	err := s.root.Remove(recordPath(repo, subject, referrer))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("referrers: %w", err)
	}
	if err == nil {
		if err := s.syncDir(subjectDir(repo, subject)); err != nil {
			return fmt.Errorf("referrers: %w", err)
		}
	}
	_ = s.root.Remove(subjectDir(repo, subject)) // fails unless empty
	if !s.inRepository(repo, referrer) {
		return nil
	}
	payload, err := s.manifest(referrer)
	if err != nil {
		return err
	}
	ref, err := Describe(referrer, payload)
	if err != nil || ref.Subject != subject {
		return err
	}
	return s.add(repo, subject, ref.Descriptor)
}

// Subjects returns, sorted, every subject that has records in repo (for
// the garbage collection: the records say nothing about whether those
// subjects, or their referrers, still exist).
func (s *Store) Subjects(repo string) ([]digest.Digest, error) {
	names, err := digestNames(s.root, path.Join(repoDir(repo), recordsDir, digest.SHA256.String()))
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, len(names))
	for i, n := range names {
		out[i] = digest.NewDigestFromEncoded(digest.SHA256, n)
	}
	return out, nil
}

// Referrers returns, sorted, the referrers recorded for subject in repo,
// without checking that their manifests still exist (for the garbage
// collection; the listing checks).
func (s *Store) Referrers(repo string, subject digest.Digest) ([]digest.Digest, error) {
	if !supported(subject) {
		return nil, fmt.Errorf("referrers: %q is not a sha256 digest", subject)
	}
	names, err := digestNames(s.root, subjectDir(repo, subject))
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, len(names))
	for i, n := range names {
		out[i] = digest.NewDigestFromEncoded(digest.SHA256, n)
	}
	return out, nil
}

// digestNames returns, sorted, the entries of dir named like a sha256
// digest's hex part; a missing dir has none. Temporary files start with a
// dot and are left out.
func digestNames(root *os.Root, dir string) ([]string, error) {
	f, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("referrers: %w", err)
	}
	defer f.Close()
	all, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("referrers: %w", err)
	}
	names := all[:0]
	for _, n := range all {
		if digest.SHA256.Validate(n) == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}
