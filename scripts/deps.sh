#!/usr/bin/env bash
# Installs what tollgate needs on Debian 12, idempotently: Debian packages by
# name (apt-get only when one is missing; sudo only when not root), and the
# test clients from npm pinned by tests/package-lock.json.
#   scripts/deps.sh build   compiler and libraries
#   scripts/deps.sh test    build + cmocka, clang (sanitizers, libFuzzer), node
#   scripts/deps.sh bench   build + wrk, nginx, perf
set -euo pipefail
cd "$(dirname "$0")/.."

build=(gcc make pkg-config libuv1-dev libcurl4-openssl-dev libhttp-parser-dev libyaml-dev libssl-dev libsqlite3-dev)
test=(libcmocka-dev clang libclang-rt-14-dev)
bench=(wrk nginx-light util-linux procps)

want=("${build[@]}")
case "${1:-build}" in
build) ;;
test) want+=("${test[@]}") ;;
bench) want+=("${bench[@]}") ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
command -v node >/dev/null 2>&1 || [ "${1:-build}" != test ] || want+=(nodejs npm)

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-build}" = test ]; then
    # npm ci only when the lock file changed since the last install.
    lock=$(sha256sum tests/package-lock.json | cut -d' ' -f1)
    if [ "$(cat tests/node_modules/.tollgate-lock 2>/dev/null)" != "$lock" ]; then
        (cd tests && npm ci --no-audit --no-fund --loglevel=error)
        echo "$lock" >tests/node_modules/.tollgate-lock
    fi
fi
