// Package mount turns a cross-repository blob mount that the token does not
// allow into a normal upload, so that clients which treat the refusal as
// fatal still push.
package mount

import (
	"log/slog"
	"net/http"
	"strings"
)

// Fallback turns a refused cross-repository blob mount into a normal
// upload.
//
// A client pushing to bob/x a layer it knows from alice/y first tries
// POST /v2/bob/x/blobs/uploads/?mount=DIGEST&from=alice/y. Distribution then
// requires pull on alice/y as well as pull and push on bob/x, and answers 401
// when the token lacks it. buildkit and containerd treat that 401 as fatal
// and fail the whole push instead of uploading the layer. The
// OCI spec allows a registry to ignore the mount and start an upload (202),
// and OpenShift's registry does exactly that, so do we: when the mount
// attempt is refused with 401 or 403, the same request is served again
// without mount and from. Distribution then checks pull and push on bob/x
// only and answers 202 (normal upload) or 401 if the token lacks those too.
//
// alice's blob is never reachable this way: the retry does not name it, and
// the upload it starts must send the whole blob, which bob then already has.
func Fallback(next http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isMountRequest(r) {
			next.ServeHTTP(w, r)
			return
		}
		gw := &gateWriter{w: w, header: make(http.Header)}
		next.ServeHTTP(gw, r)
		if !gw.refused {
			gw.commit(http.StatusOK) // no-op unless the handler never wrote
			return
		}
		logger.Info("cross-repository mount refused, starting a normal upload",
			"path", r.URL.Path, "from", r.URL.Query().Get("from"), "remote", r.RemoteAddr)
		next.ServeHTTP(w, withoutMount(r))
	})
}

// isMountRequest reports a blob mount attempt with an empty body:
// POST /v2/<name>/blobs/uploads/ with both mount and from.
func isMountRequest(r *http.Request) bool {
	if r.Method != http.MethodPost || r.ContentLength != 0 {
		return false
	}
	if !strings.HasPrefix(r.URL.Path, "/v2/") || !strings.HasSuffix(r.URL.Path, "/blobs/uploads/") {
		return false
	}
	q := r.URL.Query()
	return q.Get("mount") != "" && q.Get("from") != ""
}

// withoutMount returns a copy of r with mount and from removed from the
// query, so that distribution starts a plain upload.
func withoutMount(r *http.Request) *http.Request {
	r2 := r.Clone(r.Context())
	q := r2.URL.Query()
	q.Del("mount")
	q.Del("from")
	r2.URL.RawQuery = q.Encode()
	r2.RequestURI = r2.URL.RequestURI()
	r2.Form, r2.PostForm = nil, nil
	r2.Body = http.NoBody
	return r2
}

// gateWriter holds back the response until its status is known. A 401 or
// 403 is swallowed (it is replaced by the retry); any other answer is
// passed through unchanged, so nothing needs buffering.
type gateWriter struct {
	w       http.ResponseWriter
	header  http.Header
	decided bool
	refused bool
}

func (g *gateWriter) Header() http.Header {
	if g.decided && !g.refused {
		return g.w.Header()
	}
	return g.header
}

func (g *gateWriter) WriteHeader(status int) {
	if g.decided {
		return
	}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		g.decided, g.refused = true, true
		return
	}
	g.commit(status)
}

// commit sends the held headers and status to the real writer.
func (g *gateWriter) commit(status int) {
	if g.decided {
		return
	}
	g.decided = true
	dst := g.w.Header()
	for k, v := range g.header {
		dst[k] = v
	}
	g.w.WriteHeader(status)
}

func (g *gateWriter) Write(b []byte) (int, error) {
	if !g.decided {
		g.WriteHeader(http.StatusOK)
	}
	if g.refused {
		return len(b), nil // discarded: the retry answers instead
	}
	return g.w.Write(b)
}
