package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	v := Version()
	if !strings.HasSuffix(v, runtime.Version()) {
		t.Fatalf("Version() = %q, want it to end with the Go version %s", v, runtime.Version())
	}
}
