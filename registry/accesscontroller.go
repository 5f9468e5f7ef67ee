package main

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/auth"
)

// The registry's access controller: distribution's own token verifier,
// rebuilt whenever the token_certificate bundle changes, so that the token
// server's signing key can be rotated without restarting the registry.
// Distribution reads its keys once, when the controller is built; this file
// only decides when to build a new one. No JWT is parsed or verified here.

const (
	// tokenAuthName is the name stx-registry's access controller is
	// registered under in distribution's auth registry.
	tokenAuthName = "stx-token"
	// controllerOption is the one option of tokenAuthName: the
	// *tokenController newHandler built. Distribution constructs access
	// controllers by name from an options map, so that is how it gets in.
	controllerOption = "controller"
	// bundleCheckInterval is how often a request may stat token_certificate
	// to look for a new bundle. Requests in between cost one atomic load.
	bundleCheckInterval = time.Second
)

func init() {
	if err := auth.Register(tokenAuthName, controllerFromOptions); err != nil {
		panic(err)
	}
}

// controllerFromOptions is the auth.InitFunc of tokenAuthName: it hands
// distribution the controller that was built, and checked, before the app.
func controllerFromOptions(options map[string]any) (auth.AccessController, error) {
	tc, ok := options[controllerOption].(*tokenController)
	if !ok || tc == nil {
		return nil, fmt.Errorf("%s access controller: option %q must hold the token controller", tokenAuthName, controllerOption)
	}
	return tc, nil
}

// tokenController is an auth.AccessController that delegates to
// distribution's token access controller, built from the current
// token_certificate. It is safe for concurrent use.
type tokenController struct {
	bundle string         // token_certificate
	base   map[string]any // distribution's token options, except signingalgorithms
	logger *slog.Logger

	current   atomic.Pointer[tokenKeys] // read by every request
	lastCheck atomic.Int64              // unix nanoseconds of the last change check

	mu     sync.Mutex  // serializes loads
	failed bundleStamp // the bundle as it was at the last failed load; guarded by mu
}

// tokenKeys is one built verifier and what it was built from.
type tokenKeys struct {
	inner auth.AccessController // distribution's token access controller
	algs  []any                 // the pinned signingalgorithms
	certs int                   // certificates in the bundle
	stamp bundleStamp
}

// bundleStamp identifies a version of the bundle file by modification time
// and size.
type bundleStamp struct{ modTime, size int64 }

// missingBundle is the stamp of a bundle that cannot be statted; it differs
// from the zero stamp, which stands for "no failed load".
var missingBundle = bundleStamp{size: -1}

// tokenOptions are distribution's token access controller options for c,
// without signingalgorithms, which each load sets from the bundle.
func tokenOptions(c *Config) map[string]any {
	return map[string]any{
		"realm":          c.TokenRealm,
		"service":        c.TokenService,
		"issuer":         c.TokenIssuer,
		"rootcertbundle": c.TokenCertificate,
		// autoredirect would build the realm from the client's Host header.
		"autoredirect": false,
	}
}

// newTokenController loads token_certificate and builds the first
// verifier; an unusable bundle is an error naming the file. logger receives
// reload results.
func newTokenController(c *Config, logger *slog.Logger) (*tokenController, error) {
	tc := &tokenController{bundle: c.TokenCertificate, base: tokenOptions(c), logger: logger}
	k, err := tc.load()
	if err != nil {
		return nil, err
	}
	tc.current.Store(k)
	tc.lastCheck.Store(time.Now().UnixNano())
	return tc, nil
}

// Authorized checks the request's bearer token with the current verifier,
// after looking for a changed bundle at most once per bundleCheckInterval.
// Challenges and errors are distribution's own.
func (tc *tokenController) Authorized(r *http.Request, access ...auth.Access) (*auth.Grant, error) {
	tc.reloadIfChanged()
	return tc.current.Load().inner.Authorized(r, access...)
}

// algorithms returns the signing algorithms currently accepted.
func (tc *tokenController) algorithms() []any { return tc.current.Load().algs }

// Reload reads token_certificate again, on SIGHUP. On any error it keeps
// the current verifier, logs the error and returns it.
func (tc *tokenController) Reload() error {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.reloadLocked()
}

// reloadLocked replaces the current verifier. tc.mu must be held.
func (tc *tokenController) reloadLocked() error {
	k, err := tc.load()
	if err != nil {
		tc.failed = k.stamp
		tc.logger.Error("token_certificate not reloaded, keeping the current keys", "file", tc.bundle, "err", err)
		return err
	}
	tc.current.Store(k)
	tc.failed = bundleStamp{}
	tc.logger.Info("token_certificate loaded", "file", tc.bundle, "certificates", k.certs, "token_algorithms", k.algs)
	return nil
}

// load stats, then reads, the bundle, and builds distribution's verifier
// from it. The bundle is read twice, once here for the algorithms and once
// by distribution for the keys; statting first means a replacement between
// the two reads is seen as a change, and loaded again, at the next check.
// The returned tokenKeys always carries the stamp, even with an error.
func (tc *tokenController) load() (*tokenKeys, error) {
	stamp := statBundle(tc.bundle)
	algs, certs, err := readTokenBundle(tc.bundle)
	if err != nil {
		return &tokenKeys{stamp: stamp}, err
	}
	options := maps.Clone(tc.base)
	options["signingalgorithms"] = algs
	inner, err := auth.GetAccessController("token", options)
	if err != nil {
		return &tokenKeys{stamp: stamp}, fmt.Errorf("token_certificate %s: %w", tc.bundle, err)
	}
	return &tokenKeys{inner: inner, algs: algs, certs: certs, stamp: stamp}, nil
}

// reloadIfChanged is the request path's check. At most once per
// bundleCheckInterval one request stats the bundle and, if it changed,
// reloads it while the others carry on with the current verifier. A bundle
// that failed to load is logged once, not at every check.
func (tc *tokenController) reloadIfChanged() {
	now := time.Now().UnixNano()
	last := tc.lastCheck.Load()
	if now-last < int64(bundleCheckInterval) || !tc.lastCheck.CompareAndSwap(last, now) {
		return
	}
	stamp := statBundle(tc.bundle)
	if stamp == tc.current.Load().stamp {
		return
	}
	if !tc.mu.TryLock() {
		return // a Reload is running; it reads the new bundle
	}
	defer tc.mu.Unlock()
	if stamp == tc.failed || stamp == tc.current.Load().stamp {
		return // already failed and logged, or just loaded
	}
	_ = tc.reloadLocked() // logged inside
}

// statBundle returns the bundle's stamp, or missingBundle if it cannot be
// statted (the read that follows reports why).
func statBundle(path string) bundleStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return missingBundle
	}
	return bundleStamp{modTime: fi.ModTime().UnixNano(), size: fi.Size()}
}
