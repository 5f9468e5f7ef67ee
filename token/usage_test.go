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
		{"passwd no file", func(o, e *bytes.Buffer) error { return passwdMain([]string{"alice"}, os.Stdin, o, e) }, "usage: stx-token-server passwd"},
		{"passwd bad flag", func(o, e *bytes.Buffer) error { return passwdMain([]string{"-x"}, os.Stdin, o, e) }, "usage: stx-token-server passwd"},
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

// -h prints the usage on stdout and is not an error.
func TestHelp(t *testing.T) {
	tests := []struct {
		name string
		run  func(stdout, stderr *bytes.Buffer) error
		want string
	}{
		{"daemon", func(o, e *bytes.Buffer) error { return daemonMain([]string{"-h"}, o, e) }, "usage: stx-token-server [-f CONFIG] [-t]"},
		{"passwd", func(o, e *bytes.Buffer) error { return passwdMain([]string{"-h"}, os.Stdin, o, e) }, "usage: stx-token-server passwd"},
		{"revoke", func(o, e *bytes.Buffer) error { return revokeMain([]string{"-h"}, o, e) }, "usage: stx-token-server revoke"},
		{"jwks", func(o, e *bytes.Buffer) error { return jwksMain([]string{"-h"}, o, e) }, "usage: stx-token-server jwks"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := tt.run(&stdout, &stderr)
		if !errors.Is(err, errHelp) || !strings.Contains(stdout.String(), tt.want) || stderr.Len() != 0 {
			t.Errorf("%s -h: %v, stdout %q, stderr %q", tt.name, err, stdout.String(), stderr.String())
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
