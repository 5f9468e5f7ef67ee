// Command stx-registry is the StarlingX private container registry: the
// Docker/OCI distribution API of distribution v3, served from its own HTTPS
// server and authorised by tokens from stx-token-server.
//
// Configuration: one file, /etc/stx-registry/stx-registry.conf unless -f
// gives another, of "keyword value" lines described in
// stx-registry.conf(5). An unknown keyword, a duplicate or a bad value stops
// the start with the file name and line. stx-registry -t checks the file,
// the storage root, the TLS pair and the token certificate, prints
// "configuration ok" and exits.
//
// Listener: HTTPS only, never plaintext, on exactly the listen address,
// which must be loopback or inside a management_network. Every request
// except GET/HEAD /healthz needs a bearer token from token_realm signed by
// a key in token_certificate. /healthz answers 200 {"status":"ok"} while the
// storage root is a healthy directory (and a mount point with
// require_mount yes), else 503 with the reason.
//
// Token keys: token_certificate is re-read when it changes (checked at most
// once a second, on the request path) and on SIGHUP, so the token server's
// signing key rotates without a restart: add the new certificate, switch
// the token server's key, wait for the old tokens to expire, remove the old
// certificate. A bad bundle is logged and the current keys kept.
//
// Storage: images live under root_directory on the local filesystem. With
// require_mount yes (the default) the registry refuses to start, and
// /healthz fails, unless root_directory is a mount point: on a controller
// it is the DRBD filesystem. Upload sessions are signed with a key made at
// start, so a push in progress during a restart restarts its current layer.
//
// Logs: standard error, in log_format (text or json) at log_level: one
// access line per request with method, path, status, bytes, duration and
// peer address, and distribution's own messages. Tokens, Authorization
// headers and query strings are never logged, except the mount and from
// parameters of a cross-repository blob mount.
//
// Signals: SIGTERM or SIGINT stop accepting connections and let requests
// in flight finish for a bounded time, then exit. SIGHUP re-reads
// tls_certificate and tls_key, and token_certificate (a bad new file is
// logged and the old one kept); all three are also re-read when they
// change. The configuration file is read only at start.
//
// Exit status: 0 after a clean shutdown, -t success or -version; 1 on any
// error, with "stx-registry: " and the reason on standard error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"stx-registry/registry/app"
	"stx-registry/registry/config"
	"stx-registry/registry/storageroot"
	"stx-registry/registry/tokenauth"
	"stx-registry/shared/buildinfo"
	"stx-registry/shared/logging"
	"stx-registry/shared/serve"
	"stx-registry/shared/tlsconf"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		os.Exit(probeMain(os.Args[2:]))
	}
	fs := flag.NewFlagSet("stx-registry", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors go through fatal
	configFile := fs.String("f", config.DefaultFile, "configuration `file`")
	checkOnly := fs.Bool("t", false, "check the configuration, storage root and certificates, then exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintln(os.Stdout, "usage: stx-registry [-t] [-f file] | -version")
			fs.PrintDefaults()
			return
		}
		fatal(fmt.Errorf("%w (see stx-registry -h)", err))
	}
	if fs.NArg() > 0 {
		fatal(fmt.Errorf("unexpected argument %q: stx-registry takes only flags", fs.Arg(0)))
	}
	if *showVersion {
		fmt.Println(buildinfo.Version())
		return
	}

	s, err := prepare(*configFile)
	if err != nil {
		fatal(err)
	}
	if *checkOnly {
		fmt.Println("configuration ok")
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, s); err != nil {
		fatal(err)
	}
}

// fatal is the one way stx-registry exits with an error.
func fatal(err error) {
	fmt.Fprintf(os.Stderr, "stx-registry: %v\n", err)
	os.Exit(1)
}

// setup is everything checked before serving; -t stops after building it.
type setup struct {
	cfg    *config.Config
	logger *slog.Logger
	tokens *tokenauth.Controller
	tls    *tlsconf.Reloader
}

// prepare loads the configuration and checks the storage root, the TLS pair
// and the token certificate.
func prepare(configFile string) (*setup, error) {
	cfg, err := config.Load(configFile)
	if err != nil {
		return nil, err
	}
	logger, err := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	if err := storageroot.Check(cfg.RootDirectory, cfg.RequireMount); err != nil {
		return nil, err
	}
	tokens, err := tokenauth.New(cfg, logger)
	if err != nil {
		return nil, err
	}
	tls, err := tlsconf.New(cfg.TLSCertificate, cfg.TLSKey, logger)
	if err != nil {
		return nil, err
	}
	return &setup{cfg: cfg, logger: logger, tokens: tokens, tls: tls}, nil
}

// run serves until ctx is cancelled.
func run(ctx context.Context, s *setup) error {
	handler, shutdown, err := app.NewHandler(ctx, s.cfg, s.tokens, s.logger)
	if err != nil {
		return err
	}
	defer shutdown()
	s.logger.Info("stx-registry starting", "version", buildinfo.Version(), "listen", s.cfg.Listen.String(),
		"root_directory", s.cfg.RootDirectory, "read_only", s.cfg.ReadOnly, "token_algorithms", s.tokens.Algorithms())
	err = serve.Run(ctx, serve.Options{
		Addr:     s.cfg.Listen,
		Handler:  handler,
		TLS:      s.tls,
		MinTLS:   s.cfg.MinTLS,
		Timeouts: serve.RegistryTimeouts,
		Logger:   s.logger,
		// SIGHUP also re-reads token_certificate; a failure is logged
		// inside and the current keys stay.
		OnHangup: func() { _ = s.tokens.Reload() },
	})
	if err != nil {
		return err
	}
	s.logger.Info("stx-registry stopped")
	return nil
}
