// Package buildinfo reports a binary's version from the information the Go
// toolchain embeds: the module version, the VCS commit and the Go version.
// There are no build dates, so builds are reproducible. Both daemons print
// their -version line with Line.
package buildinfo

import "runtime/debug"

// commit is the checkout's short commit, with "-dirty" for uncommitted
// changes, set by make build (-ldflags -X) for the builds where the go tool
// embeds no VCS information: in a linked git worktree, which it does not
// recognise as a repository, or with -buildvcs=false.
var commit string

// shortRev is how many hex digits of the commit a devel version shows, as
// many as a Go pseudo-version.
const shortRev = 12

// Version returns the version and the Go version, e.g.
// "v1.2.0 go1.26.8" for a tagged build,
// "v0.0.0-20261130223845-8d89934b1a05+dirty go1.26.8" for a build from a
// git checkout (the go tool's pseudo-version: commit time and commit), or
// "devel-8d89934b1a05-dirty go1.26.8" when the module version is (devel)
// but the commit is known. Without any commit it is "devel go1.26.8".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return version(bi.Main.Version, bi.Settings) + " " + bi.GoVersion
}

// Line returns the -version line of the daemon called name, e.g.
// "stx-registry v1.2.0 go1.26.8".
func Line(name string) string {
	return name + " " + Version()
}

// version returns the module version mainVersion, or for a (devel) build
// "devel-COMMIT" from the VCS settings or, failing them, from commit.
func version(mainVersion string, settings []debug.BuildSetting) string {
	if mainVersion != "" && mainVersion != "(devel)" {
		return mainVersion
	}
	var rev, dirty string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	switch {
	case rev != "":
		return "devel-" + rev[:min(len(rev), shortRev)] + dirty
	case commit != "":
		return "devel-" + commit
	}
	return "devel"
}
