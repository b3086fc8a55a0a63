#!/usr/bin/env bash
# Starts and stops a throw-away local SQS/SNS (moto_server, pip package moto[server]) for the integration tests,
# with SigV4 authentication enforced: only requests signed with the access key written to DIR/env are accepted.
#
# Usage:
#   scripts/moto-server.sh start DIR   start a moto_server whose state (env, pid, log) lives in DIR
#   scripts/moto-server.sh stop  DIR   stop it; safe to call twice
#
# start DIR
#   Creates DIR if missing, picks a free TCP port on 127.0.0.1 and starts `moto_server -H 127.0.0.1 -p PORT` in
#   the background (its own session, stdin /dev/null, output in DIR/moto.log, no other descriptor inherited),
#   with INITIAL_NO_AUTH_ACTION_COUNT=3: moto accepts exactly three unauthenticated actions, which this script
#   spends on IAM CreateUser, PutUserPolicy (inline, allows sqs:*, sns:*, and creating users and access keys for
#   the tests that rotate credentials) and CreateAccessKey. From then
#   on every request to any service must carry a valid SigV4 signature made with that key. (Polling /moto-api/
#   to see whether the server is up is not an action and does not count.)
#   Then it checks enforcement and fails (exit 1, server killed) unless: a request signed with the right key
#   succeeds (SQS ListQueues, SNS ListTopics), and one signed with a wrong secret, one with an unknown access
#   key and one without any signature are all refused.
#   Writes DIR/env, KEY=VALUE lines a test can source or parse:
#     MOTO_PORT, MOTO_URL (http://127.0.0.1:PORT), MOTO_PID, MOTO_ACCOUNT_ID, AWS_ACCESS_KEY_ID,
#     AWS_SECRET_ACCESS_KEY, AWS_REGION=us-east-1, AWS_DEFAULT_REGION=us-east-1
#   MOTO_URL is the last line on stdout. Waits at most MOTO_SERVER_START_TIMEOUT seconds (default 30) for the
#   server; a port taken by someone else between choosing and binding it is detected and another one tried.
#   Refuses to start when DIR already holds a running server.
#
# stop DIR
#   SIGTERM to the recorded pid (only if that process is still our moto_server), SIGKILL after 5 s. Leaves DIR
#   in place: the caller removes it.
#
# Needs python3 with moto[server] (and so boto3): scripts/install-deps.sh test installs it.
set -euo pipefail

START_TIMEOUT=${MOTO_SERVER_START_TIMEOUT:-30}   # seconds
STOP_TIMEOUT=5                                  # seconds between SIGTERM and SIGKILL
BOOTSTRAP_ACTIONS=3                             # CreateUser, PutUserPolicy, CreateAccessKey
REGION=us-east-1
IAM_USER=crm-ingest-test

die() { echo "moto-server: $*" >&2; exit 1; }

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# True while PID runs (a zombie counts as gone: nobody may reap it when init is not a real init).
alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "$state" != "Z" ]
}

# True if PID is a moto_server listening on PORT (guards against killing a recycled pid).
is_our_moto() {
    local cmd
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ "$cmd" == *moto* && "$cmd" == *"-p $2 "* ]]
}

