#!/usr/bin/env bash
# Runs the podpath binary as the container does: uid/gid 65532, the file
# capability cap_net_raw+p on the binary (podpath raises it to effective), NET_RAW the only capability in the
# bounding set, no_new_privs set (allowPrivilegeEscalation: false), inside a
# network namespace made for the test (pp-nonroot-<pid>, loopback only).
#
#   ci/nonroot-check.sh target/release/podpath
#
# Passes when podpath becomes ready, reports podpath_capture_up{interface="lo"} 1,
# and its effective capability set is exactly CAP_NET_RAW; and, as a control,
# when the same binary without the file capability does NOT capture (it stays
# up and reports capture_up 0 with reason permission_denied).
# PODPATH_RUN_ARGS adds arguments to `podpath run` (e.g. the interface).
# Needs root (to create the namespace and set the file capability) and
# setpriv (util-linux), setcap (libcap2-bin), curl.
set -euo pipefail

bin=${1:?usage: ci/nonroot-check.sh PATH/TO/podpath}
port=${NONROOT_PORT:-19809}
ns="pp-nonroot-$$"
work=$(mktemp -d)
chmod 0755 "$work"
pid=""

cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

command -v setcap >/dev/null || apt-get install -y --no-install-recommends libcap2-bin >/dev/null
command -v setpriv >/dev/null || apt-get install -y --no-install-recommends util-linux >/dev/null

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up

# As in the image: root-owned, world-executable, file capability set.
install -m 0755 "$bin" "$work/podpath"
setcap cap_net_raw+p "$work/podpath"
install -m 0755 "$bin" "$work/podpath-nocap"
echo "file capability: $(getcap "$work/podpath")"

start() {
    # shellcheck disable=SC2086 # PODPATH_RUN_ARGS is a list of words
    ip netns exec "$ns" env -i PATH=/usr/bin:/bin \
        PODPATH_LISTEN="127.0.0.1:$port" PODPATH_LOG_FORMAT=json \
        POD_NAME=nonroot-check POD_NAMESPACE=ci POD_IP=127.0.0.1 \
        setpriv --reuid 65532 --regid 65532 --clear-groups \
        --inh-caps=-all --bounding-set=-all,+net_raw --no-new-privs \
        "$1" run ${PODPATH_RUN_ARGS:-} > "$work/$(basename "$1").log" 2>&1 &
    pid=$!
}

metrics() {
    ip netns exec "$ns" curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics"
}

wait_ready() {
    for _ in $(seq 1 50); do
        if ip netns exec "$ns" curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
}

echo "== with cap_net_raw+p, as uid 65532"
start "$work/podpath"
if ! wait_ready; then
    echo "FAIL: podpath did not become ready; its log:"
    cat "$work/podpath.log"
    exit 1
fi
# Some traffic for the capture to see (scrapes on loopback).
for _ in 1 2 3; do metrics > /dev/null; done
status=$(grep -E '^(Uid|Gid|CapEff|CapPrm|NoNewPrivs):' "/proc/$pid/status" || true)
# setpriv execs podpath in place, so $pid is podpath itself.
echo "$status"
grep -q '^Uid:[[:space:]]*65532[[:space:]]' <<< "$status" || { echo "FAIL: not running as uid 65532"; exit 1; }
# CAP_NET_RAW is bit 13.
grep -q '^CapEff:[[:space:]]*0000000000002000$' <<< "$status" || { echo "FAIL: effective capabilities are not exactly CAP_NET_RAW"; exit 1; }
scrape=$(metrics)
if ! grep -q '^podpath_capture_up{interface="lo"} 1' <<< "$scrape"; then
    echo "FAIL: podpath_capture_up is not 1:"
    grep '^podpath_capture_up' <<< "$scrape" || echo "(metric missing)"
    cat "$work/podpath.log"
    exit 1
fi
echo "ok: ready, capturing, uid 65532, CapEff = CAP_NET_RAW only"
stop

echo "== control: without the file capability"
start "$work/podpath-nocap"
captured=unknown
if wait_ready; then
    scrape=$(metrics || true)
    if grep -q '^podpath_capture_up{interface="lo"} 1' <<< "$scrape"; then
        captured=yes
    elif grep -q '^podpath_capture_error_info{interface="lo",reason="permission_denied"} 1' <<< "$scrape"; then
        captured=no
    fi
fi
stop
if [ "$captured" = yes ]; then
    echo "FAIL: podpath captured without CAP_NET_RAW: the check proves nothing"
    exit 1
fi
if [ "$captured" != no ]; then
    echo "FAIL: without the capability podpath should stay up and report permission_denied; its log:"
    cat "$work/podpath-nocap.log"
    exit 1
fi
echo "ok: without the capability podpath does not capture ($(tail -n 1 "$work/podpath-nocap.log" 2>/dev/null))"
