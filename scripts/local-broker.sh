#!/usr/bin/env bash
# For `make run`: unless AMQP_URL names a broker, makes sure one answers on 127.0.0.1:5672. If none does, it installs
# Debian's rabbitmq-server when missing and starts a local node without systemd, its state under ./data/rabbitmq.
#   scripts/local-broker.sh ensure | stop
set -euo pipefail
cd "$(dirname "$0")/.."
port=5672
dir=./data/rabbitmq

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

case "${1:-ensure}" in
ensure)
    if [ -n "${AMQP_URL:-}" ]; then
        echo "AMQP_URL is set: using that broker, starting none"
        exit 0
    fi
    if answers; then
        echo "RabbitMQ answers on 127.0.0.1:$port"
        exit 0
    fi
    if ! dpkg-query -W -f='${Status}' rabbitmq-server 2>/dev/null | grep -q "install ok installed"; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        # The package may try to start its systemd service; we never use it.
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends rabbitmq-server || true
    fi
    mkdir -p ./data
    echo "starting a local RabbitMQ node on 127.0.0.1:$port (state in $dir; stop it with: make stop-broker)"
    FIXED_AMQP_PORT=$port scripts/rabbitmq-node.sh start "$dir" </dev/null
    ;;
stop)
    scripts/rabbitmq-node.sh stop "$dir"
    ;;
*)
    echo "usage: $0 ensure|stop" >&2
    exit 2
    ;;
esac
