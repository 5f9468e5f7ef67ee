package storageroot

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestCheckRoot(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask-proof
			t.Fatal(err)
		}
		return p
	}
	good := mk("good", 0o700)
	open := mk("open", 0o755)
	groupRead := mk("group", 0o740)
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	otherOwner := mk("other", 0o700)
	chownErr := os.Chown(otherOwner, os.Geteuid()+1000, -1)

	tests := []struct {
		name         string
		path         string
		requireMount bool
		wantErr      string
		skip         bool
	}{
		{name: "good", path: good},
		{name: "relative", path: "var/lib/docker-distribution", wantErr: "absolute"},
		{name: "unclean", path: base + "//good", wantErr: "absolute"},
		{name: "missing", path: filepath.Join(base, "missing"), wantErr: "does not exist"},
		{name: "file", path: file, wantErr: "is not a directory"},
		{name: "symlink", path: link, wantErr: "symbolic link"},
		{name: "mode 0755", path: open, wantErr: "chmod 700 " + open},
		{name: "mode 0740", path: groupRead, wantErr: "chmod 700 " + groupRead},
		{name: "wrong owner", path: otherOwner, wantErr: "is owned by uid", skip: chownErr != nil},
		{name: "not a mount point", path: good, requireMount: true,
			wantErr: "root_directory " + good + " is not a mount point (require_mount yes): is the DRBD filesystem mounted?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skipf("cannot chown as uid %d: %v", os.Geteuid(), chownErr)
			}
			err := Check(tt.path, tt.requireMount)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check(%q) = %v, want an error containing %q", tt.path, err, tt.wantErr)
			}
		})
	}
}

// TestCheckRootMounted accepts a real mount point: a tmpfs mounted for the
// test when running as root, else skipped.
func TestCheckRootMounted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0700,size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if err := Check(dir, true); err != nil {
		t.Fatalf("Check on a tmpfs mount point: %v", err)
	}
}

func TestIsMountPoint(t *testing.T) {
	points, err := func() ([]string, error) {
		f, err := os.Open(mountinfoPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return parseMountPoints(f)
	}()
	if err != nil {
		t.Skipf("no mountinfo: %v", err)
	}
	if !slices.Contains(points, "/") {
		t.Fatalf("mountinfo has no / among %q", points)
	}
	for _, p := range []string{"/", points[len(points)-1]} {
		if _, err := os.Lstat(p); err != nil {
			continue // a mount point hidden by another mount or out of reach
		}
		ok, err := isMountPoint(p)
		if err != nil || !ok {
			t.Errorf("isMountPoint(%q) = %v, %v; want true", p, ok, err)
		}
	}
	ok, err := isMountPoint(t.TempDir())
	if err != nil || ok {
		t.Errorf("isMountPoint(temp dir) = %v, %v; want false", ok, err)
	}
}

func TestParseMountPoints(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{name: "typical", in: "22 27 0:21 / /proc rw,relatime - proc proc rw\n" +
			"150 27 147:8 / /var/lib/docker-distribution rw,relatime shared:80 - ext4 /dev/drbd8 rw\n",
			want: []string{"/proc", "/var/lib/docker-distribution"}},
		{name: "escaped blank", in: `36 35 98:0 /mnt1 /mnt/my\040disk rw,noatime master:1 - ext3 /dev/root rw` + "\n",
			want: []string{"/mnt/my disk"}},
		{name: "escaped tab newline backslash", in: `1 1 0:1 / /a\011b\012c\134d rw - tmpfs tmpfs rw` + "\n",
			want: []string{"/a\tb\nc\\d"}},
		{name: "empty", in: "", want: nil},
		{name: "short line", in: "1 2 0:1 /\n", wantErr: true},
		{name: "truncated escape", in: `1 1 0:1 / /a\04 rw - tmpfs tmpfs rw` + "\n", wantErr: true},
		{name: "non-octal escape", in: `1 1 0:1 / /a\09x rw - tmpfs tmpfs rw` + "\n", wantErr: true},
		{name: "escape too large", in: `1 1 0:1 / /a\777 rw - tmpfs tmpfs rw` + "\n", wantErr: true},
		{name: "line too long", in: "1 1 0:1 / /" + strings.Repeat("a", maxMountinfoLine) + " rw - t t rw\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMountPoints(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseMountPoints(f *testing.F) {
	f.Add("22 27 0:21 / /proc rw,relatime - proc proc rw\n")
	f.Add(`36 35 98:0 /mnt1 /mnt/my\040disk rw,noatime master:1 - ext3 /dev/root rw` + "\n")
	f.Add(`1 1 0:1 / /a\011b\012c\134d rw - tmpfs tmpfs rw`)
	f.Add(`1 1 0:1 / /a\04`)
	f.Fuzz(func(t *testing.T, in string) {
		points, err := parseMountPoints(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, p := range points {
			if p == "" {
				t.Fatalf("empty mount point from %q", in)
			}
		}
	})
}
