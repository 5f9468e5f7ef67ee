// Package buildinfo reports a binary's version from the information the Go
// toolchain embeds: the module version, the VCS commit and its time, and the
// Go version. There are no build dates, so builds are reproducible.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Version returns e.g. "v1.2.0 (4f2c… 2026-11-29T10:00:00Z) go1.26.8", or
// "(devel) go1.26.8" for a build without VCS information.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, when, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (%s %s%s)", rev, when, modified)
	}
	return v + " " + bi.GoVersion
}
