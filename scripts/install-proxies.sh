#!/usr/bin/env bash
# install-proxies.sh makes sure the TLS proxies that the proxy-mode tests
# run in front of the server are installed: nginx and HAProxy, from the
# distribution's packages (Debian: nginx-light, or nginx where the light
# build no longer exists, and haproxy). With an argument, nginx or haproxy,
# it prints the path of that binary; it prints nothing else but errors.
#
# The installing (apt-get as root or with sudo, an `apt-get update` for a
# fresh machine's empty or stale package lists, runs started together
# waiting for each other) is install-deb.sh's; a second run finds
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
deb=$(dirname "${BASH_SOURCE[0]}")/install-deb.sh

# install-deb.sh takes the binaries by path: /usr/sbin is not on every
# user's PATH. nginx-light is the small build; newer Debian releases
# dropped it for nginx itself, so a failed try of it is no error yet.
if [ ! -x "$nginx_bin" ]; then
	bash "$deb" "$nginx_bin" nginx-light >/dev/null 2>&1 ||
		bash "$deb" "$nginx_bin" nginx >/dev/null
fi
bash "$deb" "$haproxy_bin" haproxy >/dev/null

case "$want" in
nginx) echo "$nginx_bin" ;;
haproxy) echo "$haproxy_bin" ;;
esac
