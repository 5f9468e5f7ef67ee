package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"stx-registry/registry/config"
	"stx-registry/registry/tokenauth"
	"stx-registry/registry/tokenauth/tokentest"
	"stx-registry/shared/jws"
)

// testRegistry is the real handler chain around distribution's app, served
// on loopback with a temporary storage root.
type testRegistry struct {
	t       testing.TB
	srv     *httptest.Server
	handler http.Handler // what srv serves: NewHandler's chain
	key     tokentest.Key
	tokens  *tokenauth.Controller
	bundle  string // token_certificate, a file of the test's own
	root    string // root_directory
}

func newTestRegistry(t testing.TB, key tokentest.Key, readOnly bool) *testRegistry {
	t.Helper()
	return serveTestRegistry(t, key, readOnly, (*httptest.Server).Start, NewHandler)
}

// newUnstartedRegistry is newTestRegistry with the server not started yet,
// so that a test can set its timeouts.
func newUnstartedRegistry(t testing.TB, key tokentest.Key, readOnly bool) *testRegistry {
	return serveTestRegistry(t, key, readOnly, func(*httptest.Server) {}, NewHandler)
}

// handlerFunc builds a registry handler: NewHandler, or for the benchmarks
// distribution's handler alone.
type handlerFunc func(context.Context, *config.Config, *tokenauth.Controller, *slog.Logger) (http.Handler, func(), error)

// serveTestRegistry is newTestRegistry with the handler built by build and
// the server started by start: plain HTTP or, for the benchmarks,
// (*httptest.Server).StartTLS.
func serveTestRegistry(t testing.TB, key tokentest.Key, readOnly bool, start func(*httptest.Server), build handlerFunc) *testRegistry {
	t.Helper()
	cfg := config.Default()
	cfg.RootDirectory = t.TempDir()
	if err := os.Chmod(cfg.RootDirectory, 0o700); err != nil { // t.TempDir follows the umask
		t.Fatal(err)
	}
	cfg.RequireMount = false
	cfg.ReadOnly = readOnly
	cfg.LogLevel = "error"
	cfg.TokenRealm = tokentest.Realm
	cfg.TokenService = tokentest.Service
	cfg.TokenIssuer = tokentest.Issuer
	cfg.TokenCertificate = tokentest.WriteBundle(t, key)
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	tokens, err := tokenauth.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	h, shutdown, err := build(t.Context(), cfg, tokens, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	start(srv)
	t.Cleanup(func() {
		srv.Close()
		shutdown()
	})
	return &testRegistry{t: t, srv: srv, handler: h, key: key, tokens: tokens, bundle: cfg.TokenCertificate, root: cfg.RootDirectory}
}

// do sends a request with an optional bearer token.
func (r *testRegistry) do(method, path, bearer string, body []byte, header http.Header) *http.Response {
	r.t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = r.srv.URL + path
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// token signs a token for subject with access using the registry's key.
func (r *testRegistry) token(subject string, access ...tokentest.Access) string {
	return tokentest.Sign(r.t, r.key, tokentest.Claims(subject, access...))
}

// pushBlob uploads data to name with a POST then PUT and returns its digest.
func (r *testRegistry) pushBlob(name, bearer string, data []byte) string {
	r.t.Helper()
	dgst := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	resp := r.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/", bearer, nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		r.t.Fatalf("start upload to %s: status %d, want 202", name, resp.StatusCode)
	}
	loc, err := resp.Location()
	if err != nil {
		r.t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", dgst)
	loc.RawQuery = q.Encode()
	resp = r.do(http.MethodPut, loc.String(), bearer, data, http.Header{"Content-Type": {"application/octet-stream"}})
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("finish upload to %s: status %d, want 201: %s", name, resp.StatusCode, body)
	}
	return dgst
}

// pushImage pushes a one-layer image to name:tag and returns the layer
// digest.
func (r *testRegistry) pushImage(name, tag, bearer string, layer []byte) string {
	r.t.Helper()
	configBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cfgDigest := r.pushBlob(name, bearer, configBlob)
	layerDigest := r.pushBlob(name, bearer, layer)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{
			"mediaType": "application/vnd.oci.image.config.v1+json",
			"digest":    cfgDigest,
			"size":      len(configBlob),
		},
		"layers": []map[string]any{{
			"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
			"digest":    layerDigest,
			"size":      len(layer),
		}},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	resp := r.do(http.MethodPut, "/v2/"+name+"/manifests/"+tag, bearer, manifest,
		http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}})
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("push manifest %s:%s: status %d, want 201: %s", name, tag, resp.StatusCode, body)
	}
	return layerDigest
}

