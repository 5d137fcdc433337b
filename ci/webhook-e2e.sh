#!/usr/bin/env bash
# `podpath webhook` end to end over real TLS: a CA made here with openssl,
# the server started on it, AdmissionReviews for every pod in
# tests/webhook/workloads.yaml posted with curl, each patch applied with
# python-jsonpatch and the pods validated with kubernetes-validate --strict,
# bad requests, metrics, and certificate rotation under load (the kubelet's
# `..data` symlink swap, then an in-place rewrite of both files) with no
# failed request. The checks themselves are in ci/webhook-e2e.py.
#
#   ci/webhook-e2e.sh [PODPATH_BIN]
#
# Needs openssl, curl and the venv of ci/packaging.sh (kubernetes-validate,
# jsonpatch, PyYAML). Environment: PODPATH_CI_VENV, K8S_VERSIONS (as in
# ci/packaging.sh), WEBHOOK_PORT (default 19443; the health port is +1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${PODPATH_BIN:-$root/target/debug/podpath}}
venv=${PODPATH_CI_VENV:-$HOME/.cache/podpath-ci-venv}
export PATH="$venv/bin:$PATH"
port=${WEBHOOK_PORT:-19443}
health=$((port + 1))
work=$(mktemp -d)
server=""
# shellcheck disable=SC2329 # run by the EXIT trap
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

service=podpath-webhook.podpath-system.svc
# leaf N: a serving certificate signed by the test CA, serial N, with the
# Service's names (what the API server checks) and 127.0.0.1.
leaf() {
    local n=$1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$service" \
        -keyout "$work/leaf$n.key" -out "$work/leaf$n.csr" 2>/dev/null
    openssl x509 -req -in "$work/leaf$n.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
        -set_serial "$n" -days 2 -out "$work/leaf$n.crt" \
        -extfile <(printf 'subjectAltName=DNS:podpath-webhook,DNS:podpath-webhook.podpath-system,DNS:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' "$service") 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=podpath-webhook-test-ca -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
for n in 1 2 3; do leaf "$n"; done

# The Secret volume as the kubelet lays it out: the files are symlinks
# through `..data`, which is swapped atomically to publish new contents.
certs=$work/certs
mkdir -p "$certs/..v1"
cp "$work/leaf1.crt" "$certs/..v1/tls.crt"
cp "$work/leaf1.key" "$certs/..v1/tls.key"
ln -s ..v1 "$certs/..data"
ln -s ..data/tls.crt "$certs/tls.crt"
ln -s ..data/tls.key "$certs/tls.key"

# As root, the server runs as the Deployment runs it: uid 65532, no
# capability in any set (its binary must carry no file capability).
as_pod=()
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
    chmod -R a+rX "$work"
    as_pod=(setpriv --reuid 65532 --regid 65532 --clear-groups --inh-caps=-all
        --bounding-set=-all --no-new-privs)
    echo "note  server runs as uid 65532 with no capabilities"
fi
PODPATH_TLS_RELOAD_INTERVAL=0.2 PODPATH_SHUTDOWN_DELAY=0 \
    "${as_pod[@]}" "$bin" webhook --listen "127.0.0.1:$port" --health-listen "127.0.0.1:$health" \
    --tls-cert-file "$certs/tls.crt" --tls-private-key-file "$certs/tls.key" \
    --image registry.example/podpath:0.1.0 --log-format json > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$health/healthz" > /dev/null && break
    sleep 0.1
done

rc=0
"$venv/bin/python3" "$root/ci/webhook-e2e.py" --bin "$bin" --work "$work" --certs "$certs" \
    --port "$port" --health-port "$health" --service "$service" --log "$work/server.log" \
    --k8s-versions "${K8S_VERSIONS:-1.29.0 1.37.0}" || rc=$?

# SIGTERM: the server drains and exits 0.
kill -TERM "$server"
if wait "$server"; then
    echo "ok    SIGTERM: exit 0"
else
    echo "FAIL  SIGTERM: exit $?"
    rc=1
fi
server=""
if [ "$rc" -ne 0 ]; then
    echo "--- server log (last 40 lines)"
    tail -40 "$work/server.log"
fi
exit "$rc"
