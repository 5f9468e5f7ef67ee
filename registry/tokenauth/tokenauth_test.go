package tokenauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/sirupsen/logrus"

	"stx-registry/registry/config"
	"stx-registry/registry/tokenauth/tokentest"
	"stx-registry/shared/jws"
)

// syncBuffer is a log sink the tests read while the controller writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestController builds a Controller over a bundle of keys in a file of
// the test's own, logging into the returned buffer.
func newTestController(t testing.TB, keys ...tokentest.Key) (*Controller, string, *syncBuffer) {
	t.Helper()
	c := config.Default()
	c.TokenRealm, c.TokenService, c.TokenIssuer = tokentest.Realm, tokentest.Service, tokentest.Issuer
	c.TokenCertificate = filepath.Join(t.TempDir(), "token.pem")
	tokentest.Replace(t, c.TokenCertificate, tokentest.Bundle(t, keys...))
	// distribution's verifier logs every refused token at info level.
	logrus.SetLevel(logrus.ErrorLevel)
	logs := &syncBuffer{}
	tc, err := New(c, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return tc, c.TokenCertificate, logs
}

// pullAccess is what distribution asks for on GET /v2/alice/y/manifests/….
var pullAccess = auth.Access{Resource: auth.Resource{Type: "repository", Name: "alice/y"}, Action: "pull"}

// pullToken signs a pull token for alice/y with k, in k's algorithm.
func pullToken(t testing.TB, k tokentest.Key) string {
	t.Helper()
	return tokentest.Sign(t, k, tokentest.Claims("alice", tokentest.Repo("alice/y", "pull")))
}

// accepts reports whether tc authorizes a pull with tok.
func accepts(tc *Controller, tok string) bool {
	r := httptest.NewRequest(http.MethodGet, "/v2/alice/y/manifests/v1", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	g, err := tc.Authorized(r, pullAccess)
	return err == nil && g != nil && g.User.Name == "alice"
}

// TestTokenRotationSteps walks the documented rotation procedure against
// the controller, with keys of different kinds so that the pinned
// algorithms have to follow the bundle, and the bundle picked up either by
// a request (file change) or by SIGHUP (Reload).
func TestTokenRotationSteps(t *testing.T) {
	for _, tt := range []struct {
		name          string
		oldKind       string
		newKind       string
		algsBoth      []any
		pickUp        string // "request" or "sighup"
		wantNewRefuse bool
	}{
		{name: "same kind on change", oldKind: "P-256", newKind: "P-256", algsBoth: []any{"ES256"}, pickUp: "request"},
		{name: "EC to RSA on change", oldKind: "P-256", newKind: "RSA", algsBoth: []any{"ES256", "RS256"}, pickUp: "request"},
		{name: "RSA to Ed25519 on SIGHUP", oldKind: "RSA", newKind: "Ed25519", algsBoth: []any{"RS256", "EdDSA"}, pickUp: "sighup"},
		{name: "P-384 to P-521 on SIGHUP", oldKind: "P-384", newKind: "P-521", algsBoth: []any{"ES384", "ES512"}, pickUp: "sighup"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			oldKey, newKey := tokentest.NewKey(t, tt.oldKind), tokentest.NewKey(t, tt.newKind)
			tc, path, logs := newTestController(t, oldKey)
			oldTok, newTok := pullToken(t, oldKey), pullToken(t, newKey)
			pickUp := func() {
				t.Helper()
				if tt.pickUp == "sighup" {
					if err := tc.Reload(); err != nil {
						t.Fatalf("Reload: %v", err)
					}
					return
				}
				tc.Recheck()
			}
			want := func(step string, old, new bool) {
				t.Helper()
				if got := accepts(tc, oldTok); got != old {
					t.Errorf("%s: old-key token accepted = %v, want %v", step, got, old)
				}
				if got := accepts(tc, newTok); got != new {
					t.Errorf("%s: new-key token accepted = %v, want %v", step, got, new)
				}
			}
			want("start", true, false)

			// 1. Add the new certificate.
			tokentest.Replace(t, path, tokentest.Bundle(t, oldKey, newKey))
			if tt.pickUp == "request" {
				// Within a second of the last look (New, just now),
				// requests do not stat the file.
				want("changed, not yet looked at", true, false)
			}
			pickUp()
			want("both certificates", true, true)
			if got := tc.Algorithms(); !reflect.DeepEqual(got, tt.algsBoth) {
				t.Errorf("algorithms %v, want %v", got, tt.algsBoth)
			}
			if !strings.Contains(logs.String(), "certificates=2") {
				t.Errorf("no info line with the certificate count in %q", logs.String())
			}

			// 2. and 3. happen at the token server; 4. remove the old one.
			tokentest.Replace(t, path, tokentest.Bundle(t, newKey))
			pickUp()
			want("new certificate only", false, true)
			if got, _ := jws.Algorithm(newKey.Signer.Public()); !reflect.DeepEqual(tc.Algorithms(), []any{got}) {
				t.Errorf("algorithms %v, want [%s]", tc.Algorithms(), got)
			}
		})
	}
}

// TestTokenBundleBadKeepsOld replaces the bundle with unusable content: the
// current keys stay, the error names the file, and a request-path check
// logs it once, not at every look.
func TestTokenBundleBadKeepsOld(t *testing.T) {
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    []byte // nil: remove the file
		wantErr string
	}{
		{"empty", []byte{}, "no PEM certificate"},
		{"garbage", []byte("this is not PEM\n"), "no PEM certificate"},
		{"truncated PEM", []byte("-----BEGIN CERTIFICATE-----\nMIIB"), "no PEM certificate"},
		{"private key", pemBlock("PRIVATE KEY", []byte{1, 2, 3}), `"PRIVATE KEY"`},
		{"bad DER", pemBlock("CERTIFICATE", []byte{1}), "certificate 1"},
		{"unsupported curve", tokentest.CertFor(t, p224.Public(), tokentest.NewKey(t, "P-256")), "ecdsa curve P-224 is not supported"},
		{"too big", make([]byte, jws.MaxBundleBytes+1), "larger than"},
		{"removed", nil, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tokentest.NewKey(t, "P-256")
			tc, path, logs := newTestController(t, key)
			tok := pullToken(t, key)
			if tt.data == nil {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			} else {
				tokentest.Replace(t, path, tt.data)
			}

			// On the request path: logged once.
			for range 3 {
				tc.Recheck()
				if !accepts(tc, tok) {
					t.Fatal("the current key was dropped after a bad bundle")
				}
			}
			if n := strings.Count(logs.String(), "token_certificate not reloaded"); n != 1 {
				t.Errorf("bad bundle logged %d times, want once:\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), path) || !strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("log does not name %s at error level:\n%s", path, logs.String())
			}

			// On SIGHUP: an error naming the file and the reason.
			err := tc.Reload()
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Reload: %v, want an error naming %s and containing %q", err, path, tt.wantErr)
			}
			if !accepts(tc, tok) {
				t.Error("the current key was dropped after a failed Reload")
			}

			// Fixing the file is picked up on the request path.
			other := tokentest.NewKey(t, "P-256")
			tokentest.Replace(t, path, tokentest.Bundle(t, other))
			tc.Recheck()
			if accepts(tc, tok) || !accepts(tc, pullToken(t, other)) {
				t.Error("a good bundle after a bad one was not loaded")
			}
		})
	}
}

