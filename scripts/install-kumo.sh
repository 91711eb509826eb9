#!/usr/bin/env bash
# install-kumo.sh builds kumo (github.com/sivchari/kumo, MIT), the AWS
# emulator whose Secrets Manager the aws key-store tests run against, once,
# and prints the path of the cached binary.
#
# `go install github.com/sivchari/kumo/cmd/kumo@v0.33.1` fails: its go.sum
# lacks the checksums of two modules it needs. The small module in
# scripts/peers/kumo pins kumo with those two modules at versions whose
# checksums the proxy serves, and builds kumo as a tool of that module.
#
# The binary is cached in $OPENKES_CACHE (default ~/.cache/openkes), so only
# the first run on a machine pays for the build (about 7 minutes cold on an
# idle 2-core machine; 53 minutes were measured on a busy one).
set -euo pipefail

version=v0.33.1
cache=${OPENKES_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/tmp}/.cache}/openkes}
bin=$cache/kumo-$version/kumo

if [ -x "$bin" ] && "$bin" --help >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

# One build at a time: test runs started together (several worktrees, or
# parallel test packages) wait for the first build instead of starting
# their own into the same file.
mkdir -p "$(dirname "$bin")"
exec 9>"$(dirname "$bin").lock"
flock 9
if [ -x "$bin" ] && "$bin" --help >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

start=$(date +%s)
cd "$(dirname "$0")/peers/kumo"
echo "install-kumo: building kumo $version (first run only, takes minutes)" >&2
mkdir -p "$(dirname "$bin")"
CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" github.com/sivchari/kumo/cmd/kumo
mv "$bin.tmp" "$bin"
echo "install-kumo: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
