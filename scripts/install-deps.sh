#!/usr/bin/env bash
# Installs what building and testing crm-ingest needs and is missing, from Debian's packages.
# Usage: scripts/install-deps.sh [build|test|bench]   (test adds the servers the integration tests start; bench
# adds wrk, the HTTP load generator of make bench, to what test needs)
set -euo pipefail

want=(pkg-config librabbitmq-dev libcurl4-openssl-dev libsqlite3-dev libsodium-dev amqp-tools)
need_moto=false
mode=${1:-build}
[ "$mode" = "bench" ] && want+=(wrk)
if [ "$mode" = "test" ] || [ "$mode" = "bench" ]; then
    want+=(rabbitmq-server postgresql)
    # moto_server (pip package moto[server]) is the local SQS/SNS the tests start (scripts/moto-server.sh).
    if ! python3 -c "import moto.server" >/dev/null 2>&1; then
        need_moto=true
        # pip comes from Debian's python3-pip (which brings python3 with it) when python3 or its pip is missing.
        python3 -m pip --version >/dev/null 2>&1 || want+=(python3-pip)
    fi
fi

missing=()
for package in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Debian's postgresql would create and start a cluster of its own on port 5432; the tests start theirs
    # (scripts/postgres-node.sh), so the package is told not to make one.
    if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        $sudo mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    $sudo apt-get update -qq
    # rabbitmq-server's post-install may fail to start its systemd service where there is no systemd; we never
    # use that service, so only the files matter: checked below.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || echo "apt-get reported a problem; checking what got installed"
    for package in "${missing[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok" || { echo "could not install $package" >&2; exit 1; }
    done
fi

if [ "$need_moto" = true ]; then
    echo "installing: moto[server] (pip)"
    if ! pip_output=$(python3 -m pip install --quiet 'moto[server]' 2>&1); then
        if ! grep -q "externally-managed-environment" <<<"$pip_output"; then
            echo "$pip_output" >&2
            echo "could not install moto[server]" >&2
            exit 1
        fi
        # Debian's own python3 refuses pip installs into the system (PEP 668): install for this user instead,
        # under ~/.local, leaving Debian's packages alone. moto_server may then not be on PATH;
        # scripts/moto-server.sh falls back to `python3 -m moto.server`.
        python3 -m pip install --quiet --user --break-system-packages 'moto[server]'
    fi
    python3 -c "import moto.server" >/dev/null 2>&1 || { echo "could not install moto[server]" >&2; exit 1; }
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "swift is not on PATH: install the Swift 6 toolchain (swift.org) and run this again" >&2
    exit 1
fi
