package version

import (
	"runtime/debug"
	"testing"
	"time"
)

// buildInfo returns the build info of a main module at modVersion with the
// given VCS settings (key, value pairs).
func buildInfo(modVersion string, settings ...string) *debug.BuildInfo {
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/openkes/kes", Version: modVersion}}
	bi.Settings = append(bi.Settings, debug.BuildSetting{Key: "-compiler", Value: "gc"})
	for i := 0; i+1 < len(settings); i += 2 {
		bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return bi
}

const rev = "8168962813154d4a5e8855a473a5a5c95b4cf68d"

// TestResolve: what each way of building records becomes the version and
// commit the binary reports.
func TestResolve(t *testing.T) {
	commitTime := time.Date(2026, 12, 1, 15, 14, 6, 0, time.UTC)
	for _, tt := range []struct {
		name                string
		bi                  *debug.BuildInfo
		ldVersion, ldCommit string
		want                Info
		wantString          string
	}{{
		name: "go build in a clean git checkout",
		bi: buildInfo("v0.0.0-20261201151406-816896281315",
			"vcs", "git", "vcs.revision", rev, "vcs.time", "2026-12-01T15:14:06Z", "vcs.modified", "false"),
		want:       Info{Version: "v0.0.0-20261201151406-816896281315", Commit: rev, Time: commitTime},
		wantString: "v0.0.0-20261201151406-816896281315 commit=" + rev,
	}, {
		name: "go build with uncommitted changes (go marks the version)",
		bi: buildInfo("v0.0.0-20261201151406-816896281315+dirty",
			"vcs", "git", "vcs.revision", rev, "vcs.time", "2026-12-01T15:14:06Z", "vcs.modified", "true"),
		want:       Info{Version: "v0.0.0-20261201151406-816896281315+dirty", Commit: rev, Time: commitTime, Modified: true},
		wantString: "v0.0.0-20261201151406-816896281315+dirty commit=" + rev,
	}, {
		name: "go build at a release tag",
		bi: buildInfo("v1.2.0",
			"vcs", "git", "vcs.revision", rev, "vcs.time", "2026-12-01T15:14:06Z", "vcs.modified", "false"),
		want:       Info{Version: "v1.2.0", Commit: rev, Time: commitTime},
		wantString: "v1.2.0 commit=" + rev,
	}, {
		name: "VCS data without a module version: the commit time, as upstream",
		bi: buildInfo("(devel)",
			"vcs", "git", "vcs.revision", rev, "vcs.time", "2025-03-12T09:35:18Z", "vcs.modified", "true"),
		want:       Info{Version: "2025-03-12T09-35-18Z+dirty", Commit: rev, Time: time.Date(2025, 3, 12, 9, 35, 18, 0, time.UTC), Modified: true},
		wantString: "2025-03-12T09-35-18Z+dirty commit=" + rev,
	}, {
		name:       "go install module@version: no VCS data",
		bi:         buildInfo("v1.2.0"),
		want:       Info{Version: "v1.2.0"},
		wantString: "v1.2.0 commit=<unknown>",
	}, {
		name:       "go run: no VCS data",
		bi:         buildInfo("(devel)"),
		want:       Info{Version: "(devel)"},
		wantString: "(devel) commit=<unknown>",
	}, {
		name:       "an unparsable commit time is kept as the version, not as Time",
		bi:         buildInfo("", "vcs.revision", rev, "vcs.time", "yesterday"),
		want:       Info{Version: "yesterday", Commit: rev},
		wantString: "yesterday commit=" + rev,
	}, {
		name:       "no build info",
		want:       Info{},
		wantString: "<unknown> commit=<unknown>",
	}, {
		name: "link-time values win",
		bi: buildInfo("v0.0.0-20261201151406-816896281315+dirty",
			"vcs.revision", rev, "vcs.time", "2026-12-01T15:14:06Z", "vcs.modified", "true"),
		ldVersion: "2026-12-01T00-00-00Z", ldCommit: "0123456789abcdef0123456789abcdef01234567",
		want:       Info{Version: "2026-12-01T00-00-00Z", Commit: "0123456789abcdef0123456789abcdef01234567", Time: commitTime, Modified: true},
		wantString: "2026-12-01T00-00-00Z commit=0123456789abcdef0123456789abcdef01234567",
	}, {
		name:       "a link-time version alone keeps the recorded commit",
		bi:         buildInfo("(devel)", "vcs.revision", rev, "vcs.time", "2026-12-01T15:14:06Z"),
		ldVersion:  "v1.0.0",
		want:       Info{Version: "v1.0.0", Commit: rev, Time: commitTime},
		wantString: "v1.0.0 commit=" + rev,
	}, {
		name:       "link-time values without build info",
		ldVersion:  "v1.0.0",
		ldCommit:   rev,
		want:       Info{Version: "v1.0.0", Commit: rev},
		wantString: "v1.0.0 commit=" + rev,
	}} {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.bi, tt.ldVersion, tt.ldCommit)
			if got != tt.want {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.wantString {
				t.Errorf("String = %q, want %q", s, tt.wantString)
			}
		})
	}
}
