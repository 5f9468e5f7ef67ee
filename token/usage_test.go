package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"stx-registry/shared/buildinfo"
)

// Every command line mistake is a usage error (exit 2) with the usage text
// on stderr.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		run  func(stdout, stderr *bytes.Buffer) error
		want string
	}{
		{"daemon bad flag", func(o, e *bytes.Buffer) error { return daemonMain([]string{"-x"}, o, e) }, "usage: stx-token-server [-f CONFIG] [-t]"},
		{"daemon argument", func(o, e *bytes.Buffer) error { return daemonMain([]string{"extra"}, o, e) }, "usage: stx-token-server [-f CONFIG] [-t]"},
		{"passwd no file", func(o, e *bytes.Buffer) error { return passwdMain([]string{"alice"}, os.Stdin, e) }, "usage: stx-token-server passwd"},
		{"passwd bad flag", func(o, e *bytes.Buffer) error { return passwdMain([]string{"-x"}, os.Stdin, e) }, "usage: stx-token-server passwd"},
		{"revoke neither", func(o, e *bytes.Buffer) error { return revokeMain(nil, o, e) }, "usage: stx-token-server revoke"},
		{"jwks argument", func(o, e *bytes.Buffer) error { return jwksMain([]string{"extra"}, o, e) }, "usage: stx-token-server jwks"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := tt.run(&stdout, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("%s: %v, want a usage error", tt.name, err)
		}
		if !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%s: stderr %q lacks %q", tt.name, stderr.String(), tt.want)
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := daemonMain([]string{"-version"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if want := "stx-token-server " + buildinfo.Version() + "\n"; stdout.String() != want {
		t.Errorf("-version printed %q, want %q", stdout.String(), want)
	}
}
