package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(data), mode)
		os.Chmod(p, mode)
		return p
	}
	if pw, err := readSecretFile(write("good", "s3cret\nignored\n", 0o600)); err != nil || pw != "s3cret" {
		t.Errorf("good file: %q %v", pw, err)
	}
	for _, tt := range []struct{ name, path, want string }{
		{"readable", write("open", "x\n", 0o644), "chmod 600"},
		{"empty", write("empty", "\n", 0o600), "empty"},
		{"large", write("large", strings.Repeat("x", maxSecretFileBytes+1), 0o600), "larger"},
	} {
		if _, err := readSecretFile(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}
