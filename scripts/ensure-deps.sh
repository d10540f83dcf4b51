#!/usr/bin/env bash
# Install the servers the tests, benchmarks and `make cluster` start (MariaDB, memcached, Redis), Prometheus
# (tests/test_metrics.py), ffmpeg and chromium, from Debian/Ubuntu packages, only when missing; `apt-get update` runs once, and only then.
set -euo pipefail

have() {
    # mariadbd lives in /usr/sbin, which a non-root PATH may lack
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}

missing=()
{ have mariadbd && have mariadb-install-db; } || missing+=(mariadb-server)
have memcached || missing+=(memcached)
have redis-server || missing+=(redis-server)  # the event broker the tests and benchmarks start
have prometheus || missing+=(prometheus)  # tests/test_metrics.py scrapes /metrics with a real Prometheus
have ffmpeg || missing+=(ffmpeg)
have chromium || missing+=(chromium)  # tests/test_graphiql.py drives GraphiQL in headless Chromium
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-deps: missing ${missing[*]}, and there is no apt-get here: install them with your package manager" >&2
    exit 1
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "ensure-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