func TestHealthzWithoutAuth(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp := r.do(method, "/healthz", "", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s /healthz: status %d, want 200", method, resp.StatusCode)
		}
		body, _ := io.ReadAll(resp.Body)
		if method == http.MethodGet && strings.TrimSpace(string(body)) != `{"status":"ok"}` {
			t.Errorf("GET /healthz body %q", body)
		}
	}
}

func TestChallenge(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	resp := r.do(http.MethodGet, "/v2/", "", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ without token: status %d, want 401", resp.StatusCode)
	}
	want := fmt.Sprintf("Bearer realm=%q,service=%q", tokentest.Realm, tokentest.Service)
	if got := resp.Header.Get("WWW-Authenticate"); got != want {
		t.Errorf("challenge %q, want %q", got, want)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q, want nosniff", got)
	}
	resp = r.do(http.MethodGet, "/v2/", r.token("alice"), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/ with a valid token: status %d, want 200", resp.StatusCode)
	}
}

func TestCrossRepositoryMount(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), false)
	alice := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	layer := []byte("alice's private layer")
	dgst := r.pushImage("alice/y", "v1", alice, layer)

	mountPath := "/v2/bob/x/blobs/uploads/?" + url.Values{"mount": {dgst}, "from": {"alice/y"}}.Encode()

	// bob may not pull alice/y: the mount turns into a normal upload.
	bob := r.token("bob", tokentest.Repo("bob/x", "pull", "push"))
	resp := r.do(http.MethodPost, mountPath, bob, nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("refused mount: status %d, want 202 (normal upload)", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/v2/bob/x/blobs/uploads/") {
		t.Errorf("refused mount: Location %q, want an upload in bob/x", loc)
	}
	if resp.Header.Get("Docker-Upload-UUID") == "" {
		t.Error("refused mount: no Docker-Upload-UUID")
	}
	// and alice's blob is still out of reach for bob.
	if resp := r.do(http.MethodGet, "/v2/bob/x/blobs/"+dgst, bob, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("bob reads the blob through bob/x: status %d, want 404", resp.StatusCode)
	}
	if resp := r.do(http.MethodGet, "/v2/alice/y/blobs/"+dgst, bob, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bob reads alice/y: status %d, want 401", resp.StatusCode)
	}

	// Without push on bob/x the retry is refused too.
	bobPull := r.token("bob", tokentest.Repo("bob/x", "pull"))
	if resp := r.do(http.MethodPost, mountPath, bobPull, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("mount without push: status %d, want 401", resp.StatusCode)
	}

	// With pull on alice/y the mount itself succeeds.
	bobBoth := r.token("bob", tokentest.Repo("bob/x", "pull", "push"), tokentest.Repo("alice/y", "pull"))
	resp = r.do(http.MethodPost, mountPath, bobBoth, nil, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("allowed mount: status %d, want 201", resp.StatusCode)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != dgst {
		t.Errorf("allowed mount: digest %q, want %q", got, dgst)
	}
	resp = r.do(http.MethodGet, "/v2/bob/x/blobs/"+dgst, bob, nil, nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, layer) {
		t.Errorf("mounted blob: status %d body %q", resp.StatusCode, body)
	}
}

func TestReadOnly(t *testing.T) {
	r := newTestRegistry(t, tokentest.NewKey(t, "P-256"), true)
	tok := r.token("alice", tokentest.Repo("alice/y", "pull", "push"))
	resp := r.do(http.MethodPost, "/v2/alice/y/blobs/uploads/", tok, nil, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("push in read_only mode: status %d, want 405", resp.StatusCode)
	}
	if resp := r.do(http.MethodGet, "/v2/alice/y/tags/list", tok, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("pull in read_only mode: status %d, want 404 (unknown repository)", resp.StatusCode)
	}
}

// TestSigningAlgorithmsPinned checks that the registry accepts only the
// algorithm of the bundle's key, even for a signature that key really made.
func TestSigningAlgorithmsPinned(t *testing.T) {
	rsaKey := tokentest.NewKey(t, "RSA")
	r := newTestRegistry(t, rsaKey, false)
	other := tokentest.NewKey(t, "RSA")
	tests := []struct {
		name string
		key  tokentest.Key
		alg  string
		want int
	}{
		{"RS256 by the trusted key", rsaKey, "RS256", http.StatusOK},
		{"RS512 by the trusted key", rsaKey, "RS512", http.StatusUnauthorized},
		{"PS256 by the trusted key", rsaKey, "PS256", http.StatusUnauthorized},
		{"HS256 keyed with the public key", rsaKey, "HS256", http.StatusUnauthorized},
		{"RS256 by an untrusted key", other, "RS256", http.StatusUnauthorized},
		{"RS256 by an untrusted key claiming the trusted kid", tokentest.Key{Signer: other.Signer, KID: rsaKey.KID}, "RS256", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := forge(t, tt.key, tt.alg, tokentest.Claims("alice", tokentest.Repo("alice/y", "pull")))
			resp := r.do(http.MethodGet, "/v2/alice/y/tags/list", tok, nil, nil)
			// 404: authorised, the repository does not exist yet.
			got := resp.StatusCode
			if got == http.StatusNotFound {
				got = http.StatusOK
			}
			if got != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestKeyKinds has the real verifier accept tokens from every supported key
// kind, several keys each (EC kids are not left-padded).
func TestKeyKinds(t *testing.T) {
	for _, kind := range []string{"P-256", "P-384", "P-521", "Ed25519", "RSA"} {
		t.Run(kind, func(t *testing.T) {
			for range 3 {
				r := newTestRegistry(t, tokentest.NewKey(t, kind), false)
				tok := r.token("alice")
				if resp := r.do(http.MethodGet, "/v2/", tok, nil, nil); resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
			}
		})
	}
}

func TestTokenClaims(t *testing.T) {
	key := tokentest.NewKey(t, "P-256")
	r := newTestRegistry(t, key, false)
	tests := []struct {
		name   string
		modify func(map[string]any)
		want   int
	}{
		{"valid", func(map[string]any) {}, http.StatusOK},
		{"wrong issuer", func(c map[string]any) { c["iss"] = "someone-else" }, http.StatusUnauthorized},
		{"wrong audience", func(c map[string]any) { c["aud"] = "other:9001" }, http.StatusUnauthorized},
		{"expired", func(c map[string]any) { c["exp"] = c["iat"].(int64) - 3600 }, http.StatusUnauthorized},
		{"no access", func(c map[string]any) { c["access"] = []tokentest.Access{} }, http.StatusUnauthorized},
		{"other repository", func(c map[string]any) { c["access"] = []tokentest.Access{tokentest.Repo("alice/z", "pull")} }, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tokentest.Claims("alice", tokentest.Repo("alice/y", "pull"))
			tt.modify(c)
			resp := r.do(http.MethodGet, "/v2/alice/y/tags/list", tokentest.Sign(t, key, c), nil, nil)
			got := resp.StatusCode
			if got == http.StatusNotFound {
				got = http.StatusOK
			}
			if got != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestTokenReloadThroughRegistry rotates the key behind the real handler
// chain: distribution's app asks our controller, so a new key is accepted
// by the registry itself once the bundle changes.
func TestTokenReloadThroughRegistry(t *testing.T) {
	oldKey := tokentest.NewKey(t, "P-256")
	r := newTestRegistry(t, oldKey, false)
	newKey := tokentest.NewKey(t, "RSA")
	newTok := tokentest.Sign(t, newKey, tokentest.Claims("alice"))
	if resp := r.do(http.MethodGet, "/v2/", newTok, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("new key before the change: status %d, want 401", resp.StatusCode)
	}
	tokentest.Replace(t, r.bundle, tokentest.Bundle(t, oldKey, newKey))
	r.tokens.Recheck()
	if resp := r.do(http.MethodGet, "/v2/", newTok, nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("new key after the change: status %d, want 200", resp.StatusCode)
	}
	tokentest.Replace(t, r.bundle, tokentest.Bundle(t, newKey))
	r.tokens.Recheck()
	resp := r.do(http.MethodGet, "/v2/", r.token("alice"), nil, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("old key after its removal: status %d, want 401", resp.StatusCode)
	}
	// The challenge is still distribution's.
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="`+tokentest.Realm+`"`) {
		t.Errorf("challenge %q", got)
	}
}

// forge signs claims with k under alg with k's kid in the header, also in
// the algorithms shared/jws never signs with, for the tests that the
// registry refuses them: RS512, PS256 and HS256 keyed with the public key.
func forge(t testing.TB, k tokentest.Key, alg string, claims map[string]any) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"typ": "JWT", "alg": alg, "kid": k.KID})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := []byte(enc.EncodeToString(header) + "." + enc.EncodeToString(body))
	var sig []byte
	switch alg {
	case "RS512":
		d := sha512.Sum512(input)
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.Signer.(*rsa.PrivateKey), crypto.SHA512, d[:])
	case "PS256":
		d := sha256.Sum256(input)
		sig, err = rsa.SignPSS(rand.Reader, k.Signer.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "HS256":
		// The classic confusion attack: HMAC keyed with public material.
		der, _ := x509.MarshalPKIXPublicKey(k.Signer.Public())
		m := hmac.New(sha256.New, der)
		m.Write(input)
		sig = m.Sum(nil)
	default:
		var s *jws.Signer
		if s, err = jws.NewSigner(k.Signer); err == nil && s.Algorithm() != alg {
			t.Fatalf("key signs %s, not %s", s.Algorithm(), alg)
		}
		if err == nil {
			sig, err = s.Signature(input)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(input) + "." + enc.EncodeToString(sig)
}
