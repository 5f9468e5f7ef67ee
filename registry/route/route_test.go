package route

import "testing"

func TestParse(t *testing.T) {
	for _, c := range []struct {
		path string
		want Route
	}{
		{"/v2/", Route{Class: Base}},
		{"/v2", Route{Class: Base}},
		{"/v2/_catalog", Route{Class: Catalog}},
		{"/v2/a/b/tags/list", Route{Class: Tags, Name: "a/b"}},
		{"/v2/a/b/manifests/v1", Route{Class: Manifest, Name: "a/b", Ref: "v1"}},
		{"/v2/a/manifests/sha256:ab", Route{Class: Manifest, Name: "a", Ref: "sha256:ab"}},
		{"/v2/a/b/blobs/sha256:ab", Route{Class: Blob, Name: "a/b", Ref: "sha256:ab"}},
		{"/v2/a/b/blobs/uploads/", Route{Class: Upload, Name: "a/b"}},
		{"/v2/a/b/blobs/uploads", Route{Class: Upload, Name: "a/b"}},
		{"/v2/a/b/blobs/uploads/0b4b2bd6-0d1b", Route{Class: Upload, Name: "a/b", Ref: "0b4b2bd6-0d1b"}},
		// A repository may be called "blobs" or "manifests".
		{"/v2/blobs/manifests/v1", Route{Class: Manifest, Name: "blobs", Ref: "v1"}},
		{"/v2/x/manifests/blobs/sha256:ab", Route{Class: Blob, Name: "x/manifests", Ref: "sha256:ab"}},
		{"/v2/a/b/referrers/sha256:ab", Route{Class: Referrers, Name: "a/b", Ref: "sha256:ab"}},
		// The separator whose reference is one path element wins.
		{"/v2/a/referrers/b/referrers/sha256:ab", Route{Class: Referrers, Name: "a/referrers/b", Ref: "sha256:ab"}},
		{"/v2/a/referrers/b/manifests/latest", Route{Class: Manifest, Name: "a/referrers/b", Ref: "latest"}},
		{"/v2/a/manifests/referrers/x", Route{Class: Referrers, Name: "a/manifests", Ref: "x"}},
		{"/v2/referrers/sha256:ab", Route{Class: Other}},
		{"/v2/a/referrers/", Route{Class: Other}},
		{"/v3/a/referrers/sha256:ab", Route{Class: Other}},
		{"/v2/a/b/manifests/", Route{Class: Other}},
		{"/v2/a/b", Route{Class: Other}},
		{"/healthz", Route{Class: Other}},
		{"/metrics", Route{Class: Other}},
		{"/", Route{Class: Other}},
	} {
		if got := Parse(c.path); got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.path, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/blobs/uploads/x", "/v2/a/manifests/v1", "/v2//blobs/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r := Parse(p)
		switch r.Class {
		case Base, Catalog, Other:
			if r.Name != "" || r.Ref != "" {
				t.Errorf("%q: %+v", p, r)
			}
		default:
			if r.Name == "" {
				t.Errorf("%q: %+v without a name", p, r)
			}
		}
	})
}
