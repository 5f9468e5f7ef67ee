package gc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// StateDir is the directory, inside root_directory and beside
// distribution's own "docker" tree, that holds the collection's lock files
// and its status file. Being on the storage filesystem, it moves with a
// failover.
const StateDir = "stx-registry"

// Lock files in StateDir. A commit step holds lockFile shared; a
// collection holds it exclusive. flock(2) lets new shared holders in while
// an exclusive one waits, so a collection could wait for ever behind a
// steady stream of pushes; gateFile is the turnstile that prevents it: a
// collection holds it exclusive while it waits for, and then holds,
// lockFile, and a commit step passes through it (shared, for two system
// calls) before taking lockFile.
const (
	lockFile = "gc.lock"
	gateFile = "gc.gate"
)

// Lock is the collection lock of one storage root: flock(2) on two files
// under StateDir, so it works between the daemon and a separate "stx-registry
// gc" process, and is released by the kernel when a holder dies, even by
// kill -9. The zero value is not usable; use OpenLock.
type Lock struct {
	dir string
}

// OpenLock creates StateDir and its lock files under root if they are
// missing (mode 0700 and 0600) and returns the root's lock.
func OpenLock(root string) (*Lock, error) {
	dir := filepath.Join(root, StateDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("gc: %w", err)
	}
	for _, name := range []string{lockFile, gateFile} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
		f.Close()
	}
	return &Lock{dir: dir}, nil
}

// flock opens name and takes how (LOCK_SH or LOCK_EX) on it, waiting; the
// lock lasts until the returned file is closed. ctx cancels the wait.
func (l *Lock) flock(ctx context.Context, name string, how int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(l.dir, name), os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		for {
			err := syscall.Flock(int(f.Fd()), how)
			if !errors.Is(err, syscall.EINTR) {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("gc: locking %s: %w", name, err)
		}
		return f, nil
	case <-ctx.Done():
		// Closing the file ends the wait or drops the lock just taken.
		go func() { <-done; f.Close() }()
		return nil, ctx.Err()
	}
}

// Shared is taken by a commit step of a push (blob upload commit, blob
// mount, manifest PUT): it waits while a collection runs. Call the
// returned function to release it.
func (l *Lock) Shared(ctx context.Context) (release func(), err error) {
	gate, err := l.flock(ctx, gateFile, syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	lock, err := l.flock(ctx, lockFile, syscall.LOCK_SH)
	gate.Close()
	if err != nil {
		return nil, err
	}
	return func() { lock.Close() }, nil
}

// Exclusive is taken by a collection: it closes the gate to new commit
// steps, waits for those in flight to finish, and holds both until the
// returned function is called.
func (l *Lock) Exclusive(ctx context.Context) (release func(), err error) {
	gate, err := l.flock(ctx, gateFile, syscall.LOCK_EX)
	if err != nil {
		return nil, err
	}
	lock, err := l.flock(ctx, lockFile, syscall.LOCK_EX)
	if err != nil {
		gate.Close()
		return nil, err
	}
	return func() { lock.Close(); gate.Close() }, nil
}
