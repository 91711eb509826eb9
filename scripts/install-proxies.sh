#!/usr/bin/env bash
# install-proxies.sh makes sure the TLS proxies that the proxy-mode tests
# run in front of the server are installed: nginx and HAProxy, from the
# distribution's packages (Debian: nginx-light, or nginx where the light
# build no longer exists, and haproxy). With an argument, nginx or haproxy,
# it prints the path of that binary; it prints nothing else but errors.
#
# Installing needs root (or sudo) and apt-get; a fresh machine whose
# package lists are empty or stale gets an `apt-get update` first. Runs
# started together wait for each other (flock), and a second run finds
# everything installed and returns at once.
set -euo pipefail

want=${1:-}
case "$want" in
"" | nginx | haproxy) ;;
*)
	echo "usage: $0 [nginx|haproxy]" >&2
	exit 2
	;;
esac

nginx_bin=/usr/sbin/nginx
haproxy_bin=/usr/sbin/haproxy

installed() { [ -x "$nginx_bin" ] && [ -x "$haproxy_bin" ]; }

print() {
	case "$want" in
	nginx) echo "$nginx_bin" ;;
	haproxy) echo "$haproxy_bin" ;;
	esac
}

if installed; then
	print
	exit 0
fi

cache=${OPENKES_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/tmp}/.cache}/openkes}
mkdir -p "$cache"
exec 9>"$cache/install-proxies.lock"
flock 9
if installed; then
	print
	exit 0
fi

if ! command -v apt-get >/dev/null; then
	echo "install-proxies: nginx or haproxy is missing and there is no apt-get: install both with the system's package manager" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "install-proxies: nginx or haproxy is missing; installing them needs root: sudo apt-get install nginx-light haproxy" >&2
		exit 1
	fi
	sudo=(sudo -n)
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt() {
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 "$@" >>"$log" 2>&1
}
# nginx-light is the small build; newer Debian releases dropped it for
# nginx itself. apt-cache knows only after an update on a fresh machine.
pick() {
	local show
	show=$(apt-cache show nginx-light 2>/dev/null || true)
	if grep -q '^Package: nginx-light' <<<"$show"; then
		echo nginx-light
	else
		echo nginx
	fi
}
packages() {
	local p=()
	[ -x "$nginx_bin" ] || p+=("$(pick)")
	[ -x "$haproxy_bin" ] || p+=(haproxy)
	echo "${p[@]}"
}

# shellcheck disable=SC2046 # the package names are single words
if ! apt install --no-install-recommends $(packages); then
	apt update || { cat "$log" >&2; echo "install-proxies: apt-get update failed" >&2; exit 1; }
	if ! apt install --no-install-recommends $(packages); then
		cat "$log" >&2
		echo "install-proxies: apt-get install failed" >&2
		exit 1
	fi
fi
if ! installed; then
	cat "$log" >&2
	echo "install-proxies: installed, but $nginx_bin or $haproxy_bin is still missing" >&2
	exit 1
fi
print
