// Package frontdoor is the layer every registry request passes before
// distribution's handlers see it. Distribution is trusted with storage and
// the API's semantics, not with untrusted bytes, so the front door:
//
//   - Reads nothing but the request line and the headers before the token
//     is verified. The request's form is its URL query only (distribution's
//     r.FormValue never parses a body, so no multipart temporary file is
//     ever made), and its body cannot be read until the access controller
//     (package tokenauth) has verified the token and calls Open. Until then
//     serve.Progress renews no deadline: the server's header and read
//     timeouts apply in full. Open lets Progress renew them only for the
//     body of a push (a blob chunk, a manifest) and of a pull (a blob, a
//     manifest).
//   - Refuses, as 4xx registry errors, request shapes distribution would
//     answer with a 5xx or handle carelessly: a body on a request that
//     takes none, a manifest over distribution's 4 MiB limit, a
//     Content-Range that is not the spec's "start-end", a chunk whose
//     Content-Type is not application/octet-stream, a digest parameter that
//     is not a sha256 digest, and a manifest with a bad schemaVersion,
//     descriptor digest or layer URL.
//   - Answers every /v2/ request that matches no route of distribution's
//     (nor the OCI referrers listing, /v2/<name>/referrers/<digest>, which
//     package referrers serves behind it) with a registry JSON error:
//     NAME_INVALID for a repository name
//     outside the grammar, TAG_INVALID or DIGEST_INVALID for a bad
//     reference, NOT_FOUND otherwise; distribution's own plain-text
//     refusals (405 for a method a route lacks) become JSON too.
//   - Serves a manifest fetched by digest to a client that did not restrict
//     the media types (no Accept header, or one allowing */*) with its
//     stored media type, where distribution would answer 404.
//   - Answers a request whose verified token lacks the access it needs
//     with a DENIED error whose detail says why, as the access controller
//     recorded it (Deny), instead of distribution's bare UNAUTHORIZED.
//   - Turns a 5xx caused by a request body that did not arrive in full into
//     a 4xx, and logs every other 5xx, the server's own fault, at error
//     level.
package frontdoor

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
)

// manifestTypes are the manifest media types distribution stores: what a
// fetch by digest accepts when the client did not restrict them.
var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// contentRange is the Content-Range of a chunk upload in the distribution
// spec: "start-end", inclusive byte offsets. 18 digits keep both within
// int64, which distribution parses them into.
var contentRange = regexp.MustCompile(`^[0-9]{1,18}-[0-9]{1,18}$`)

// Handler wraps next, distribution's handler, with the front door. logger
// receives the refused body reads (a bug if ever seen) and the 5xx
// answers.
func Handler(next http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, f := classify(r)
		if f != nil {
			refuse(w, r, f)
			return
		}
		g := &gate{renew: renews(r.Method, rt), logger: logger, method: r.Method, path: r.URL.Path}
		// A shallow copy: the server's request stays as it was.
		r = r.WithContext(context.WithValue(r.Context(), gateKey{}, g))
		r.Form = r.URL.Query()
		r.PostForm = url.Values{}
		r.MultipartForm = &multipart.Form{Value: map[string][]string{}, File: map[string][]*multipart.FileHeader{}}
		if r.Body != nil && r.Body != http.NoBody {
			var body io.ReadCloser = &gatedBody{ReadCloser: r.Body, g: g}
			if rt.name == v2.RouteNameManifest && r.Method == http.MethodPut {
				body = &manifestBody{ReadCloser: body}
			}
			r.Body = body
		}
		if !rt.redirect {
			if f := checkShape(r, rt); f != nil {
				refuse(w, r, f)
				return
			}
		}
		if rt.name == v2.RouteNameManifest && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			isDigest(rt.reference) && acceptsAny(r.Header.Values("Accept")) {
			r.Header = r.Header.Clone()
			r.Header.Set("Accept", manifestTypes)
		}
		next.ServeHTTP(&guard{w: w, r: r, gate: g, logger: logger}, r)
	})
}

// refuse answers f. A request with a body is answered with Connection:
// close: the answer goes out at once and the connection is not reused.
// Nothing here reads the body; net/http itself discards at most 256 KiB of
// it (maxPostHandlerReadBytes), within the unrenewed read deadline, before
// closing.
func refuse(w http.ResponseWriter, r *http.Request, f *refusal) {
	if r.ContentLength != 0 && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	f.serve(w)
}

// takesBody reports whether a request may carry a body: a manifest PUT, a
// chunk PATCH or PUT, and a POST that starts an upload with its digest
// (a monolithic upload; distribution ignores that body and starts an
// upload).
func takesBody(r *http.Request, rt route) bool {
	switch rt.name {
	case v2.RouteNameManifest:
		return r.Method == http.MethodPut
	case v2.RouteNameBlobUploadChunk:
		return r.Method == http.MethodPatch || r.Method == http.MethodPut
	case v2.RouteNameBlobUpload:
		return r.Method == http.MethodPost && r.Form.Get("digest") != ""
	}
	return false
}

// renews reports whether Open lets serve.Progress renew the connection's
// deadlines: the body of a push or a pull, which may take minutes.
func renews(method string, rt route) bool {
	switch rt.name {
	case v2.RouteNameManifest:
		return method == http.MethodPut || method == http.MethodGet
	case v2.RouteNameBlobUploadChunk:
		return method == http.MethodPatch || method == http.MethodPut
	case v2.RouteNameBlob:
		return method == http.MethodGet
	}
	return false
}

// checkShape refuses what distribution would answer with a 5xx, or should
// not see at all. It looks at the request line and headers only.
func checkShape(r *http.Request, rt route) *refusal {
	if r.ContentLength != 0 && !takesBody(r, rt) {
		return &refusal{http.StatusBadRequest, "UNSUPPORTED", "this request takes no body"}
	}
	switch rt.name {
	case v2.RouteNameTags:
		return queryLast(r.Form, tagGrammar, "TAG_INVALID", "a tag")
	case v2.RouteNameCatalog:
		return queryLast(r.Form, reference.NameRegexp, "NAME_INVALID", "a repository name")
	case v2.RouteNameManifest:
		if r.Method == http.MethodPut && r.ContentLength > maxManifestBytes {
			return &refusal{http.StatusRequestEntityTooLarge, "MANIFEST_INVALID", "manifest larger than 4 MiB"}
		}
	case v2.RouteNameBlobUpload:
		if r.Method == http.MethodPost {
			return queryDigest(r.Form, "digest")
		}
	case v2.RouteNameBlobUploadChunk:
		if r.Method != http.MethodPatch && r.Method != http.MethodPut {
			return nil
		}
		if cr := r.Header.Get("Content-Range"); cr != "" && !contentRange.MatchString(cr) {
			return &refusal{http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", `Content-Range must be "start-end", in bytes`}
		}
		if ct := r.Header.Get("Content-Type"); r.Method == http.MethodPatch && ct != "" && ct != "application/octet-stream" {
			return &refusal{http.StatusUnsupportedMediaType, "BLOB_UPLOAD_INVALID", "the Content-Type of a chunk must be application/octet-stream"}
		}
		if r.Method == http.MethodPut {
			return queryDigest(r.Form, "digest")
		}
	}
	return nil
}

// acceptsAny reports whether Accept header values leave the media type
// open: none listed, or */* or application/* among them.
func acceptsAny(values []string) bool {
	listed := false
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, err := mime.ParseMediaType(part)
			if err != nil {
				continue
			}
			if mt == "*/*" || mt == "application/*" {
				return true
			}
			listed = true
		}
	}
	return !listed
}
