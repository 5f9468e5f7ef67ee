// Package files owns how both daemons read and write the files they trust:
// a bounded read of a regular file, a private read that also refuses a file
// group or others may access (for secrets and keys), an atomic replace
// (temporary file, fsync, rename, fsync of the directory), and Watched, a
// value loaded from files and reloaded when they change.
package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrTooLarge matches, with errors.Is, the error of a read over its bound.
var ErrTooLarge = errors.New("file too large")

// tooLargeError names the file and the bound.
type tooLargeError struct {
	path string
	max  int64
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes", e.path, e.max)
}

func (e *tooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Read returns the contents of the regular file at path, which must be at
// most max bytes. Errors name the path and, for an oversized file, the
// bound; that error wraps ErrTooLarge and comes with the first max+1 bytes,
// for a caller that salvages what it can (nil with every other error). A
// missing file's error wraps fs.ErrNotExist.
func Read(path string, max int64) ([]byte, error) {
	return read(path, max, false)
}

// ReadPrivate is Read for secrets: the file must also have no permission
// bits for group or others.
func ReadPrivate(path string, max int64) ([]byte, error) {
	return read(path, max, true)
}

func read(path string, max int64, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the path
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if m := fi.Mode().Perm(); private && m&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o, group or others may read it: chmod 600 %s", path, m, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > max {
		return data, &tooLargeError{path, max}
	}
	return data, nil
}

// WriteAtomic replaces path with data, so that a reader sees either the old
// or the new contents and a crash leaves one of them on disk: a new
// temporary file in the same directory (created with O_EXCL and mode), a
// write, fsync, rename over path, and fsync of the directory.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	// CreateTemp opens with O_EXCL and a random name; mode is set before
	// any data is written.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
