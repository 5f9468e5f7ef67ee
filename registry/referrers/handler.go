package referrers

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"stx-registry/registry/route"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxArtifactTypeBytes bounds the artifactType filter: a media type is at
// most 127 characters of type and 127 of subtype (RFC 6838), with room for
// parameters.
const maxArtifactTypeBytes = 255

// Headers of the referrers API (OCI distribution spec 1.1).
const (
	headerSubject        = "OCI-Subject"
	headerFiltersApplied = "OCI-Filters-Applied"
)

// Handler serves GET /v2/<name>/referrers/<digest> itself and passes every
// other request to next, distribution's handler (through the front door,
// if any), watching the answers to manifest PUTs and DELETEs:
//
//   - A manifest PUT that distribution answers 201 is read back from
//     storage; if it names a subject, its record is written (and synced)
//     before the 201 goes out, with OCI-Subject set. If the record cannot
//     be written the client gets a 500 instead and pushes again.
//   - A manifest DELETE by digest that distribution answers 202 removes
//     the record.
//
// The listing needs pull on <name>, checked by access, the same access
// controller distribution's app uses, with the same challenge and error
// when the token lacks it. Distribution never routes the referrers path:
// whatever stands before Handler and refuses unknown routes (the front
// door) must know it.
func Handler(next http.Handler, s *Store, access auth.AccessController, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := route.Parse(r.URL.Path)
		if rt.Class == route.Referrers {
			serveList(w, r, s, access, logger, rt.Name, rt.Ref)
			return
		}
		if rt.Class != route.Manifest {
			next.ServeHTTP(w, r)
			return
		}
		name, ref := rt.Name, rt.Ref
		switch r.Method {
		case http.MethodPut:
			next.ServeHTTP(&statusHook{ResponseWriter: w, r: r, logger: logger, status: http.StatusCreated, hook: func() error {
				return recordPut(w.Header(), s, name)
			}}, r)
		case http.MethodDelete:
			m, err := digest.Parse(ref)
			if err != nil {
				next.ServeHTTP(w, r) // a tag: distribution untags, no manifest goes
				return
			}
			next.ServeHTTP(&statusHook{ResponseWriter: w, r: r, logger: logger, status: http.StatusAccepted, hook: func() error {
				if err := s.Unrecord(name, m); err != nil {
					// The manifest is gone; its stale record is skipped by
					// every listing and removed by referrers-rebuild.
					logger.Warn("referrer record not removed", "repository", name, "manifest", m, "err", err)
				}
				return nil
			}}, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// recordPut records the manifest distribution just stored (its digest is
// in the answer's Docker-Content-Digest) and sets OCI-Subject.
func recordPut(h http.Header, s *Store, name string) error {
	m, err := digest.Parse(h.Get("Docker-Content-Digest"))
	if err != nil {
		return fmt.Errorf("referrers: distribution stored a manifest without a valid digest: %w", err)
	}
	if !supported(m) {
		return nil // not in sha256: distribution refuses such a PUT before this
	}
	subject, err := s.Record(name, m)
	if err != nil {
		return err
	}
	if subject != "" {
		h.Set(headerSubject, subject.String())
	}
	return nil
}

// statusHook runs hook when the handler answers status, before that answer
// goes out. If hook fails the client gets a 500 registry error instead, and
// the handler's body is dropped.
type statusHook struct {
	http.ResponseWriter
	r        *http.Request
	logger   *slog.Logger
	status   int
	hook     func() error
	decided  bool
	replaced bool
}

func (h *statusHook) WriteHeader(status int) {
	if h.decided {
		if !h.replaced {
			h.ResponseWriter.WriteHeader(status) // net/http logs the superfluous call
		}
		return
	}
	h.decided = true
	if status == h.status {
		if err := h.hook(); err != nil {
			h.replaced = true
			hdr := h.Header()
			for _, k := range []string{"Location", "Docker-Content-Digest", headerSubject, "Content-Length"} {
				hdr.Del(k)
			}
			_ = errcode.ServeJSON(h.ResponseWriter, errcode.ErrorCodeUnknown.WithMessage(
				"the manifest was stored but its referrer record was not: push it again"))
			h.logger.Error("manifest stored but its referrer record not written; answered 500",
				"method", h.r.Method, "path", h.r.URL.Path, "err", err)
			return
		}
	}
	h.ResponseWriter.WriteHeader(status)
}

func (h *statusHook) Write(b []byte) (int, error) {
	if !h.decided {
		h.WriteHeader(http.StatusOK)
	}
	if h.replaced {
		return len(b), nil
	}
	return h.ResponseWriter.Write(b)
}

func (h *statusHook) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// serveList answers GET /v2/<name>/referrers/<ref>.
func serveList(w http.ResponseWriter, r *http.Request, s *Store, access auth.AccessController, logger *slog.Logger, name, ref string) {
	h := w.Header()
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		serveError(w, r, errcode.ErrorCodeUnsupported.WithMessage("the referrers API takes GET or HEAD"), http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength != 0 {
		serveError(w, r, errcode.ErrorCodeUnsupported.WithMessage("this request takes no body"), http.StatusBadRequest)
		return
	}
	if _, err := reference.WithName(name); err != nil {
		serveError(w, r, errcode.ErrorCodeNameInvalid.WithDetail(err.Error()), 0)
		return
	}
	if !authorized(w, r, access, logger, name) {
		return
	}
	subject, q, e := parseList(ref, r.URL.Query())
	if e != nil {
		serveError(w, r, e, 0)
		return
	}
	if len(q.ArtifactType) > maxArtifactTypeBytes {
		serveError(w, r, errcode.ErrorCodeUnsupported.WithMessage(
			fmt.Sprintf("artifactType longer than %d bytes", maxArtifactTypeBytes)), http.StatusBadRequest)
		return
	}
	page, err := s.List(name, subject, q, logger)
	if err != nil {
		logger.Error("referrers listing failed", "repository", name, "subject", subject, "err", err)
		serveError(w, r, errcode.ErrorCodeUnknown, 0)
		return
	}
	body, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: page.Manifests,
	})
	if err != nil {
		serveError(w, r, errcode.ErrorCodeUnknown, 0)
		return
	}
	if q.ArtifactType != "" {
		h.Set(headerFiltersApplied, "artifactType")
	}
	if page.More {
		h.Set("Link", nextLink(name, subject, q, page))
	}
	h.Set("Content-Type", ocispec.MediaTypeImageIndex)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// authorized asks access for pull on name, as distribution does for any
// read, and answers the refusal as distribution would: the challenge and
// an UNAUTHORIZED error, or a 400 saying nothing more when the controller
// itself fails.
func authorized(w http.ResponseWriter, r *http.Request, access auth.AccessController, logger *slog.Logger, name string) bool {
	want := auth.Access{Resource: auth.Resource{Type: "repository", Name: name}, Action: "pull"}
	grant, err := access.Authorized(r, want)
	if err == nil && grant != nil {
		return true
	}
	if ch, ok := err.(auth.Challenge); ok {
		ch.SetHeaders(r, w)
		serveError(w, r, errcode.ErrorCodeUnauthorized.WithDetail([]auth.Access{want}), 0)
		return false
	}
	logger.Error("checking authorization of a referrers listing", "repository", name, "err", err)
	serveError(w, r, errcode.ErrorCodeUnknown, http.StatusBadRequest)
	return false
}

// parseList reads the subject digest and the query: n (1 or more; above
// MaxPageEntries it is lowered to it), last (a sha256 digest, from a Link
// header) and artifactType.
func parseList(ref string, v url.Values) (digest.Digest, Query, error) {
	q := Query{Limit: MaxPageEntries, ArtifactType: v.Get("artifactType")}
	subject, err := digest.Parse(ref)
	if err != nil {
		return "", q, errcode.ErrorCodeDigestInvalid.WithMessage("the subject is not a valid digest")
	}
	if subject.Algorithm() != digest.SHA256 {
		return "", q, errcode.ErrorCodeDigestInvalid.WithMessage("only sha256 digests are supported")
	}
	if n := v.Get("n"); n != "" {
		limit, err := strconv.Atoi(n)
		if err != nil || limit < 1 {
			return "", q, errcode.ErrorCodePaginationNumberInvalid.WithDetail(map[string]string{"n": n})
		}
		q.Limit = min(limit, MaxPageEntries)
	}
	if last := v.Get("last"); last != "" {
		d, err := digest.Parse(last)
		if err != nil || d.Algorithm() != digest.SHA256 {
			return "", q, errcode.ErrorCodeDigestInvalid.WithMessage("last is not a sha256 digest")
		}
		q.After = d
	}
	return subject, q, nil
}

// nextLink is the Link header of a page followed by more (RFC 8288, as
// distribution's tag list does): a relative URL of the next page.
func nextLink(name string, subject digest.Digest, q Query, page Page) string {
	v := url.Values{}
	v.Set("n", strconv.Itoa(q.Limit))
	v.Set("last", page.Manifests[len(page.Manifests)-1].Digest.String())
	if q.ArtifactType != "" {
		v.Set("artifactType", q.ArtifactType)
	}
	u := url.URL{Path: "/v2/" + name + "/referrers/" + subject.String(), RawQuery: v.Encode()}
	return fmt.Sprintf("<%s>; rel=\"next\"", u.String())
}

// serveError writes err as distribution's JSON error; status, if not 0,
// replaces the error code's own. A request with a body gets Connection:
// close, since its body is left unread.
func serveError(w http.ResponseWriter, r *http.Request, err error, status int) {
	if r.ContentLength != 0 && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	if status == 0 {
		_ = errcode.ServeJSON(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errcode.Errors{err})
}
