// Package storageroot owns the checks of the registry's storage root,
// root_directory: an absolute, clean path to a real directory owned by the
// daemon's user with mode 0700 and, with require_mount, a mount point
// according to /proc/self/mountinfo.
package storageroot

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const (
	// mountinfoPath lists the mounts seen by this process (proc(5)).
	mountinfoPath = "/proc/self/mountinfo"
	// maxMountinfoBytes bounds how much of mountinfo is read: about
	// 100 000 mounts of typical length, far more than a controller has.
	maxMountinfoBytes = 32 << 20
	// maxMountinfoLine bounds one mountinfo line: two escaped paths of
	// PATH_MAX (4096) bytes, each escape taking up to 4 bytes, plus options.
	maxMountinfoLine = 64 << 10
)

// Check checks the storage root at start, in -t and for /healthz: it
// must be an absolute path to a real directory (not a symbolic link) owned
// by the effective user with no group or other permissions, and, with
// requireMount, a mount point.
func Check(path string, requireMount bool) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return fmt.Errorf("root_directory %q must be an absolute path in clean form", path)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("root_directory %s does not exist: create it with mode 0700 or mount the storage", path)
	}
	if err != nil {
		return fmt.Errorf("root_directory: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("root_directory %s is a symbolic link: give the real directory", path)
	}
	if !fi.IsDir() {
		return fmt.Errorf("root_directory %s is not a directory", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("root_directory %s: cannot read the owner", path)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		return fmt.Errorf("root_directory %s is owned by uid %d, but stx-registry runs as uid %d: chown %d %s", path, st.Uid, euid, euid, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("root_directory %s has mode %#o, open to group or others: chmod 700 %s", path, perm, path)
	}
	if requireMount {
		mounted, err := isMountPoint(path)
		if err != nil {
			return err
		}
		if !mounted {
			return fmt.Errorf("root_directory %s is not a mount point (require_mount yes): is the DRBD filesystem mounted?", path)
		}
	}
	return nil
}

// isMountPoint reports whether path is listed as a mount point in this
// process's mountinfo.
func isMountPoint(path string) (bool, error) {
	// mountinfo lists real paths; resolve symbolic links in the parents
	// (path itself was checked not to be a link).
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false, fmt.Errorf("root_directory: %w", err)
	}
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return false, fmt.Errorf("cannot check whether root_directory is a mount point: %w", err)
	}
	defer f.Close()
	points, err := parseMountPoints(io.LimitReader(f, maxMountinfoBytes))
	if err != nil {
		return false, fmt.Errorf("%s: %w", mountinfoPath, err)
	}
	for _, p := range points {
		if p == real {
			return true, nil
		}
	}
	return false, nil
}

// parseMountPoints returns the mount point (field 5) of every line of a
// mountinfo file, with the kernel's octal escapes decoded.
func parseMountPoints(r io.Reader) ([]string, error) {
	var points []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxMountinfoLine)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		// mount ID, parent ID, major:minor, root, mount point, ...
		if len(fields) < 5 {
			return nil, fmt.Errorf("line %d: want at least 5 fields, got %d", n, len(fields))
		}
		p, err := unescapeMountinfo(fields[4])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		points = append(points, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return points, nil
}

// unescapeMountinfo decodes the \NNN octal escapes the kernel writes for
// space, tab, newline and backslash in mountinfo paths (show_mountinfo,
// mangle in fs/proc_namespace.c).
func unescapeMountinfo(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v := 0
		for _, c := range []byte(s[i+1 : i+4]) {
			if c < '0' || c > '7' {
				return "", fmt.Errorf("bad escape in %q", s)
			}
			v = v*8 + int(c-'0')
		}
		if v > 0xff {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}
