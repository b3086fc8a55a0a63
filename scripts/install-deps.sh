#!/usr/bin/env bash
# Installs what building and testing crm-ingest needs and is missing, from Debian's packages.
# Usage: scripts/install-deps.sh [build|test]   (test adds the servers the integration tests start)
set -euo pipefail

want=(pkg-config librabbitmq-dev libcurl4-openssl-dev libsqlite3-dev amqp-tools)
if [ "${1:-build}" = "test" ]; then
    want+=(rabbitmq-server)
fi

missing=()
for package in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # rabbitmq-server's post-install may fail to start its systemd service where there is no systemd; we never
    # use that service, so only the files matter: checked below.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || echo "apt-get reported a problem; checking what got installed"
    for package in "${missing[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok" || { echo "could not install $package" >&2; exit 1; }
    done
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "swift is not on PATH: install the Swift 6 toolchain (swift.org) and run this again" >&2
    exit 1
fi
