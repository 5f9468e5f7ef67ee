package frontdoor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"

	"github.com/opencontainers/go-digest"
)

// maxManifestBytes bounds a manifest PUT body: distribution's own limit
// (maxManifestBodySize), refused here before a byte of it is read.
const maxManifestBytes = 4 << 20

// descriptor holds the fields of an OCI or Docker content descriptor that
// checkManifest looks at.
type descriptor struct {
	Digest string   `json:"digest"`
	URLs   []string `json:"urls"`
}

// checkManifest refuses the manifests distribution would answer with a 500
// instead of a 400: a schemaVersion other than 2 (missing included), a
// descriptor digest that is not a valid digest of an available algorithm,
// and a layer URL distribution's check fails (not http or https, with a
// fragment, or unparsable). Anything else, including JSON that does not
// parse, is left to distribution, which refuses it with MANIFEST_INVALID.
func checkManifest(data []byte) error {
	var m struct {
		SchemaVersion *int         `json:"schemaVersion"`
		Config        *descriptor  `json:"config"`
		Layers        []descriptor `json:"layers"`
		Manifests     []descriptor `json:"manifests"`
		Subject       *descriptor  `json:"subject"`
		Blobs         []descriptor `json:"blobs"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil // distribution's own parser refuses it
	}
	if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
		return fmt.Errorf("manifest schemaVersion must be 2")
	}
	all := append(append(append([]descriptor{}, m.Layers...), m.Manifests...), m.Blobs...)
	for _, d := range []*descriptor{m.Config, m.Subject} {
		if d != nil {
			all = append(all, *d)
		}
	}
	for _, d := range all {
		if _, err := digest.Parse(d.Digest); err != nil {
			return fmt.Errorf("manifest descriptor digest %q: %w", d.Digest, err)
		}
	}
	for _, d := range m.Layers {
		for _, u := range d.URLs {
			if err := checkLayerURL(u); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkLayerURL is distribution's rule for the urls of a layer descriptor
// (those of a non-distributable layer): an http or https URL without a
// fragment. The registry never fetches them; a client may, and it checks
// the digest of what it gets.
func checkLayerURL(u string) error {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Fragment != "" {
		return fmt.Errorf("manifest layer URL %q: only http and https URLs without a fragment are accepted", u)
	}
	return nil
}

// manifestBody is the body of a manifest PUT: on the first read it reads
// the whole manifest, at most maxManifestBytes, and checks it with
// checkManifest. A manifest refused there fails the read, which
// distribution answers with 400 MANIFEST_INVALID and the reason.
type manifestBody struct {
	io.ReadCloser // the gated body
	data          *bytes.Reader
	err           error
}

func (m *manifestBody) Read(p []byte) (int, error) {
	if m.data == nil && m.err == nil {
		data, err := io.ReadAll(io.LimitReader(m.ReadCloser, maxManifestBytes+1))
		switch {
		case err != nil:
			m.err = err
		case len(data) > maxManifestBytes:
			m.err = fmt.Errorf("manifest larger than %d bytes", maxManifestBytes)
		default:
			m.err = checkManifest(data)
			m.data = bytes.NewReader(data)
		}
	}
	if m.err != nil {
		return 0, m.err
	}
	return m.data.Read(p)
}
