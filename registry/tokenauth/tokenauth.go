// Package tokenauth is the registry's access controller, registered with
// distribution as "stx-token": distribution's own token verifier, rebuilt
// whenever the token_certificate bundle changes (checked at most once a
// second on the request path, and on SIGHUP through Reload), so that the
// token server's signing key can be rotated without restarting the
// registry. The bundle is read with shared/jws, so only the algorithms of
// its keys are accepted and a key the token server refuses is refused here
// too. Distribution reads its keys once, when its controller is built;
// this package only decides when to build a new one. No JWT is verified
// here; only the header's x5c and jwk are read, to refuse a key that is not
// exactly one of the bundle's (keyheader.go). A request whose token is
// verified and grants its access is let through the front door
// (frontdoor.Open): only then may its body be read. A request whose token
// is verified but lacks the access is refused with the reason the token
// server put in the token (its stx_refused claim, read only after
// distribution verified the token), in the challenges and, through the
// front door (frontdoor.Deny), in a DENIED error.
package tokenauth

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"

	"github.com/distribution/distribution/v3/registry/auth"
	// The token access controller registers itself by name; New builds
	// it by that name. refusal.go uses its errors too.
	_ "github.com/distribution/distribution/v3/registry/auth/token"

	"stx-registry/registry/config"
	"stx-registry/registry/frontdoor"
	"stx-registry/shared/files"
	"stx-registry/shared/jws"
)

const (
	// Name is the name stx-registry's access controller is registered
	// under in distribution's auth registry.
	Name = "stx-token"
	// ControllerOption is the one option of Name: the *Controller built by
	// New. Distribution constructs access controllers by name from an
	// options map, so that is how it gets in.
	ControllerOption = "controller"
)

func init() {
	if err := auth.Register(Name, controllerFromOptions); err != nil {
		panic(err)
	}
}

// controllerFromOptions is the auth.InitFunc of Name: it hands
// distribution the controller that was built, and checked, before the app.
func controllerFromOptions(options map[string]any) (auth.AccessController, error) {
	tc, ok := options[ControllerOption].(*Controller)
	if !ok || tc == nil {
		return nil, fmt.Errorf("%s access controller: option %q must hold the token controller", Name, ControllerOption)
	}
	return tc, nil
}

// Controller is an auth.AccessController that delegates to distribution's
// token access controller, built from the current token_certificate. It is
// safe for concurrent use.
type Controller struct {
	keys           *files.Watched[*tokenKeys]
	log            *slog.Logger
	realm, service string // token_realm, token_service: for a refusal's challenges
}

// tokenKeys is one built verifier and what it was built from.
type tokenKeys struct {
	inner  auth.AccessController // distribution's token access controller
	bundle jws.Bundle
}

// tokenOptions are distribution's token access controller options for c,
// without signingalgorithms, which each load sets from the bundle.
func tokenOptions(c *config.Config) map[string]any {
	return map[string]any{
		"realm":          c.TokenRealm,
		"service":        c.TokenService,
		"issuer":         c.TokenIssuer,
		"rootcertbundle": c.TokenCertificate,
		// autoredirect would build the realm from the client's Host header.
		"autoredirect": false,
	}
}

// New loads token_certificate and builds the first verifier; an unusable
// bundle is an error naming the file. logger receives reload results.
func New(c *config.Config, logger *slog.Logger) (*Controller, error) {
	path, base := c.TokenCertificate, tokenOptions(c)
	keys, err := files.New(files.Watch[*tokenKeys]{
		Paths:    []string{path},
		Interval: files.CheckInterval,
		Load:     func() (*tokenKeys, error) { return load(path, base) },
		Loaded: func(k *tokenKeys) {
			logger.Info("token_certificate loaded", "file", path, "certificates", k.bundle.Certificates, "token_algorithms", k.bundle.Algorithms)
		},
		Failed: func(err error) {
			logger.Error("token_certificate not reloaded, keeping the current keys", "file", path, "err", err)
		},
	})
	if err != nil {
		return nil, err
	}
	return &Controller{keys: keys, log: logger, realm: c.TokenRealm, service: c.TokenService}, nil
}

// load reads the bundle and builds distribution's verifier from it. The
// bundle is read twice, once here for the algorithms and once by
// distribution for the keys; files.Watched stats it before this read, so a
// replacement between the two reads is seen as a change, and loaded again,
// at the next check.
func load(path string, base map[string]any) (*tokenKeys, error) {
	b, err := jws.ReadBundle(path)
	if err != nil {
		return nil, err
	}
	options := maps.Clone(base)
	options["signingalgorithms"] = b.Algorithms
	inner, err := auth.GetAccessController("token", options)
	if err != nil {
		return nil, fmt.Errorf("token_certificate %s: %w", path, err)
	}
	return &tokenKeys{inner: inner, bundle: b}, nil
}

// Authorized checks the request's bearer token with the current verifier,
// after looking for a changed bundle at most once per files.CheckInterval,
// and after refusing a token that names a key outside the bundle
// (keyheader.go). Challenges and errors are distribution's own, but for a
// verified token that lacks access: that refusal says why (see refusal). A
// granted request is let through the front door (frontdoor.Open): from
// then on its body may be read.
func (tc *Controller) Authorized(r *http.Request, access ...auth.Access) (*auth.Grant, error) {
	k := tc.keys.Get()
	if err := checkKeyHeader(r, k.bundle.Certs); err != nil {
		return refuseKeyHeader(k.inner, r, access, tc.log, err)
	}
	grant, err := k.inner.Authorized(r, access...)
	if isInsufficientScope(err) {
		return nil, tc.refuse(r, access)
	}
	if err == nil && grant != nil {
		frontdoor.Open(r.Context())
	}
	return grant, err
}

// Algorithms returns the signing algorithms currently accepted.
func (tc *Controller) Algorithms() []any { return tc.keys.Current().bundle.Algorithms }

// Reload reads token_certificate again, on SIGHUP. On any error it keeps
// the current verifier, logs the error and returns it.
func (tc *Controller) Reload() error { return tc.keys.Reload() }

// Recheck makes the next request look at token_certificate, as if a second
// had passed since the last look.
func (tc *Controller) Recheck() { tc.keys.Recheck() }