# Python with the caller's AWS configuration kept out: explicit keys and endpoints only.
py() {
    env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        python3 "$@"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

answers() {
    python3 - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}

# Pid of the process listening on 127.0.0.1:PORT per ss, empty if unknown.
listener_pid() {
    command -v ss >/dev/null 2>&1 || return 0
    { ss -Hltnp "sport = :$1" 2>/dev/null || true; } | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | awk 'NR == 1'
}

# True if DIR/moto.log, from byte offset $1 on, contains the fixed string $2.
log_has() {
    [ "$(tail -c "+$1" "$DIR/moto.log" | grep -cF -- "$2")" -gt 0 ]
}

# Starts moto_server on PORT and waits until it is up. Returns 0 when up, 3 when the port was taken (try
# another), 1 on other failures. Sets PID.
launch() {
    local port=$1 cmd
    if command -v moto_server >/dev/null 2>&1; then
        cmd=(moto_server -H 127.0.0.1 -p "$port")
    else
        cmd=(python3 -m moto.server -H 127.0.0.1 -p "$port")
    fi
    echo "=== $(date '+%F %T') starting: ${cmd[*]}" >>"$DIR/moto.log"
    local from
    from=$(($(wc -c <"$DIR/moto.log") + 1))   # only this attempt's output counts
    # The subshell closes every descriptor above 2 (a caller's pipe must not stay open in the server), then
    # setsid execs without forking (the subshell leads no process group), and so does the pyenv shim if any:
    # $! is the server's own pid.
    (
        for fd in "/proc/$BASHPID/fd/"*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
        done
        export INITIAL_NO_AUTH_ACTION_COUNT=$BOOTSTRAP_ACTIONS MOTO_PORT=$port
        exec setsid "${cmd[@]}" </dev/null >>"$DIR/moto.log" 2>&1
    ) &
    PID=$!
    echo "$PID $port" >"$DIR/moto.pid"

    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        if ! alive "$PID"; then
            wait "$PID" 2>/dev/null || true
            rm -f "$DIR/moto.pid"
            log_has "$from" "Address already in use" && return 3
            return 1
        fi
        # "Running on" is logged by our process only after it bound the port.
        if log_has "$from" "Running on http://127.0.0.1:$port" && answers "$port"; then
            local owner
            owner=$(listener_pid "$port")
            [ -z "$owner" ] || [ "$owner" = "$PID" ] || { kill_moto "$PID"; return 3; }
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill_moto "$PID"
            return 1
        fi
        sleep 0.1
    done
}

kill_moto() {
    local pid=$1 deadline
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid"; then
        echo "moto-server: pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.1; done
    fi
    wait "$pid" 2>/dev/null || true   # reaps it when it is our child (start's failure paths)
}

# The three unauthenticated actions (IAM user, policy, access key), then the enforcement check. Prints
# "ACCOUNT_ID ACCESS_KEY_ID SECRET_ACCESS_KEY" as soon as the key exists. Exit 0: key made and authentication
# enforced; 2: key made but the check failed (reasons on stderr); anything else: the bootstrap failed.
bootstrap_and_verify() {
    py - "$1" "$IAM_USER" "$REGION" <<'EOF'
import json, sys, urllib.error, urllib.request
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

url, user, region = sys.argv[1:4]

def client(service, key, secret):
    # One attempt per call: a retry would spend one of the unauthenticated actions.
    return boto3.client(service, endpoint_url=url, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret, config=Config(retries={"total_max_attempts": 1}))

iam = client("iam", "bootstrap", "bootstrap")
arn = iam.create_user(UserName=user)["User"]["Arn"]
iam.put_user_policy(UserName=user, PolicyName="crm-ingest-test-sqs-sns", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sqs:*", "sns:*", "iam:CreateUser", "iam:PutUserPolicy",
                              "iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:ListAccessKeys",
                              "iam:CreateRole", "iam:PutRolePolicy", "sts:AssumeRoleWithWebIdentity"],
                   "Resource": "*"}],
}))
key = iam.create_access_key(UserName=user)["AccessKey"]
key_id, secret = key["AccessKeyId"], key["SecretAccessKey"]
print(arn.split(":")[4], key_id, secret, flush=True)

problems = []
for service, call in (("sqs", "list_queues"), ("sns", "list_topics")):
    try:
        getattr(client(service, key_id, secret), call)()
    except Exception as e:
        problems.append(f"{service} {call} signed with the right key failed: {e}")

wrong_secret = ("X" if secret[0] != "X" else "Y") + secret[1:]
for what, k, s in (("a wrong secret", key_id, wrong_secret), ("an unknown access key", "AKIAUNKNOWNKEY000000", secret)):
    try:
        client("sqs", k, s).list_queues()
        problems.append(f"sqs list_queues signed with {what} was accepted: authentication is NOT enforced")
    except ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        if status != 403:
            problems.append(f"sqs list_queues signed with {what}: expected HTTP 403, got {status}")

