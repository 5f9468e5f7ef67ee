package e2e

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestSkopeoRoundTrip pushes an OCI image with skopeo and copies it back:
// the manifest and every layer must come back with the same digests.
func TestSkopeoRoundTrip(t *testing.T) {
	e := sharedEnv(t)
	h := newClientHome(t)
	im := newImage(t, "v1")
	e.mustPush(t, h, "user1", im, "user1/app:v1")

	dir, r := e.skopeoPull(t, h, "user1", "user1/app:v1")
	if r.err != nil {
		t.Fatalf("pulling user1/app:v1 back: %v\n%s", r.err, r.output)
	}
	digest, layers := layoutManifest(t, dir, "pulled")
	if digest != im.Manifest.Digest {
		t.Errorf("pulled manifest %s, pushed %s", digest, im.Manifest.Digest)
	}
	if !slices.Equal(layers, im.LayerDigests()) {
		t.Errorf("pulled layers %v, pushed %v", layers, im.LayerDigests())
	}

	r = h.skopeo(t, "list-tags", "--creds", e.creds("user1"), "--cert-dir", e.certDir(), "docker://"+e.registryAddr+"/user1/app")
	if r.err != nil {
		t.Fatalf("skopeo list-tags: %v\n%s", r.err, r.output)
	}
	var tags struct {
		Tags []string `json:"Tags"`
	}
	if err := json.Unmarshal([]byte(r.output), &tags); err != nil || !slices.Contains(tags.Tags, "v1") {
		t.Errorf("skopeo list-tags user1/app: want v1 listed, got %v (%v):\n%s", tags.Tags, err, r.output)
	}

	// The registry serves the manifest under its digest too.
	tok := e.tokenFor(t, "user1", "repository:user1/app:pull")
	got := e.api(t, "HEAD", "/v2/user1/app/manifests/"+im.Manifest.Digest, tok, nil,
		map[string][]string{"Accept": {mediaManifest}})
	if got.status != 200 || got.header.Get("Docker-Content-Digest") != im.Manifest.Digest {
		t.Errorf("HEAD manifest by digest: status %d, Docker-Content-Digest %q; want 200 and %s",
			got.status, got.header.Get("Docker-Content-Digest"), im.Manifest.Digest)
	}
}
