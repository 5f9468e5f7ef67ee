// Command stx-token-server issues the short-lived JWTs that stx-registry
// accepts: it implements the Docker token authentication protocol (GET with
// Basic auth, and the OAuth2 password grant by POST) over HTTPS.
//
// Usage:
//
//	stx-token-server [-f CONFIG] [-t]
//	stx-token-server passwd -f USERS_FILE [-d] USER
//	stx-token-server revoke [-f CONFIG] (-user USER | -all)
//	stx-token-server unlock [-f CONFIG] USER
//	stx-token-server jwks [-f CONFIG]
//	stx-token-server -version
//
// Configuration is one file, stx-token-server.conf(5), by default
// /etc/stx-token-server/stx-token-server.conf. With -t the file, the keys,
// the users file or keystone_ca are checked (Keystone itself is not
// contacted) and the daemon exits 0 or 1.
//
// The daemon listens on exactly one address (loopback or in a
// management_network) and serves:
//
//	GET  /token, /token/   Basic auth; service, scope, account, offline_token, client_id
//	POST /token, /token/   OAuth2 form, grant_type=password
//	GET  /healthz          liveness, no authentication
//	GET  /readyz           readiness: 200 when the backend (Keystone) answers, else 503
//	GET  /metrics          Prometheus text format, to metrics_network clients only
//
// Passwords are checked through layers: a credential cache of recent
// successes (cache_ttl); a brute-force backoff per user, and per client
// address for password sprayers, that answers 429 with Retry-After
// (backoff_free, backoff_max, backoff_spray_users); a Keystone lockout
// guard that never sends Keystone the failure that would lock an account
// (keystone_lockout_attempts; "unlock USER" clears it while the daemon
// runs); caps on password checks in flight per user, per address and in
// all (backend_per_user, backend_per_address, backend_concurrency,
// backend_queue; excess gets 429 or 503 at once); and the backend.
//
// Every reply except /metrics is JSON. Users are authorized only within
// their own namespace; admins and public namespaces come from the configuration.
//
// Token reuse: an identical request (same user, service, backend admin flag,
// granted scopes and refusals) within token_reuse_percent of token_ttl gets the
// token signed for the first one again, while it has at least 60 s left;
// SIGHUP drops every kept token. 0 signs every token.
//
// Logs go to stderr through log/slog: one "token" audit line per request
// with the client, the subject, the requested and granted scopes and the
// token's jti. Passwords, tokens and Authorization headers are never logged.
//
// Refresh tokens: with state_directory, a docker login (offline_token=true,
// or access_type=offline in a POST) also gets a refresh_token, which later
// POSTs exchange (grant_type=refresh_token) for access tokens; the same
// refresh token is returned every time. A refresh token is 256 random bits,
// bound to its user (and Keystone user ID) and service, valid for
// refresh_token_ttl; only its SHA-256 is kept, in an append-only log
// state_directory/refresh-tokens, fsynced before the reply, which a
// failover partner reads from the same (DRBD) file system. Each user keeps
// at most refresh_token_user_max live refresh tokens, refresh_token_client_max
// per client_id, the oldest dropped. Each refresh re-checks the user: in the
// users file on every refresh, in Keystone every keystone_recheck_interval
// when keystone_service_user is set. "revoke"
// deletes a user's (or all) refresh tokens while the daemon runs; the next
// refresh is refused.
//
// Signals: SIGTERM and SIGINT stop gracefully; SIGHUP re-reads the TLS
// certificate (it is also re-read when its files change) and the signing
// keys: the configuration file is read again and its signing_key list
// replaces the running one (a bad key keeps the old ones; other changed
// keywords are logged as needing a restart). "jwks" prints the public
// signing keys as a JWKS. The users file is re-read when it changes.
//
// Exit status is 0 after a clean stop, -t success, -h or -version, 1 on
// any configuration, listen or TLS error, 2 on a usage error (the error and
// the usage text are on stderr). A configuration file with several errors
// reports them all.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"stx-registry/shared/buildinfo"
	"stx-registry/shared/logging"
	"stx-registry/shared/serve"
	"stx-registry/shared/tlsconf"
	"stx-registry/token/access"
	"stx-registry/token/authn"
	"stx-registry/token/config"
	"stx-registry/token/issuer"
	"stx-registry/token/keystone"
	"stx-registry/token/metrics"
	"stx-registry/token/refresh"
	"stx-registry/token/reuse"
	"stx-registry/token/server"
	"stx-registry/token/unlock"
)

// usage is the synopsis printed, with the daemon's flags, for -h and with
// every usage error.
const usage = `usage: stx-token-server [-f CONFIG] [-t]
       stx-token-server passwd -f USERS_FILE [-d] USER
       stx-token-server revoke [-f CONFIG] (-user USER | -all)
       stx-token-server unlock [-f CONFIG] USER
       stx-token-server jwks [-f CONFIG]
       stx-token-server probe [-n] [-f CONFIG] [-timeout 5s]
       stx-token-server -version
`

