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
// Garbage collection: "stx-registry gc [-n] [-delete-untagged]" reclaims,
// while the daemon serves, the blobs and manifests nothing references,
// under a lock file in root_directory that the daemon's push commit steps
// also take (package gc); "stx-registry usage" prints bytes per
// namespace. Below storage_reserve new uploads from non-admins are
// refused (package reserve). /readyz says whether pushes can be taken;
// /metrics serves Prometheus text to metrics_network addresses.
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
// Exit status: 0 after a clean shutdown, -t success, -h or -version; 2 on
// a usage error, with the usage text; 1 on any other error. Errors are
// printed on standard error after "stx-registry: ". A configuration file
// with several errors reports them all, one per line. -version prints
// "stx-registry" and the version.
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
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "probe":
			os.Exit(probeMain(os.Args[2:]))
		case "gc":
			os.Exit(gcMain(os.Args[2:], os.Stdout, os.Stderr))
		case "usage":
			os.Exit(usageMain(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// usageLine is the synopsis printed with -h and with every usage error.
const usageLine = "usage: stx-registry [-t] [-f file] | -version | probe [-n] [-f file] [-timeout duration] |\n" +
	"       gc [-n] [-delete-untagged] [-f file] | usage [-f file]"

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // configuration, storage, certificate, listen or serve error
	exitUsage = 2 // bad flags or arguments
)

// cli runs stx-registry with args (without the program name) and returns
// the exit status. Errors go to stderr with "stx-registry: " in front; a
// usage error is followed by the usage text.
func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stx-registry", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are printed below, with the usage
	configFile := fs.String("f", config.DefaultFile, "configuration `file`")
	checkOnly := fs.Bool("t", false, "check the configuration, storage root and certificates, then exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	usage := func(w io.Writer) {
		fmt.Fprintln(w, usageLine)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	usageError := func(err error) int {
		fmt.Fprintf(stderr, "stx-registry: %v\n", err)
		usage(stderr)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected argument %q: stx-registry takes only flags", fs.Arg(0)))
	}
	if *showVersion {
		fmt.Fprintln(stdout, "stx-registry", buildinfo.Version())
		return exitOK
	}

	s, err := prepare(*configFile)
	if err != nil {
		return fail(stderr, err)
	}
	if *checkOnly {
		fmt.Fprintln(stdout, "configuration ok")
		return exitOK
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, s); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// fail is the one way stx-registry reports an error it exits on.
func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "stx-registry: %v\n", err)
	return exitError
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
