package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"stx-registry/token/config"
	"stx-registry/token/refresh"
)

// errUsage is a command line mistake: main exits 2 after the usage text.
var errUsage = errors.New("usage error")

// revokeMain implements "stx-token-server revoke [-f CONFIG] (-user USER |
// -all)": it deletes refresh tokens from state_directory and prints how
// many. It takes the store's lock, so it is safe while the daemon runs, and
// the daemon refuses a revoked token on its next refresh. Run it as the
// service user: the state directory must belong to whoever runs it.
func revokeMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stx-token-server revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", config.DefaultFile, "configuration `file`")
	user := fs.String("user", "", "revoke the refresh tokens of `USER`")
	all := fs.Bool("all", false, "revoke every refresh token")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: stx-token-server revoke [-f CONFIG] (-user USER | -all)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 || (*user == "") == !*all {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if cfg.StateDirectory == "" {
		return fmt.Errorf("%s: state_directory is not configured, so there are no refresh tokens to revoke", *file)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	store, err := refresh.NewFileStore(cfg.StateDirectory, cfg.RefreshTokenMax, log)
	if err != nil {
		return err
	}
	if *all {
		n, err := store.RevokeAll()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d refresh tokens\n", n)
		return nil
	}
	n, err := store.RevokeUser(*user)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked %d refresh tokens of user %q\n", n, *user)
	return nil
}
