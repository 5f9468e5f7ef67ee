package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(badConfig, []byte("token_realm http://x/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    string // prefix of standard output
		wantErr    []string
	}{
		{name: "help", args: []string{"-h"}, wantStatus: 0, wantOut: usageLine},
		{name: "version", args: []string{"-version"}, wantStatus: 0, wantOut: "stx-registry "},
		{name: "unknown flag", args: []string{"-x"}, wantStatus: 2,
			wantErr: []string{"stx-registry: flag provided but not defined: -x\n", usageLine, "-f file"}},
		{name: "argument", args: []string{"serve"}, wantStatus: 2,
			wantErr: []string{`stx-registry: unexpected argument "serve"`, usageLine}},
		{name: "missing flag value", args: []string{"-f"}, wantStatus: 2,
			wantErr: []string{"stx-registry: flag needs an argument: -f", usageLine}},
		// Every configuration error at once, each naming the file.
		{name: "bad config", args: []string{"-t", "-f", badConfig}, wantStatus: 1,
			wantErr: []string{badConfig + ": missing required keyword listen", badConfig + ": token_realm must be an https URL",
				badConfig + ": missing required keyword token_certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := cli(tt.args, &stdout, &stderr); got != tt.wantStatus {
				t.Errorf("exit status %d, want %d; stderr:\n%s", got, tt.wantStatus, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tt.wantOut) {
				t.Errorf("stdout %q, want it to start with %q", stdout.String(), tt.wantOut)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q, want it to contain %q", stderr.String(), w)
				}
			}
			if tt.wantErr == nil && stderr.Len() != 0 {
				t.Errorf("stderr %q, want nothing", stderr.String())
			}
		})
	}
}

// TestReferrersRebuildCommand runs the subcommand's usage paths; its work
// is tested in package referrers.
func TestReferrersRebuildCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if got := rebuildMain([]string{"-h"}, &stdout, &stderr); got != exitOK || !strings.HasPrefix(stdout.String(), "usage: stx-registry "+rebuildSynopsis) {
		t.Errorf("-h: status %d, stdout %q", got, stdout.String())
	}
	stdout.Reset()
	if got := rebuildMain([]string{"now"}, &stdout, &stderr); got != exitUsage || !strings.Contains(stderr.String(), `unexpected argument "now"`) {
		t.Errorf("argument: status %d, stderr %q", got, stderr.String())
	}
	stderr.Reset()
	if got := rebuildMain([]string{"-f", filepath.Join(t.TempDir(), "none.conf")}, &stdout, &stderr); got != exitError {
		t.Errorf("missing config: status %d, stderr %q", got, stderr.String())
	}
}
