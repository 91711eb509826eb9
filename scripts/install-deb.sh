#!/usr/bin/env bash
# install-deb.sh COMMAND PACKAGE makes sure COMMAND is on the PATH,
# installing the Debian PACKAGE that provides it if it is not (e.g.
# `install-deb.sh systemd-analyze systemd` for the systemd unit's test).
# COMMAND may be a path (/usr/sbin/nginx: sbin is not on every user's
# PATH); install-proxies.sh installs its proxies this way. It prints the
# command's path and nothing else but errors. Installing
# needs root (or sudo) and apt-get; a fresh machine's empty package lists
# get an `apt-get update` first. Concurrent runs wait for each other.
set -euo pipefail
if [ $# -ne 2 ]; then
	echo "usage: $0 COMMAND PACKAGE" >&2
	exit 2
fi
cmd=$1 pkg=$2
if command -v "$cmd"; then
	exit 0
fi
cache=${OPENKES_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/tmp}/.cache}/openkes}
mkdir -p "$cache"
exec 9>"$cache/install-deb.lock"
flock 9
if command -v "$cmd"; then
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "install-deb: $cmd is missing and there is no apt-get: install $pkg with the system's package manager" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "install-deb: $cmd is missing; installing it needs root: sudo apt-get install $pkg" >&2
		exit 1
	fi
	sudo=(sudo -n)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt() {
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 "$@" >>"$log" 2>&1
}
if ! apt install --no-install-recommends "$pkg"; then
	apt update && apt install --no-install-recommends "$pkg" || {
		cat "$log" >&2
		echo "install-deb: apt-get install $pkg failed" >&2
		exit 1
	}
fi
command -v "$cmd" || {
	cat "$log" >&2
	echo "install-deb: installed $pkg, but $cmd is still missing" >&2
	exit 1
}
