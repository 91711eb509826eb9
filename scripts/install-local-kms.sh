#!/usr/bin/env bash
# install-local-kms.sh builds local-kms (github.com/nsmithuk/local-kms, MIT),
# a local AWS KMS that the aws key-store tests create their KMS key in, once,
# and prints the path of the cached binary.
#
# local-kms has no tagged Go module version; the pseudo-version below is the
# commit the proxy serves as latest (2026-02-28).
#
# The binary is cached in $OPENKES_CACHE (default ~/.cache/openkes), so only
# the first run on a machine pays for the build (a minute or two; 4 minutes
# were measured on a busy machine).
set -euo pipefail

version=v0.0.0-20260228092603-2a5e92d09ab6
cache=${OPENKES_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/tmp}/.cache}/openkes}
dir=$cache/local-kms-$version
bin=$dir/local-kms

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

# One build at a time: test runs started together (several worktrees, or
# parallel test packages) wait for the first build instead of starting
# their own into the same file.
mkdir -p "$(dirname "$bin")"
exec 9>"$(dirname "$bin").lock"
flock 9
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

start=$(date +%s)
echo "install-local-kms: building local-kms $version (first run only)" >&2
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
GOBIN=$work CGO_ENABLED=0 go install -trimpath "github.com/nsmithuk/local-kms@$version"
mv "$work/local-kms" "$bin"
echo "install-local-kms: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
