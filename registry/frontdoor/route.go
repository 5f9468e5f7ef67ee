package frontdoor

import (
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"

	apiroute "stx-registry/registry/route"
)

// routeReferrers names GET /v2/<name>/referrers/<digest>, the OCI 1.1
// referrers listing: distribution has no such route; package referrers,
// behind the front door, serves it.
const routeReferrers = "referrers"

// route is what a request addresses, by distribution's own routes.
type route struct {
	name      string // v2.RouteName*; "" for a request outside /v2/
	repo      string // repository name, for the routes that have one
	reference string // manifest route: a tag or a digest
	redirect  bool   // distribution answers with a redirect (a missing trailing slash)
}

// classify matches r against distribution's routes; a /v2/ path that
// matches none, or names a repository outside the grammar, is refused with
// the registry error that says why. A path outside /v2/ gives a zero route
// and no refusal. A /v2/ path that is not clean gives a redirect route:
// distribution's router answers it with a redirect to the cleaned path.
func classify(r *http.Request) (route, *refusal) {
	p := r.URL.Path
	if p != "/v2" && !strings.HasPrefix(p, "/v2/") {
		return route{}, nil
	}
	if cleanPath(p) != p {
		return route{redirect: true}, nil
	}
	var m mux.RouteMatch
	if v2.Router().Match(r, &m) && m.Route != nil {
		rt := route{
			name:      m.Route.GetName(),
			repo:      m.Vars["name"],
			reference: m.Vars["reference"],
			redirect:  m.Handler != nil, // StrictSlash
		}
		// The route's pattern is the grammar; the length limit distribution
		// checks only after authorization.
		if rt.repo != "" && !validName(rt.repo) {
			return route{}, &refusal{http.StatusBadRequest, "NAME_INVALID", "invalid repository name"}
		}
		return rt, nil
	}
	if rr := apiroute.Parse(p); rr.Class == apiroute.Referrers {
		if !validName(rr.Name) {
			return route{}, &refusal{http.StatusBadRequest, "NAME_INVALID", "invalid repository name"}
		}
		return route{name: routeReferrers, repo: rr.Name}, nil
	}
	return route{}, explainMiss(p)
}

// cleanPath is the path distribution's router redirects to, as gorilla/mux
// computes it: path.Clean, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// The parts of a /v2/ path after the repository name.
var repoSuffixes = []string{"/manifests/", "/blobs/uploads/", "/blobs/", "/tags/", "/referrers/"}

// explainMiss names what is wrong with a /v2/ path no route matched: the
// repository name, then the tag or digest, else the route itself.
func explainMiss(p string) *refusal {
	rest := strings.TrimPrefix(p, "/v2/")
	for _, suffix := range repoSuffixes {
		i := strings.LastIndex(rest, suffix)
		if i < 0 {
			continue
		}
		name, ref := rest[:i], rest[i+len(suffix):]
		if !validName(name) {
			return &refusal{http.StatusBadRequest, "NAME_INVALID", "invalid repository name"}
		}
		switch suffix {
		case "/manifests/":
			if strings.Contains(ref, ":") {
				return &refusal{http.StatusBadRequest, "DIGEST_INVALID", "invalid manifest digest"}
			}
			return &refusal{http.StatusBadRequest, "TAG_INVALID", "invalid tag: 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -"}
		case "/blobs/":
			return &refusal{http.StatusBadRequest, "DIGEST_INVALID", "invalid blob digest"}
		case "/blobs/uploads/":
			return &refusal{http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"}
		}
		break
	}
	return &refusal{http.StatusNotFound, "NOT_FOUND", "no such endpoint in the registry API"}
}

// validName reports whether name is a repository name distribution accepts:
// the grammar and the length limit.
func validName(name string) bool {
	_, err := reference.WithName(name)
	return err == nil
}

// isDigest reports whether a manifest reference is a digest rather than a
// tag.
func isDigest(ref string) bool {
	_, err := digest.Parse(ref)
	return err == nil
}

// tagGrammar is the distribution spec's tag: 1 to 128 of [A-Za-z0-9_.-],
// not starting with . or -.
var tagGrammar = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// queryLast checks the last parameter of a tag or catalog listing:
// distribution turns it into a path under the storage root and answers a
// NUL byte, an overlong name or a path into its own layout with a 500 that
// names the root. It must be what the listing lists (the grammar, at most
// 255 bytes); distribution checks n itself.
func queryLast(q url.Values, grammar *regexp.Regexp, code, what string) *refusal {
	if v := q.Get("last"); v != "" && (len(v) > 255 || !fullMatch(grammar, v)) {
		return &refusal{http.StatusBadRequest, code, "parameter last is not " + what}
	}
	return nil
}

// fullMatch reports whether all of s matches re.
func fullMatch(re *regexp.Regexp, s string) bool {
	loc := re.FindStringIndex(s)
	return loc != nil && loc[0] == 0 && loc[1] == len(s)
}

// queryDigest checks a digest query parameter: a sha256 digest, the only
// algorithm distribution's storage computes. An empty value is fine (the
// parameter is optional, or distribution asks for it).
func queryDigest(q url.Values, key string) *refusal {
	v := q.Get(key)
	if v == "" {
		return nil
	}
	d, err := digest.Parse(v)
	if err != nil {
		return &refusal{http.StatusBadRequest, "DIGEST_INVALID", "digest parameter " + key + " is not a valid digest"}
	}
	if d.Algorithm() != digest.SHA256 {
		return &refusal{http.StatusBadRequest, "DIGEST_INVALID", "digest parameter " + key + ": only sha256 digests are supported"}
	}
	return nil
}