request = urllib.request.Request(url + "/", data=b"{}", method="POST", headers={
    "X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"})
try:
    with urllib.request.urlopen(request, timeout=5) as r:
        problems.append(f"unsigned ListQueues was accepted (HTTP {r.status}): authentication is NOT enforced")
except urllib.error.HTTPError:
    pass  # moto 5 answers 500 (it looks up the missing Authorization header); any refusal will do

for p in problems:
    print("moto-server: " + p, file=sys.stderr)
sys.exit(2 if problems else 0)
EOF
}

start() {
    command -v python3 >/dev/null 2>&1 || die "python3 not found: run scripts/install-deps.sh test"
    python3 -c 'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("moto", "boto3")))' \
        || die "python3 has no moto (or boto3): run scripts/install-deps.sh test"
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    if [ -f "$DIR/moto.pid" ]; then
        local old_pid old_port
        read -r old_pid old_port <"$DIR/moto.pid" || true
        if alive "$old_pid" && is_our_moto "$old_pid" "$old_port"; then
            die "a moto_server (pid $old_pid) already runs for $DIR: stop it first"
        fi
        rm -f "$DIR/moto.pid"
    fi
    rm -f "$DIR/env"

    local port rc=1
    PID=""
    # From here on, any failure kills what we started.
    trap 'kill_moto "$PID"; rm -f "$DIR/moto.pid"' EXIT
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        rc=0
        launch "$port" || rc=$?
        [ "$rc" -eq 3 ] || break
        echo "port $port was taken before moto_server bound it; trying another"
    done
    if [ "$rc" -ne 0 ]; then
        tail -n 20 "$DIR/moto.log" >&2 || true
        die "moto_server did not come up on 127.0.0.1:$port within ${START_TIMEOUT}s (log: $DIR/moto.log;" \
            "if moto.server cannot be imported: scripts/install-deps.sh test)"
    fi
    local url="http://127.0.0.1:$port" account key_id secret creds
    echo "moto_server pid $PID answers on $url; creating IAM user $IAM_USER and its access key"

    rc=0
    creds=$(bootstrap_and_verify "$url") || rc=$?
    read -r account key_id secret <<<"$creds" || true
    [ -n "${secret:-}" ] || die "creating the IAM user, policy and key failed (log: $DIR/moto.log)"
    [ "$rc" -eq 0 ] || die "authentication check failed (rc $rc): moto_server stopped (log: $DIR/moto.log)"
    cat >"$DIR/env.tmp" <<EOF
MOTO_PORT=$port
MOTO_URL=$url
MOTO_PID=$PID
MOTO_ACCOUNT_ID=$account
AWS_ACCESS_KEY_ID=$key_id
AWS_SECRET_ACCESS_KEY=$secret
AWS_REGION=$REGION
AWS_DEFAULT_REGION=$REGION
EOF
    mv "$DIR/env.tmp" "$DIR/env"
    echo "authentication enforced: right key accepted; wrong secret, unknown key and unsigned request refused"
    trap - EXIT
    echo "$url"
}

stop() {
    local pid="" port=""
    if [ -f "$DIR/moto.pid" ]; then
        read -r pid port <"$DIR/moto.pid" || true
    elif [ -f "$DIR/env" ]; then
        pid=$(sed -n 's/^MOTO_PID=//p' "$DIR/env")
        port=$(sed -n 's/^MOTO_PORT=//p' "$DIR/env")
    fi
    if [ -z "$pid" ]; then
        echo "no moto_server recorded in $DIR: nothing to stop"
        return 0
    fi
    if ! alive "$pid"; then
        echo "moto_server (pid $pid) is not running"
    elif ! is_our_moto "$pid" "$port"; then
        echo "pid $pid is no longer moto_server on port $port: not killing it"
    else
        kill_moto "$pid"
        echo "moto_server (pid $pid, port $port) stopped"
    fi
    rm -f "$DIR/moto.pid"
}

[ $# -eq 2 ] || usage
DIR=$2
case "$1" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
