package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"stx-registry/token/config"
	"stx-registry/token/unlock"
)

// unlockWait is how long "unlock" waits for the daemon, which looks for
// requests every second, to pick its request up.
const unlockWait = 5 * time.Second

// unlockMain implements "stx-token-server unlock [-f CONFIG] USER", like
// faillock --reset: it asks the running daemon, through a request file in
// state_directory, to clear USER's failed logins and Keystone lockout
// guard, and waits until the daemon has done so. Run it as the service
// user, like revoke. Without state_directory there is no way to reach the
// daemon: restarting it clears every user's counts (see
// stx-token-server(8) for what that costs).
func unlockMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stx-token-server unlock", "usage: stx-token-server unlock [-f CONFIG] USER\n", stdout, stderr)
	file := fs.String("f", config.DefaultFile, "configuration `file`")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fs.fail(nil)
	}
	user := fs.Arg(0)
	if err := unlock.CheckUser(user); err != nil {
		return fs.fail(err)
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if cfg.StateDirectory == "" {
		return fmt.Errorf("%s: state_directory is not configured, so the daemon cannot be reached; restarting it clears every user's failed logins", *file)
	}
	path, err := unlock.Request(cfg.StateDirectory, user)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), unlockWait)
	defer cancel()
	if err := unlock.Wait(ctx, path); errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the daemon did not pick up the request within %s: is it running with state_directory %s? The request stays in %s", unlockWait, cfg.StateDirectory, path)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "unlocked user %q\n", user)
	return nil
}
