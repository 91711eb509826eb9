#!/usr/bin/env bash
# test.sh runs the whole OpenKES test suite. On first use it builds what the
# tests need and caches it (the Vault test server, ~5 minutes once; the kumo
# AWS emulator, ~7 minutes once; local-kms, a minute; helm, ~14 minutes once) and installs nginx and
# HAProxy, PyKMIP, rsyslog, SoftHSM2 and OpenSC from the distribution's packages
# if missing; later runs start at
# once. Extra arguments go to `go test` (e.g. -run Vault).
#
# The output is printed as plain `go test` prints it; the whole `go test
# -json` stream is also saved (OPENKES_TEST_LOG, default a temporary file)
# and every line of it, passed tests' included, is checked for secrets: a
# key byte, API key, Vault token or AppRole secret in a log line, error body
# or panic fails the run (internal/tools/testscan).
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
OPENKES_HELM_BIN=${OPENKES_HELM_BIN:-$(scripts/install-helm.sh)}
export OPENKES_HELM_BIN

# The KMIP store's tests (internal/keystore/kmip, cmd/kes TestKMIP,
# docs/keystores/kmip.md) run PyKMIP's server, from Debian's python3-pykmip.
OPENKES_PYKMIP_BIN=${OPENKES_PYKMIP_BIN:-$(scripts/install-deb.sh pykmip-server python3-pykmip)}
export OPENKES_PYKMIP_BIN

# The audit syslog sink's tests (internal/log, cmd/kes) run a real rsyslogd.
OPENKES_RSYSLOGD_BIN=${OPENKES_RSYSLOGD_BIN:-$(scripts/install-deb.sh rsyslogd rsyslog)}
export OPENKES_RSYSLOGD_BIN
# The systemd unit's test runs systemd-analyze verify.
scripts/install-deb.sh systemd-analyze systemd >/dev/null
# The docs test runs the README's shell blocks, which use curl and jq.
scripts/install-deb.sh curl curl >/dev/null
scripts/install-deb.sh jq jq >/dev/null
# The HSM tests (internal/keystore/hsm, cmd/kes, docs/hsm.md) use a real
# SoftHSM2 token; docs/hsm.md creates its key with OpenSC's pkcs11-tool.
OPENKES_SOFTHSM2_UTIL=${OPENKES_SOFTHSM2_UTIL:-$(scripts/install-deb.sh softhsm2-util softhsm2)}
export OPENKES_SOFTHSM2_UTIL
scripts/install-deb.sh pkcs11-tool opensc >/dev/null

# The soak test (internal/tools/kesload TestSoak) runs 60 s here and in CI.
export OPENKES_SOAK=${OPENKES_SOAK:-60s}

go build -o "${TMPDIR:-/tmp}/testscan-$$" ./internal/tools/testscan
trap 'rm -f "${TMPDIR:-/tmp}/testscan-$$"' EXIT
log=${OPENKES_TEST_LOG:-$(mktemp "${TMPDIR:-/tmp}/openkes-test-XXXXXX.json")}
set +e
go test -json -race -count=1 -timeout 30m "$@" ./... 2>&1 | "${TMPDIR:-/tmp}/testscan-$$" -save "$log"
status=("${PIPESTATUS[@]}")
set -e
echo "test output: $log"
if [ "${status[0]}" -ne 0 ]; then exit "${status[0]}"; fi
exit "${status[1]}"
