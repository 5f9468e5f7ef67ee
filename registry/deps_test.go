package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestLinkedPackages keeps both binaries small: the token server links no
// distribution code, and neither links a debug server or a cloud storage
// driver (STYLE.md, habit 11). It reads the checked-in lists of linked
// packages, DAEMON/testdata/linked-packages.txt, which make check compares
// with go list -deps (make deps-update rewrites them), so that a forbidden
// package fails here by name and any new one shows up in review.
func TestLinkedPackages(t *testing.T) {
	// Never linked by either binary, as an exact package or a prefix.
	forbidden := []string{
		"net/http/pprof", // debug handlers on the default mux
		"github.com/distribution/distribution/v3/registry/storage/driver/s3-aws",
		"github.com/distribution/distribution/v3/registry/storage/driver/azure",
		"github.com/distribution/distribution/v3/registry/storage/driver/gcs",
		"github.com/distribution/distribution/v3/registry/storage/driver/inmemory",
		"github.com/distribution/distribution/v3/registry/storage/driver/middleware/cloudfront",
		"github.com/distribution/distribution/v3/registry/storage/driver/middleware/redirect",
		"github.com/distribution/distribution/v3/registry/storage/driver/middleware/rewrite",
		"github.com/distribution/distribution/v3/registry/auth/htpasswd",
		"github.com/distribution/distribution/v3/registry/auth/silly",
		"golang.org/x/crypto/acme", // distribution's letsencrypt support
	}
	tests := []struct {
		pkg       string
		list      string
		forbidden []string
	}{
		// expvar is linked by distribution's handlers package itself
		// (app.go); it only registers /debug/vars on http.DefaultServeMux,
		// which stx-registry never serves.
		{"stx-registry/registry", "testdata/linked-packages.txt", forbidden},
		{"stx-registry/token", "../token/testdata/linked-packages.txt", append([]string{"github.com/distribution/", "expvar"}, forbidden...)},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			b, err := os.ReadFile(tt.list)
			if err != nil {
				t.Fatalf("%v: run make deps-update", err)
			}
			deps := strings.Fields(string(b))
			if !slices.Contains(deps, tt.pkg) {
				t.Fatalf("%s does not list %s itself: run make deps-update", tt.list, tt.pkg)
			}
			for _, dep := range deps {
				for _, f := range tt.forbidden {
					if dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) {
						t.Errorf("%s links %s (forbidden: %s)", tt.pkg, dep, f)
					}
				}
			}
		})
	}
}