// TestTokenControllerStart refuses to build a controller from an unusable
// bundle, naming the file.
func TestTokenControllerStart(t *testing.T) {
	c := config.Default()
	c.TokenRealm, c.TokenService, c.TokenIssuer = tokentest.Realm, tokentest.Service, tokentest.Issuer
	c.TokenCertificate = filepath.Join(t.TempDir(), "token.pem")
	tokentest.Replace(t, c.TokenCertificate, []byte("garbage"))
	_, err := New(c, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), c.TokenCertificate) {
		t.Errorf("New with a garbage bundle: %v, want an error naming the file", err)
	}
}

// TestControllerFromOptions checks the auth registry entry: it returns the
// controller it is given and nothing else.
func TestControllerFromOptions(t *testing.T) {
	tc, _, _ := newTestController(t, tokentest.NewKey(t, "P-256"))
	got, err := auth.GetAccessController(Name, map[string]any{ControllerOption: tc})
	if err != nil || got != auth.AccessController(tc) {
		t.Errorf("GetAccessController(%q) = %v, %v; want the controller", Name, got, err)
	}
	for _, opts := range []map[string]any{nil, {}, {ControllerOption: "x"}, {ControllerOption: (*Controller)(nil)}} {
		if _, err := auth.GetAccessController(Name, opts); err == nil {
			t.Errorf("GetAccessController(%q, %v) succeeded", Name, opts)
		}
	}
}

// TestTokenReloadConcurrent runs requests while the bundle flips between
// two contents that both hold the key in use, with reloads from both the
// request path and SIGHUP: not one request may fail. Run it with -race.
func TestTokenReloadConcurrent(t *testing.T) {
	key, other := tokentest.NewKey(t, "P-256"), tokentest.NewKey(t, "RSA")
	tc, path, logs := newTestController(t, key)
	tok := pullToken(t, key)
	bundles := [][]byte{tokentest.Bundle(t, key, other), tokentest.Bundle(t, key)}

	const (
		workers  = 8
		requests = 300
		flips    = 60
	)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures int
	)
	for range workers {
		wg.Go(func() {
			for range requests {
				if !accepts(tc, tok) {
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
		})
	}
	wg.Go(func() {
		for i := range flips {
			tokentest.Replace(t, path, bundles[i%2])
			if i%3 == 0 {
				_ = tc.Reload()
			} else {
				tc.Recheck()
			}
		}
	})
	wg.Wait()
	if failures != 0 {
		t.Errorf("%d of %d requests failed during reloads", failures, workers*requests)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs.String())
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// TestTokenOptions checks the options distribution's token verifier is
// built with (from the registry's former TestDistributionConfig).
func TestTokenOptions(t *testing.T) {
	c := config.Default()
	c.TokenRealm, c.TokenService, c.TokenIssuer = tokentest.Realm, tokentest.Service, tokentest.Issuer
	c.TokenCertificate = "/etc/stx-registry/token.crt"
	base := tokenOptions(c)
	checks := []struct {
		name      string
		got, want any
	}{
		{"realm", base["realm"], tokentest.Realm},
		{"service", base["service"], tokentest.Service},
		{"issuer", base["issuer"], tokentest.Issuer},
		{"rootcertbundle", base["rootcertbundle"], c.TokenCertificate},
		{"autoredirect", base["autoredirect"], false},
		{"no signingalgorithms", base["signingalgorithms"], nil},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}
