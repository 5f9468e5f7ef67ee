package reserve

import (
	"errors"
	"net/http"
	"os"
	"path"
	"regexp"

	"stx-registry/registry/route"
)

// catcher passes a response through, except a 5xx given while the
// storage is below the reserve: that is a write that failed for lack of
// space (ENOSPC), and catcher drops the answer so that Handler can give
// the storage-full error instead.
type catcher struct {
	http.ResponseWriter
	full          func() bool
	caught, wrote bool
}

func (c *catcher) WriteHeader(status int) {
	if c.wrote || c.caught {
		return
	}
	if status >= 500 && c.full() {
		c.caught = true
		return
	}
	c.wrote = true
	c.ResponseWriter.WriteHeader(status)
}

func (c *catcher) Write(p []byte) (int, error) {
	if c.caught {
		return len(p), nil
	}
	c.wrote = true
	return c.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushes).
func (c *catcher) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// uploadID is the shape of distribution's upload session ids (UUIDs).
var uploadID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// repoName is distribution's repository name grammar, checked before the
// name becomes part of a path.
var repoName = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$`)

// removeUpload removes the partial upload rt names from the storage, inside
// root_directory only.
func (g *Guard) removeUpload(rt route.Route) {
	if !uploadID.MatchString(rt.Ref) || !repoName.MatchString(rt.Name) || len(rt.Name) > 255 {
		return
	}
	root, err := os.OpenRoot(g.Root)
	if err != nil {
		g.Logger.Error("partial upload not removed", "err", err)
		return
	}
	defer root.Close()
	dir := path.Join("docker/registry/v2/repositories", rt.Name, "_uploads", rt.Ref)
	if err := root.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		g.Logger.Error("partial upload not removed", "upload", rt.Ref, "err", err)
		return
	}
	g.Logger.Warn("upload failed for lack of space, partial upload removed", "upload", rt.Ref)
}
