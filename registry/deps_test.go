package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinkedPackages keeps both binaries small: the token server links no
// distribution code, and neither links a debug server or a cloud storage
// driver (STYLE.md, habit 11).
func TestLinkedPackages(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the linked-package check needs the go tool in PATH")
	}
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
		forbidden []string
	}{
		// expvar is linked by distribution's handlers package itself
		// (app.go); it only registers /debug/vars on http.DefaultServeMux,
		// which stx-registry never serves.
		{"stx-registry/registry", forbidden},
		{"stx-registry/token", append([]string{"github.com/distribution/", "expvar"}, forbidden...)},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			cmd := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", tt.pkg)
			cmd.Dir = ".."
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps %s: %v\n%s", tt.pkg, err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range tt.forbidden {
					if dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) {
						t.Errorf("%s links %s (forbidden: %s)", tt.pkg, dep, f)
					}
				}
			}
		})
	}
}
