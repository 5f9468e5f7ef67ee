package main

import (
	"fmt"
	"io"
	"log/slog"

	"stx-registry/token/config"
	"stx-registry/token/refresh"
)

// revokeMain implements "stx-token-server revoke [-f CONFIG] (-user USER |
// -all)": it deletes refresh tokens from state_directory and prints how
// many. It takes the store's lock, so it is safe while the daemon runs, and
// the daemon refuses a revoked token on its next refresh. Run it as the
// service user: the state directory must belong to whoever runs it.
func revokeMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stx-token-server revoke", "usage: stx-token-server revoke [-f CONFIG] (-user USER | -all)\n", stdout, stderr)
	file := fs.String("f", config.DefaultFile, "configuration `file`")
	user := fs.String("user", "", "revoke the refresh tokens of `USER`")
	all := fs.Bool("all", false, "revoke every refresh token")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (*user == "") == !*all {
		return fs.fail(nil)
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if cfg.StateDirectory == "" {
		return fmt.Errorf("%s: state_directory is not configured, so there are no refresh tokens to revoke", *file)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	store, err := refresh.NewFileStore(cfg.StateDirectory, cfg.RefreshLimits(), log)
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