// main dispatches to the subcommand named by the first argument, or runs
// the daemon.
func main() {
	cmd := ""
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	var err error
	switch cmd {
	case "probe":
		os.Exit(probeMain(os.Args[2:]))
	case "passwd":
		err = passwdMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
	case "revoke":
		err = revokeMain(os.Args[2:], os.Stdout, os.Stderr)
	case "unlock":
		err = unlockMain(os.Args[2:], os.Stdout, os.Stderr)
	case "jwks":
		err = jwksMain(os.Args[2:], os.Stdout, os.Stderr)
	default:
		err = daemonMain(os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil && !errors.Is(err, errHelp) {
		fatal(err)
	}
}

// daemonMain parses the daemon's flags and runs it until SIGTERM or SIGINT,
// or checks the configuration (-t), or prints the version.
func daemonMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stx-token-server", usage, stdout, stderr)
	file := fs.String("f", config.DefaultFile, "configuration `file`")
	check := fs.Bool("t", false, "check the configuration and exit")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fs.fail(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *version {
		_, err := fmt.Fprintln(stdout, "stx-token-server", buildinfo.Version())
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return run(ctx, *file, *check)
}

// fatal is the one way out on error: the message, with a hint for the
// common case, and status 1.
func fatal(err error) {
	if errors.Is(err, errUsage) {
		os.Exit(2) // the usage text is already out
	}
	fmt.Fprintf(os.Stderr, "stx-token-server: %v\n", err)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "stx-token-server: hint: give the configuration with -f, see stx-token-server.conf(5)")
	}
	os.Exit(1)
}

func run(ctx context.Context, file string, checkOnly bool) error {
	cfg, err := config.Load(file)
	if err != nil {
		return err
	}
	log, err := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	srv, auth, tlsr, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	if checkOnly {
		fmt.Println("configuration ok")
		return nil
	}
	if cfg.KeystoneLockoutWindow != 0 {
		log.Warn("keystone_lockout_window is no longer used and is ignored: the lockout guard holds a user until a success or stx-token-server unlock")
	}
	if cfg.StateDirectory != "" {
		if err := unlock.Prepare(cfg.StateDirectory); err != nil {
			return err
		}
		go unlock.Watch(ctx, cfg.StateDirectory, auth.Unlock, log)
	}
	log.Info("starting", "version", buildinfo.Version(), "config", file, "services", cfg.Services,
		"algorithm", srv.Issuer().Algorithm(), "backend", cfg.AuthBackend,
		"refresh_tokens", cfg.StateDirectory != "", "token_reuse_window", cfg.ReuseWindow())
	return serve.Run(ctx, serve.Options{
		Addr:     cfg.Listen,
		Handler:  srv.Handler(),
		TLS:      tlsr,
		MinTLS:   cfg.MinTLS,
		Timeouts: serve.APITimeouts,
		Logger:   log,
		OnHangup: func() { srv.ReloadSigningKeys(file, cfg) },
	})
}

// newServer builds everything the daemon needs from a validated config, so
// that -t checks exactly what a start would.
func newServer(cfg *config.Config, log *slog.Logger) (*server.Server, *authn.Chained, *tlsconf.Reloader, error) {
	tlsr, err := tlsconf.New(cfg.TLSCertificate, cfg.TLSKey, log)
	if err != nil {
		return nil, nil, nil, err
	}
	iss, err := issuer.Load(cfg.Issuer, cfg.TokenTTL, cfg.SigningKeys)
	if err != nil {
		return nil, nil, nil, err
	}
	policy, err := access.NewPolicy(cfg.PolicyConfig())
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		backend authn.Authenticator
		users   authn.UserChecker // the refresh re-check, if any
		recheck time.Duration     // 0: on every refresh
	)
	switch cfg.AuthBackend {
	case "users":
		uf, err := authn.NewUsersFile(cfg.UsersFile, log)
		if err != nil {
			return nil, nil, nil, err
		}
		backend, users = uf, authn.NewUsersFileChecker(uf)
	case "keystone":
		var svc keystone.Service
		if cfg.KeystoneServiceUser != "" {
			pw, err := readSecretFile(cfg.KeystoneServicePasswordFile)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("keystone_service_password_file: %w", err)
			}
			svc = keystone.Service{User: cfg.KeystoneServiceUser, Password: pw,
				Project: cfg.KeystoneServiceProject, Domain: cfg.KeystoneServiceDomain}
		}
		ks, err := keystone.New(keystone.Config{
			URL:          cfg.KeystoneURL,
			UserDomain:   cfg.KeystoneUserDomain,
			CAFile:       cfg.KeystoneCA,
			Timeout:      cfg.KeystoneTimeout,
			AdminRole:    cfg.AdminRole,
			AdminProject: cfg.AdminProject,
			Service:      svc,
		}, log)
		if err != nil {
			return nil, nil, nil, err
		}
		backend = ks
		if svc.User != "" {
			users, recheck = ks, cfg.KeystoneRecheckInterval
		}
	default:
		return nil, nil, nil, fmt.Errorf("auth_backend %q is not supported", cfg.AuthBackend)
	}
	m := metrics.New(cfg.AuthBackend, buildinfo.Version())
	var ready authn.Checker
	if ch, ok := backend.(authn.Checker); ok {
		ready = ch
	}
	auth := authn.Chain(backend, authn.ChainConfig{
		Cache:   authn.CacheConfig{TTL: cfg.CacheTTL, Size: cfg.CacheSize, Domain: cfg.KeystoneUserDomain},
		Backoff: cfg.BackoffConfig(),
		Gate:    cfg.GateConfig(serve.APITimeouts.Write),
	}, m)
	var store refresh.Store
	if cfg.StateDirectory != "" {
		if store, err = refresh.NewFileStore(cfg.StateDirectory, cfg.RefreshLimits(), log); err != nil {
			return nil, nil, nil, err
		}
	}
	srv := server.New(server.Options{
		Auth:            auth,
		Policy:          policy,
		Issuer:          iss,
		Reuse:           reuse.New(cfg.ReuseWindow()),
		Services:        cfg.Services,
		Log:             log,
		Metrics:         m,
		MetricsNetworks: cfg.MetricsNetworks,
		Ready:           ready,
		BackendName:     cfg.AuthBackend,
		Refresh:         store,
		RefreshTTL:      cfg.RefreshTokenTTL,
		Users:           users,
		Recheck:         recheck,
	})
	return srv, auth, tlsr, nil
}
