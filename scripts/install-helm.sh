#!/usr/bin/env bash
# install-helm.sh builds helm (helm.sh/helm/v3, Apache-2.0) from the Go
# module proxy once and prints the path of the cached binary. The chart test
# (deploy/kubernetes_test.go) runs `helm lint` and `helm template` with it.
#
# The binary is cached in $OPENKES_CACHE (default ~/.cache/openkes), so only
# the first run on a machine pays for the build (14 minutes were measured on
# a busy 2-core machine).
set -euo pipefail

version=v3.22.0
cache=${OPENKES_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/tmp}/.cache}/openkes}
bin=$cache/helm-$version/helm

if [ -x "$bin" ] && "$bin" version --short >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

# One build at a time: test runs started together wait for the first build
# instead of starting their own into the same file.
mkdir -p "$(dirname "$bin")"
exec 9>"$(dirname "$bin").lock"
flock 9
if [ -x "$bin" ] && "$bin" version --short >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

start=$(date +%s)
echo "install-helm: building helm $version (first run only, takes minutes)" >&2
tmp=$(mktemp -d "$(dirname "$bin")/build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Outside any module, so the repository's go.mod does not constrain helm's.
(cd "$tmp" && GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath "helm.sh/helm/v3/cmd/helm@$version")
mv "$tmp/helm" "$bin"
echo "install-helm: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
