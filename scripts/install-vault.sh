#!/usr/bin/env bash
# install-vault.sh builds the HashiCorp Vault server that the Vault key-store
# tests run against, once, and prints the path of the cached binary.
#
# Vault v1.14.0 is the last MPL-2.0 release. It is built from the Go module
# proxy: its go.mod points the nested api/sdk modules at local folders that
# the module zip does not contain, and one enterprise-only route panics on
# the first request, so both are patched before building.
#
# The binary is cached in $OPENKES_CACHE (default ~/.cache/openkes), so only
# the first run on a machine pays for the build (about 9 minutes cold).
set -euo pipefail

version=v1.14.0
cache=${OPENKES_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/tmp}/.cache}/openkes}
bin=$cache/vault-$version/vault

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

# One build at a time: test runs started together (several worktrees, or
# parallel CI jobs on one machine) wait for the first build instead of
# starting their own into the same file.
mkdir -p "$(dirname "$bin")"
exec 9>"$(dirname "$bin").lock"
flock 9
if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

start=$(date +%s)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/vault@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "install-vault: cannot download vault $version" >&2; exit 1; }
cp -r "$src" "$work/vault"
chmod -R u+w "$work/vault"
cd "$work/vault"

go mod edit \
	-dropreplace github.com/hashicorp/vault/api \
	-dropreplace github.com/hashicorp/vault/api/auth/approle \
	-dropreplace github.com/hashicorp/vault/api/auth/kubernetes \
	-dropreplace github.com/hashicorp/vault/api/auth/userpass \
	-dropreplace github.com/hashicorp/vault/sdk \
	-require github.com/hashicorp/vault/sdk@v0.9.2
sed -i '/"managed-keys\/"/s/logical\.CreateOperation, //' vault/logical_system_helpers.go
if grep '"managed-keys/"' vault/logical_system_helpers.go | grep -q CreateOperation; then
	echo "install-vault: patch of vault/logical_system_helpers.go did not apply" >&2
	exit 1
fi

echo "install-vault: building vault $version (first run only, takes minutes)" >&2
GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
mkdir -p "$(dirname "$bin")"
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$bin.tmp.$$" .
mv "$bin.tmp.$$" "$bin"
echo "install-vault: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
