package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStorageCommands runs gc and usage on an empty root: a collection
// that removes nothing, and a usage table with only the total.
func TestStorageCommands(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "storage")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "stx-registry.conf")
	lines := []string{
		"listen 127.0.0.1:9001",
		"tls_certificate " + filepath.Join(dir, "tls.pem"),
		"tls_key " + filepath.Join(dir, "tls.key"),
		"root_directory " + root,
		"require_mount no",
		"gc_grace 1s",
		"token_realm https://127.0.0.1:9002/token/",
		"token_service 127.0.0.1:9001",
		"token_issuer test",
		"token_certificate " + filepath.Join(dir, "token.pem"),
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		main       func([]string, *bytes.Buffer, *bytes.Buffer) int
		args       []string
		wantStatus int
		wantOut    []string
		wantErr    string
	}{
		{"gc dry run", gcCmd, []string{"-n", "-f", conf}, 0, []string{"gc: would remove 0 blobs (0 bytes, 0B), 0 manifests, 0 layer links"}, ""},
		{"gc", gcCmd, []string{"-delete-untagged", "-f", conf}, 0, []string{"gc: removed 0 blobs (0 bytes, 0B), 0 manifests"}, ""},
		{"gc help", gcCmd, []string{"-h"}, 0, []string{"usage: stx-registry gc [-n] [-delete-untagged] [-f file]"}, ""},
		{"gc argument", gcCmd, []string{"now"}, 2, nil, `unexpected argument "now"`},
		{"gc bad flag", gcCmd, []string{"-x"}, 2, nil, "usage: stx-registry gc"},
		{"gc no config", gcCmd, []string{"-f", filepath.Join(dir, "none")}, 1, nil, "none"},
		{"usage", usageCmd, []string{"-f", conf}, 0, []string{"NAMESPACE", "total"}, ""},
		{"usage argument", usageCmd, []string{"x"}, 2, nil, "usage: stx-registry usage [-f file]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := tt.main(tt.args, &stdout, &stderr); got != tt.wantStatus {
				t.Errorf("exit status %d, want %d; stderr:\n%s", got, tt.wantStatus, stderr.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout %q, want %q", stdout.String(), w)
				}
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.wantErr)
			}
		})
	}
	// The gc that ran counted in the totals the daemon's metrics read.
	if _, err := os.Stat(filepath.Join(root, "stx-registry", "gc-status.json")); err != nil {
		t.Errorf("no status file after a collection: %v", err)
	}
}

func gcCmd(args []string, stdout, stderr *bytes.Buffer) int { return gcMain(args, stdout, stderr) }
func usageCmd(args []string, stdout, stderr *bytes.Buffer) int {
	return usageMain(args, stdout, stderr)
}
