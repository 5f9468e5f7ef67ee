// Package app builds the registry's request path: it translates our
// configuration into distribution's (in code; operators never write
// distribution YAML), builds distribution's handler, points distribution's
// logrus output at our log with our level and format, and wraps the
// handler with the middlewares we own.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"

	"stx-registry/registry/accesslog"
	"stx-registry/registry/config"
	"stx-registry/registry/frontdoor"
	"stx-registry/registry/gc"
	"stx-registry/registry/health"
	"stx-registry/registry/metrics"
	"stx-registry/registry/mount"
	"stx-registry/registry/readiness"
	"stx-registry/registry/referrers"
	"stx-registry/registry/reserve"
	"stx-registry/registry/tokenauth"
	"stx-registry/shared/buildinfo"
	"stx-registry/shared/serve"
)

// NewHandler builds the full request path:
//
//	Progress → metrics.Count → accesslog → /metrics → /healthz → /readyz →
//	mount.Fallback → reserve → gc.CommitSteps → frontdoor → referrers → distribution
//
// Progress keeps a slow push or pull alive while bytes move and cuts it
// when they stop, once the front door has let it renew the deadlines: only
// after the token is verified, and only for a push or pull body. The front
// door stands directly before distribution, so that each request
// distribution sees, the mount fallback's retry included, has passed it.
// The storage reserve refuses new uploads below storage_reserve before any
// byte is read; gc.CommitSteps holds the garbage-collection lock around a
// push's commit steps. referrers serves the OCI referrers API that
// distribution lacks (the front door knows its route, so that its requests
// are checked and refused like any other) and records the referrers among
// the manifests distribution stores, inside the commit step of their PUT.
// shutdown stops distribution's background work and
// releases the storage root.
func NewHandler(ctx context.Context, cfg *config.Config, tokens *tokenauth.Controller, logger *slog.Logger) (h http.Handler, shutdown func(), err error) {
	if err := configureDistributionLog(os.Stderr, cfg.LogFormat, cfg.LogLevel); err != nil {
		return nil, nil, err
	}
	dcfg, err := distributionConfig(cfg, tokens)
	if err != nil {
		return nil, nil, err
	}
	root, err := health.Open(cfg.RootDirectory, cfg.RequireMount, logger)
	if err != nil {
		return nil, nil, err
	}
	// The app outlives ctx: requests in flight still use it while serve.Run
	// drains them; shutdown stops it afterwards.
	app, err := newApp(context.WithoutCancel(ctx), dcfg)
	if err != nil {
		root.Close()
		return nil, nil, err
	}
	lock, err := gc.OpenLock(cfg.RootDirectory)
	if err != nil {
		app.Shutdown()
		root.Close()
		return nil, nil, err
	}
	records, err := referrers.Open(cfg.RootDirectory)
	if err != nil {
		app.Shutdown()
		root.Close()
		return nil, nil, err
	}
	guard := &reserve.Guard{Root: cfg.RootDirectory, Reserve: cfg.StorageReserve, Auth: tokens, Logger: logger}
	ready := &readiness.Checker{Healthy: root.Check, Root: cfg.RootDirectory, Guard: guard, Logger: logger,
		TokenKeys: func() error { return tokenKeysLoaded(tokens) }}
	m := metrics.New(cfg.RootDirectory, buildinfo.Version(), guard, logger)
	h = referrers.Handler(app, records, tokens, logger)
	h = frontdoor.Handler(h, logger)
	h = gc.CommitSteps(lock, logger, h)
	h = guard.Handler(h)
	h = mount.Fallback(h, logger)
	h = readiness.Handler(ready, h)
	h = health.Handler(root, h)
	h = m.Handler(cfg.MetricsNetworks, h)
	h = accesslog.Handler(h, logger)
	h = m.Count(h)
	// Under Progress, RegistryTimeouts.Read and Write become idle limits
	// that every transferred chunk of an authorized push or pull renews.
	h = serve.Progress(h, serve.RegistryTimeouts.Read)
	shutdown = func() {
		if err := app.Shutdown(); err != nil {
			logger.Error("registry shutdown", "err", err)
		}
		records.Close()
		root.Close()
	}
	return h, shutdown, nil
}

// tokenKeysLoaded is /readyz's token check: a bundle with at least one key
// is loaded.
func tokenKeysLoaded(tokens *tokenauth.Controller) error {
	if len(tokens.Algorithms()) == 0 {
		return errors.New("no token_certificate key loaded")
	}
	return nil
}
