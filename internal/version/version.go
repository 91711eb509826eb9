// Package version tells which build of OpenKES is running: its module
// version and the VCS revision it was built from. It is the one place that
// reads them, so that `kes --version`, the server banner, GET /version and
// GET /v1/status (`kes status`) report the same build.
//
// `go build` and `go install` record the module version in the binary and,
// when they build inside a git checkout, the revision, its time and whether
// the tree had uncommitted changes (see [runtime/debug.BuildInfo]). `go run`
// records no VCS data unless it is given -buildvcs=true: such a binary
// reports the version "(devel)" and no commit. Release builds may set both
// values at link time, which takes precedence over the build info:
//
//	go build -ldflags "-X github.com/openkes/kes/internal/version.version=v1.0.0 -X github.com/openkes/kes/internal/version.commit=$(git rev-parse HEAD)" ./cmd/kes
//
// The package imports only the standard library.
package version

import (
	"runtime/debug"
	"strings"
	"time"
)

// version and commit are set by the linker (-ldflags -X) for release
// builds; empty means "from the build info".
var (
	version string
	commit  string
)

// Unknown is printed and served in place of a version or commit that the
// build did not record (spec api.md §4.1).
const Unknown = "<unknown>"

// devel is the module version the go command records for a main module
// built from a source tree whose version it cannot tell.
const devel = "(devel)"

// Info describes the running build. The zero Info means nothing is known.
type Info struct {
	// Version is the module version: a release tag (v1.2.0), a
	// pseudo-version that names the commit
	// (v0.0.0-20261201151406-816896281315), "(devel)" without VCS data,
	// or the link-time value. It ends in "+dirty" when the tree had
	// uncommitted changes. Empty when unknown.
	Version string
	// Commit is the full VCS revision; empty when unknown.
	Commit string
	// Time is the commit time of Commit; zero when unknown.
	Time time.Time
	// Modified reports whether the tree had uncommitted changes.
	Modified bool
}

// Get returns the Info of the running binary.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return resolve(bi, version, commit)
}

// resolve returns the Info of build info bi (nil: none) with the link-time
// values ldVersion and ldCommit, which win when not empty.
func resolve(bi *debug.BuildInfo, ldVersion, ldCommit string) Info {
	var info Info
	if bi != nil {
		info.Version = bi.Main.Version
		var vcsTime string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				vcsTime = s.Value
				info.Time, _ = time.Parse(time.RFC3339Nano, s.Value)
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
		// Without a module version, name the build as upstream does:
		// by its commit time, which is also the form of its release
		// tags (2025-03-12T09-35-18Z).
		if (info.Version == "" || info.Version == devel) && vcsTime != "" {
			info.Version = strings.ReplaceAll(vcsTime, ":", "-")
		}
		if info.Modified && info.Version != devel && !strings.HasSuffix(info.Version, "+dirty") {
			info.Version += "+dirty"
		}
	}
	if ldVersion != "" {
		info.Version = ldVersion
	}
	if ldCommit != "" {
		info.Commit = ldCommit
	}
	return info
}

// String returns the version line of `kes --version` and of the server
// banner: "<version> commit=<revision>", with [Unknown] for what the build
// did not record.
func (i Info) String() string {
	return orUnknown(i.Version) + " commit=" + orUnknown(i.Commit)
}

func orUnknown(s string) string {
	if s == "" {
		return Unknown
	}
	return s
}
