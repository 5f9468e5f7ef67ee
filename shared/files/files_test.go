package files

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok", []byte("12345"), 0o600)
	open := write("open", []byte("12345"), 0o644)
	big := write("big", []byte("123456"), 0o600)
	tests := []struct {
		name    string
		path    string
		private bool
		want    string // empty: success
	}{
		{"fits", ok, false, ""},
		{"fits private", ok, true, ""},
		{"readable by others", open, false, ""},
		{"readable by others, private", open, true, "chmod 600 " + open},
		{"too large", big, false, big + " is larger than 5 bytes"},
		{"directory", dir, false, dir + " is not a regular file"},
		{"missing", filepath.Join(dir, "missing"), false, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := Read
			if tt.private {
				read = ReadPrivate
			}
			data, err := read(tt.path, 5)
			if tt.want == "" {
				if err != nil || string(data) != "12345" {
					t.Fatalf("got %q, %v", data, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if data, err := Read(big, 5); !errors.Is(err, ErrTooLarge) || string(data) != "123456" {
		t.Errorf("oversized read: %q, %v; want the first 6 bytes and ErrTooLarge", data, err)
	}
	if _, err := Read(filepath.Join(dir, "missing"), 5); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	for _, data := range []string{"one", "two, longer"} {
		if err := WriteAtomic(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != data {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := WriteAtomic(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
