package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	v := Version()
	if !strings.HasSuffix(v, runtime.Version()) {
		t.Fatalf("Version() = %q, want it to end with the Go version %s", v, runtime.Version())
	}
}

func TestLine(t *testing.T) {
	for _, name := range []string{"stx-registry", "stx-token-server"} {
		if l, want := Line(name), name+" "+Version(); l != want {
			t.Errorf("Line(%q) = %q, want %q", name, l, want)
		}
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	rev := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "8d89934b1a054d1375cac3c7986c53f6a6727d75"}, {Key: "vcs.modified", Value: "false"}}
	dirty := []debug.BuildSetting{{Key: "vcs.revision", Value: "8d89934b1a054d1375cac3c7986c53f6a6727d75"}, {Key: "vcs.modified", Value: "true"}}
	tests := []struct {
		name     string
		main     string
		settings []debug.BuildSetting
		commit   string
		want     string
	}{
		{"tagged", "v1.2.3", rev, "", "v1.2.3"},
		{"pseudo-version", "v0.0.0-20261130223845-8d89934b1a05+dirty", dirty, "", "v0.0.0-20261130223845-8d89934b1a05+dirty"},
		{"devel with commit", "(devel)", rev, "", "devel-8d89934b1a05"},
		{"devel dirty", "(devel)", dirty, "", "devel-8d89934b1a05-dirty"},
		{"empty version", "", rev, "", "devel-8d89934b1a05"},
		{"short revision", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "", "devel-abc"},
		{"vcs wins over -X", "(devel)", rev, "0123456789ab", "devel-8d89934b1a05"},
		{"-X commit", "(devel)", nil, "0123456789ab-dirty", "devel-0123456789ab-dirty"},
		{"nothing known", "(devel)", nil, "", "devel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := commit
			t.Cleanup(func() { commit = saved })
			commit = tt.commit
			if got := version(tt.main, tt.settings); got != tt.want {
				t.Errorf("version(%q, …) = %q, want %q", tt.main, got, tt.want)
			}
		})
	}
}
