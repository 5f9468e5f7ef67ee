package gc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
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
	// gateClosed is maxGateClosed; tests shorten it.
	gateClosed time.Duration
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
	return &Lock{dir: dir, gateClosed: maxGateClosed}, nil
}

// lockPoll is how often a waiting lock is tried again: flock(2) cannot be
// interrupted, so waits poll with LOCK_NB, which ends with ctx and leaves
// no blocked system call behind.
const lockPoll = 2 * time.Millisecond

// Bounds on how long a collection keeps new commit steps out while it
// waits for those in flight (a slow client's final PUT holds its step for
// as long as its body takes): after maxGateClosed it opens the gate for
// gateReopen and tries again.
const (
	maxGateClosed = 5 * time.Second
	gateReopen    = 200 * time.Millisecond
)

// flock opens name and takes how (LOCK_SH or LOCK_EX) on it, waiting until
// ctx ends; the lock lasts until the returned file is closed.
func (l *Lock) flock(ctx context.Context, name string, how int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(l.dir, name), os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	var tick *time.Ticker
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			if tick != nil {
				tick.Stop()
			}
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("gc: locking %s: %w", name, err)
		}
		if tick == nil {
			tick = time.NewTicker(lockPoll)
			defer tick.Stop()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		}
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
// returned function is called. If the steps in flight take longer than
// maxGateClosed, it reopens the gate for gateReopen and starts again, so
// that one slow upload never holds every other push for long.
func (l *Lock) Exclusive(ctx context.Context) (release func(), err error) {
	for {
		gate, err := l.flock(ctx, gateFile, syscall.LOCK_EX)
		if err != nil {
			return nil, err
		}
		wait, cancel := context.WithTimeout(ctx, l.gateClosed)
		lock, err := l.flock(wait, lockFile, syscall.LOCK_EX)
		cancel()
		if err == nil {
			return func() { lock.Close(); gate.Close() }, nil
		}
		gate.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		select {
		case <-time.After(gateReopen):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
