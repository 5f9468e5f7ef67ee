// Package route classifies a registry API path into the few route classes
// the front door, the referrers API, the garbage-collection lock, the
// storage reserve and the metrics need, and extracts the repository name
// and the last path element: the one place a path is split into them. It checks
// the shape of the path only; distribution still routes and validates it.
package route

import "strings"

// Class is a route class; its string form is the metrics label.
type Class string

// The route classes. Every path falls in exactly one.
const (
	Base     Class = "base"     // /v2/
	Catalog  Class = "catalog"  // /v2/_catalog
	Tags     Class = "tags"     // /v2/NAME/tags/list
	Manifest Class = "manifest" // /v2/NAME/manifests/REF
	Blob     Class = "blob"     // /v2/NAME/blobs/DIGEST
	Upload   Class = "upload"   // /v2/NAME/blobs/uploads/[UUID]
	// Referrers is the OCI 1.1 referrers listing, which distribution does
	// not route: /v2/NAME/referrers/DIGEST.
	Referrers Class = "referrers"
	Other     Class = "other" // anything else, /healthz, /metrics included
)

// Classes lists every class, in a fixed order for the metrics output.
var Classes = [...]Class{Base, Catalog, Tags, Manifest, Blob, Upload, Referrers, Other}

// Route is a classified path.
type Route struct {
	Class Class
	// Name is the repository name (empty for Base, Catalog, Other).
	Name string
	// Ref is the manifest reference, the blob digest, the upload id or
	// the referrers' subject (empty when the path has none).
	Ref string
}

// Parse classifies path.
func Parse(path string) Route {
	switch path {
	case "/v2/", "/v2":
		return Route{Class: Base}
	case "/v2/_catalog":
		return Route{Class: Catalog}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return Route{Class: Other}
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok && name != "" {
		return Route{Class: Tags, Name: name}
	}
	if i := strings.LastIndex(rest, "/blobs/uploads/"); i > 0 {
		ref := rest[i+len("/blobs/uploads/"):]
		if !strings.Contains(ref, "/") {
			return Route{Class: Upload, Name: rest[:i], Ref: ref}
		}
	}
	if name, ok := strings.CutSuffix(rest, "/blobs/uploads"); ok && name != "" {
		return Route{Class: Upload, Name: name}
	}
	for _, kind := range []struct {
		sep   string
		class Class
	}{{"/manifests/", Manifest}, {"/blobs/", Blob}, {"/referrers/", Referrers}} {
		if i := strings.LastIndex(rest, kind.sep); i > 0 {
			ref := rest[i+len(kind.sep):]
			if ref != "" && !strings.Contains(ref, "/") {
				return Route{Class: kind.class, Name: rest[:i], Ref: ref}
			}
		}
	}
	return Route{Class: Other}
}
