#!/usr/bin/env bash
# test.sh runs the whole OpenKES test suite. On first use it builds what the
# tests need and caches it (the Vault test server, ~5 minutes once; the kumo
# AWS emulator, ~7 minutes once; local-kms, a minute) and installs nginx and
# HAProxy from the distribution's packages if missing; later runs start at
# once. Extra arguments go to `go test` (e.g. -run Vault).
set -euo pipefail
cd "$(dirname "$0")/.."

OPENKES_VAULT_BIN=${OPENKES_VAULT_BIN:-$(scripts/install-vault.sh)}
export OPENKES_VAULT_BIN
OPENKES_KUMO_BIN=${OPENKES_KUMO_BIN:-$(scripts/install-kumo.sh)}
export OPENKES_KUMO_BIN
OPENKES_LOCALKMS_BIN=${OPENKES_LOCALKMS_BIN:-$(scripts/install-local-kms.sh)}
export OPENKES_LOCALKMS_BIN
OPENKES_NGINX_BIN=${OPENKES_NGINX_BIN:-$(scripts/install-proxies.sh nginx)}
export OPENKES_NGINX_BIN
OPENKES_HAPROXY_BIN=${OPENKES_HAPROXY_BIN:-$(scripts/install-proxies.sh haproxy)}
export OPENKES_HAPROXY_BIN

# The soak test (internal/tools/kesload TestSoak) runs 60 s here and in CI.
export OPENKES_SOAK=${OPENKES_SOAK:-60s}

go test -race -count=1 -timeout 30m "$@" ./...
