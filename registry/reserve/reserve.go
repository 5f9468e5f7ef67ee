// Package reserve keeps the registry's storage from filling up silently.
// Below a free-space reserve (storage_reserve) it refuses new uploads from
// non-admins before any byte is written, with a JSON registry error saying
// the storage is full (403 DENIED, see Status); admins may push into the
// reserve (platform upgrades). Uploads already open, manifests, mounts,
// deletes, pulls and garbage collection are never refused. If the
// filesystem runs out anyway (ENOSPC in the middle of an upload), the
// client gets the same clear error and the partial upload is removed.
//
// Guard.Handler sits in front of distribution, after the front door: it
// reads nothing of the body, and checks the token itself (only for an
// upload start while the storage is below the reserve).
//
// Who is an admin: the token server grants push on a repository outside
// the user's own namespace ("USER/...") to admins only, so a push whose
// verified token names a subject other than the repository's first path
// component is an admin's. The token is checked with the same access
// controller distribution uses, for the access distribution will require.
package reserve

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"

	"github.com/distribution/distribution/v3/registry/auth"

	"stx-registry/registry/route"
)

// Space is a filesystem's size and free space, in bytes.
type Space struct {
	Total, Free uint64
}

// Statfs returns the space of the filesystem holding path; Free is what an
// unprivileged writer may use (f_bavail).
func Statfs(path string) (Space, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return Space{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return Space{Total: st.Blocks * bs, Free: st.Bavail * bs}, nil
}

// Authorizer verifies a request's token for some access; the registry's
// tokenauth.Controller is one.
type Authorizer interface {
	Authorized(r *http.Request, access ...auth.Access) (*auth.Grant, error)
}

// Guard decides, per request, whether the storage can take it.
type Guard struct {
	Root    string // root_directory
	Reserve Size
	Auth    Authorizer
	Logger  *slog.Logger
	// Statfs is the space probe; nil means Statfs.
	Statfs func(string) (Space, error)
}

// Below reports whether free space is under the reserve, with the space.
func (g *Guard) Below() (bool, Space, error) {
	statfs := g.Statfs
	if statfs == nil {
		statfs = Statfs
	}
	sp, err := statfs(g.Root)
	if err != nil {
		return false, sp, err
	}
	return sp.Free < g.Reserve.For(sp.Total), sp, nil
}

// startsUpload reports whether r opens a new blob upload: a POST to
// blobs/uploads/, except a cross-repository mount, which writes one link.
// Uploads already open may finish, and manifests (a few KB) may be pushed,
// so that an image whose layers were accepted is not left half-pushed.
func startsUpload(r *http.Request, rt route.Route) bool {
	return rt.Class == route.Upload && rt.Ref == "" && r.Method == http.MethodPost && !r.URL.Query().Has("mount")
}

// admin reports whether r carries a valid token granting push on the
// repository name, and whether that grant is an admin's: one to a subject
// other than the namespace owner, which only admins get from the token
// server.
func (g *Guard) admin(r *http.Request, name string) (admin, authenticated bool) {
	res := auth.Resource{Type: "repository", Name: name}
	grant, err := g.Auth.Authorized(r, auth.Access{Resource: res, Action: "pull"}, auth.Access{Resource: res, Action: "push"})
	if err != nil || grant == nil || grant.User.Name == "" {
		return false, false
	}
	ns, _, _ := strings.Cut(name, "/")
	return grant.User.Name != ns, true
}

// Handler refuses, while free space is below the reserve, every new
// upload (see startsUpload) unless it is an admin's, with the error of
// Refuse, before distribution sees it. It also catches a 5xx answer to an
// upload's data or final PUT when the space is gone (ENOSPC): the partial
// upload is removed and the client gets the same error.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := route.Parse(r.URL.Path)
		if (rt.Class == route.Upload && rt.Ref != "" && (r.Method == http.MethodPatch || r.Method == http.MethodPut)) ||
			(rt.Class == route.Manifest && r.Method == http.MethodPut) {
			g.catchENOSPC(w, r, rt, next)
			return
		}
		if !startsUpload(r, rt) {
			next.ServeHTTP(w, r)
			return
		}
		below, sp, err := g.Below()
		if err != nil {
			g.Logger.Error("storage space unknown", "err", err)
		}
		if below {
			admin, authenticated := g.admin(r, rt.Name)
			if !authenticated {
				// Distribution answers with its challenge; the state of
				// the storage is nobody else's business.
				next.ServeHTTP(w, r)
				return
			}
			if !admin {
				g.refuse(w, r, rt, sp)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// catchENOSPC passes an upload's data or final PUT, or a manifest PUT, to
// next; if it fails for lack of space, the client gets the storage-full
// error instead of distribution's (which names a path) and a partial
// upload is removed. Distribution writes a manifest, its revision link
// and its tag each by temporary file and rename, so a manifest PUT cut
// by ENOSPC leaves at most an untagged manifest, which no tag shows.
func (g *Guard) catchENOSPC(w http.ResponseWriter, r *http.Request, rt route.Route, next http.Handler) {
	cw := &catcher{ResponseWriter: w, full: func() bool { below, _, _ := g.Below(); return below }}
	next.ServeHTTP(cw, r)
	if !cw.caught {
		return
	}
	if rt.Class == route.Upload {
		g.removeUpload(rt)
	}
	// A client still sending when the answer comes and the connection
	// closes gets a TCP reset, not the answer: read the rest of the chunk
	// first, up to drainLimit, so that it reads why its push failed.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, drainLimit))
	w.Header().Set("Connection", "close")
	Refuse(w)
}

// drainLimit bounds what is read and discarded of an upload that ran out
// of space before the storage-full answer; past it the client may see the
// connection reset instead.
const drainLimit = 256 << 20

// refuse logs and answers a refused write.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, rt route.Route, sp Space) {
	g.Logger.Warn("upload refused: storage below the reserve", "method", r.Method, "route", string(rt.Class),
		"free_bytes", sp.Free, "reserve_bytes", g.Reserve.For(sp.Total))
	Refuse(w)
}

// Message is the error message of a refused upload; skopeo and podman
// print it after the error code.
const Message = "the registry's storage is full: uploads are refused until an administrator frees space (stx-registry gc)"

// Status is the status of a refusal. 507 Insufficient Storage would say it
// best, but skopeo and podman (containers/image) read the JSON error only
// from a 4xx answer and print a bare "received unexpected HTTP status: 507
// Insufficient Storage" otherwise. 403 with code DENIED makes them print
// "denied: " and Message, and no client retries it.
const Status = http.StatusForbidden

// Refuse writes the storage-full registry error: Status with code DENIED.
func Refuse(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(Status)
	fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":%q}]}`+"\n", Message)
}
