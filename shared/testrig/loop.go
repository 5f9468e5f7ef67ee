package testrig

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// LoopDevice makes a fresh ext4 filesystem of size bytes in a sparse image
// file under dir (no blocks reserved for root, so that the free space a
// daemon running as root sees is all there is) and attaches it to a free
// loop device, which it returns with the function that detaches it. It
// needs root, losetup and mkfs.ext4: a real block device for tests that
// mount a storage root (failover, a full disk).
func LoopDevice(dir string, size int64) (device string, detach func() error, err error) {
	img := filepath.Join(dir, "ext4.img")
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", nil, err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", nil, err
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("mkfs.ext4: %w\n%s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		return "", nil, fmt.Errorf("losetup: %w\n%s", err, out)
	}
	device = strings.TrimSpace(string(out))
	detach = func() error {
		if out, err := exec.Command("losetup", "-d", device).CombinedOutput(); err != nil {
			return fmt.Errorf("losetup -d %s: %w\n%s", device, err, out)
		}
		return nil
	}
	return device, detach, nil
}
