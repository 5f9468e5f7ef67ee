// Package unlock owns the requests of "stx-token-server unlock USER", the
// token server's faillock --reset: the subcommand drops a request file in
// state_directory/unlock, and the running daemon, which looks at that
// directory every second, clears the user's failures and Keystone lockout
// guard and removes the file. A file system queue needs no control socket,
// works wherever the state directory is mounted (also on the failover
// partner's daemon after a switch) and is guarded by the directory's
// owner and mode 0700.
package unlock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"stx-registry/shared/files"
	"stx-registry/token/access"
)

const (
	// dirName is the request directory under state_directory.
	dirName = "unlock"
	// PollInterval is how often the daemon looks for requests.
	PollInterval = time.Second
	// maxRequestBytes bounds one request file: a user name and a newline.
	maxRequestBytes = access.MaxUsernameBytes + 1
	// maxPerPoll bounds the requests handled in one look, so that a full
	// directory cannot stall the daemon.
	maxPerPoll = 256
)

// Dir is the request directory under stateDir.
func Dir(stateDir string) string { return filepath.Join(stateDir, dirName) }

// Prepare makes the request directory (mode 0700) if it is missing; the
// daemon calls it at start.
func Prepare(stateDir string) error {
	if err := os.Mkdir(Dir(stateDir), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("unlock requests: %w", err)
	}
	return nil
}

// CheckUser is the rule for a user name in a request: what a login may
// carry.
func CheckUser(user string) error {
	switch {
	case user == "":
		return errors.New("unlock: a user name is required")
	case len(user) > access.MaxUsernameBytes:
		return fmt.Errorf("unlock: user name longer than %d bytes", access.MaxUsernameBytes)
	case strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("unlock: user name contains control characters")
	}
	return nil
}

// Request queues an unlock of user and returns the request file's path,
// which the daemon removes once it has handled it.
func Request(stateDir, user string) (string, error) {
	if err := CheckUser(user); err != nil {
		return "", err
	}
	if err := Prepare(stateDir); err != nil {
		return "", err
	}
	var id [8]byte
	rand.Read(id[:])
	path := filepath.Join(Dir(stateDir), "user-"+hex.EncodeToString(id[:]))
	if err := files.WriteAtomic(path, []byte(user+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("unlock: queueing the request: %w", err)
	}
	return path, nil
}

// Wait waits until the daemon has removed the request file at path, or
// until ctx ends.
func Wait(ctx context.Context, path string) error {
	t := time.NewTicker(PollInterval / 10)
	defer t.Stop()
	for {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Watch handles the requests under stateDir every PollInterval until ctx
// ends, calling unlock for each user.
func Watch(ctx context.Context, stateDir string, unlock func(user string) bool, log *slog.Logger) {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		Handle(stateDir, unlock, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Handle handles the requests queued under stateDir now. A bad request is
// logged and removed.
func Handle(stateDir string, unlock func(user string) bool, log *slog.Logger) {
	dir := Dir(stateDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("unlock requests: reading the directory failed", "dir", dir, "err", err)
		}
		return
	}
	for i, e := range entries {
		if i == maxPerPoll {
			break
		}
		if strings.HasPrefix(e.Name(), ".") { // a request being written
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := files.Read(path, maxRequestBytes)
		user := strings.TrimSuffix(string(data), "\n")
		if err == nil {
			err = CheckUser(user)
		}
		switch {
		case err != nil:
			log.Warn("unlock request ignored", "file", path, "err", err)
		case unlock(user):
			log.Info("unlocked: failed logins and the lockout guard cleared", "user", user)
		default:
			log.Info("unlock: no failed logins recorded for the user", "user", user)
		}
		if err := os.Remove(path); err != nil {
			log.Warn("unlock request: removing it failed", "file", path, "err", err)
		}
	}
}
