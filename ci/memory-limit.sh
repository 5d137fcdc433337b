#!/usr/bin/env bash
# A flood under a memory cgroup (issue 12, item 4): podpath reads the limit,
# sizes its tables to three quarters of it, and survives 1M distinct flows,
# 205 000 connections each left holding part of a TLS ClientHello, and
# thousands of distinct DNS names each answered with 64 addresses, without
# an OOM kill and with its peak under that budget. The same flood
# with the sizing off (--memory-budget off) must be OOM-killed: the limit is
# tight enough that the sizing is what keeps podpath alive.
#
#   ci/memory-limit.sh [PODPATH_BIN]      as root; cgroup v2, or v1's memory controller
#
# The same for the live sidecar: `podpath run` in a network namespace of
# its own, under LIVE_LIMIT_MIB, while a raw socket in that namespace sends
# LIVE_FLOWS distinct SYNs out of the interface it captures on
# (ci/send-syn-flood.py).
#
# Environment: LIMIT_MIB (default 40), FLOOD_FLOWS (1000000), FLOOD_HELLOS (200000),
# FLOOD_SPLIT_HELLOS (5000: hellos of 15 000 bytes in 1 000-byte segments), FLOOD_ANSWERS (5000),
# LIVE_LIMIT_MIB (48), LIVE_FLOWS (500000; 0 skips the live part).
# Prints one line of figures per run; exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${PODPATH_BIN:-$root/target/debug/podpath}}
limit_mib=${LIMIT_MIB:-40}
flows=${FLOOD_FLOWS:-1000000}
answers=${FLOOD_ANSWERS:-5000}
hellos=${FLOOD_HELLOS:-200000}
split_hellos=${FLOOD_SPLIT_HELLOS:-5000}
live_limit_mib=${LIVE_LIMIT_MIB:-48}
live_flows=${LIVE_FLOWS:-500000}
limit=$((limit_mib << 20))
# shellcheck disable=SC2017 # rounded as podpath rounds it (limit / 4 * 3)
budget=$((limit / 4 * 3))

[ "$(id -u)" = 0 ] || { echo "memory-limit: needs root (creates a cgroup)"; exit 1; }
[ -x "$bin" ] || { echo "memory-limit: no podpath binary at $bin"; exit 1; }

# A child cgroup with the memory controller: v2 under the root of this
# process's view of the hierarchy (where controllers can be delegated), v1
# under this process's own memory cgroup (so it stays within whatever
# limits that one has).
if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    version=2
    parent=/sys/fs/cgroup
    if ! grep -qw memory "$parent/cgroup.subtree_control"; then
        echo +memory > "$parent/cgroup.subtree_control" || {
            echo "memory-limit: cannot enable the memory controller for children of $parent"; exit 1; }
    fi
elif [ -d /sys/fs/cgroup/memory ]; then
    version=1
    parent=/sys/fs/cgroup/memory$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' /proc/self/cgroup)
else
    echo "memory-limit: no cgroup memory controller (neither v2 nor v1) on this machine"
    exit 1
fi

work=$(mktemp -d)
cgroups=()
netns=podpath-mem-$$
live_pid=
# shellcheck disable=SC2329 # invoked by the trap
cleanup() {
    local cg
    if [ -n "$live_pid" ]; then
        kill "$live_pid" 2>/dev/null
        wait "$live_pid" 2>/dev/null
    fi
    ip netns del "$netns" 2>/dev/null || true
    for cg in "${cgroups[@]}"; do
        rmdir "$cg" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

python3 "$root/bench/gen_flood.py" flows "$flows" "$work/flows.pcap"
python3 "$root/bench/gen_flood.py" answers "$answers" "$work/answers.pcap"
python3 "$root/bench/gen_flood.py" hellos "$hellos" "$work/hellos.pcap"
python3 "$root/bench/gen_flood.py" split-hellos "$split_hellos" "$work/split-hellos.pcap"

# new_cgroup NAME LIMIT: creates a cgroup limited to LIMIT bytes, without
# swap; sets cg.
new_cgroup() {
    cg=$parent/podpath-memory-$$-$1
    mkdir "$cg"
    cgroups+=("$cg")
    if [ "$version" = 2 ]; then
        echo "$2" > "$cg/memory.max"
        echo 0 > "$cg/memory.swap.max" 2>/dev/null || true
    else
        echo "$2" > "$cg/memory.limit_in_bytes"
        echo "$2" > "$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
    fi
}

# read_cgroup: sets peak and oom_kills from cg.
read_cgroup() {
    if [ "$version" = 2 ]; then
        peak=$(cat "$cg/memory.peak")
        oom_kills=$(awk '$1 == "oom_kill" { print $2 }' "$cg/memory.events")
    else
        peak=$(cat "$cg/memory.max_usage_in_bytes")
        oom_kills=$(awk '$1 == "oom_kill" { print $2 }' "$cg/memory.oom_control")
    fi
}

# report NAME LIMIT_MIB: one line of figures.
report() {
    printf '%s: cgroup v%s, limit %d MiB, exit %d, peak %d.%d MiB, oom_kill %s, %d.%d s\n' \
        "$1" "$version" "$2" "$rc" $((peak >> 20)) $(((peak & 0xfffff) * 10 >> 20)) \
        "${oom_kills:-?}" $((seconds / 10)) $((seconds % 10))
}

# run NAME ARGS...: runs `podpath analyze --format prometheus ARGS... FLOODS` in
# a fresh cgroup limited to $limit; sets rc, peak, oom_kills, seconds.
run() {
    local name=$1 start
    shift
    new_cgroup "$name" "$limit"
    start=$(date +%s%N)
    rc=0
    sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
        "$bin" analyze --format prometheus --service-cidr 10.96.0.0/12 --pod-cidr 10.244.0.0/16 "$@" \
        "$work/flows.pcap" "$work/hellos.pcap" "$work/split-hellos.pcap" "$work/answers.pcap" > "$work/$name.prom" 2> "$work/$name.err" || rc=$?
    seconds=$(( ($(date +%s%N) - start) / 100000000 ))
    read_cgroup
    report "$name" "$limit_mib"
}

# live NAME ARGS...: `podpath run ARGS...` in the namespace, in a cgroup
# limited to $live_limit_mib, flooded; sets rc (137: killed), peak,
# oom_kills, seconds, and leaves the last scrape in $work/NAME.prom.
live() {
    local name=$1 start
    shift
    new_cgroup "$name" "$((live_limit_mib << 20))"
    start=$(date +%s%N)
    # nsenter, not `ip netns exec`: that one mounts a fresh /sys, without
    # the cgroup filesystem podpath reads its limit from (a pod has it).
    sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
        nsenter --net="/run/netns/$netns" "$bin" run -i ppflood0 --listen 127.0.0.1:9809 "$@" 2> "$work/$name.err" &
    live_pid=$!
    for _ in $(seq 50); do
        ip netns exec "$netns" curl -sf -o /dev/null http://127.0.0.1:9809/healthz && break
        sleep 0.2
    done
    ip netns exec "$netns" python3 "$root/ci/send-syn-flood.py" ppflood0 "$live_flows"
    sleep 3
    ip netns exec "$netns" curl -sf http://127.0.0.1:9809/metrics > "$work/$name.prom" || true
    kill "$live_pid" 2>/dev/null || true
    rc=0
    wait "$live_pid" || rc=$?
    live_pid=
    seconds=$(( ($(date +%s%N) - start) / 100000000 ))
    read_cgroup
    report "$name" "$live_limit_mib"
}

failed=0
fail() { echo "FAIL  $*"; failed=1; }
metric() { awk -v m="$2" '$1 == m { print $2 }' "$work/$1.prom"; }

run sized
[ "$rc" = 0 ] || { fail "sized run exited $rc"; sed 's/^/      /' "$work/sized.err"; }
[ "${oom_kills:-1}" = 0 ] || fail "sized run: oom_kill $oom_kills"
[ "$peak" -le "$budget" ] || fail "sized run: peak $peak above the budget $budget (3/4 of the limit)"
[ "$(metric sized podpath_memory_limit_bytes)" = "$limit" ] || fail "podpath_memory_limit_bytes is $(metric sized podpath_memory_limit_bytes), not $limit"
[ "$(metric sized podpath_memory_budget_bytes)" = "$budget" ] || fail "podpath_memory_budget_bytes is $(metric sized podpath_memory_budget_bytes), not $budget"
cap_flows=$(metric sized 'podpath_table_capacity{table="flows"}')
cap_names=$(metric sized 'podpath_table_capacity{table="names"}')
evicted=$(metric sized 'podpath_table_evictions_total{table="flows"}')
echo "      tables: flows $cap_flows, names $cap_names; flow evictions $evicted"
[ -n "$cap_flows" ] && [ "$cap_flows" -lt 57344 ] || fail "the flow table was not sized down: $cap_flows"
[ -n "$cap_names" ] && [ "$cap_names" -lt "$answers" ] || fail "the name table ($cap_names) does not fill up with $answers names"
[ "${evicted:-0}" -ge $((flows - 57344)) ] || fail "flow evictions $evicted: the flood did not fill the table"

run unsized --memory-budget off
if [ "$rc" = 0 ] || [ "${oom_kills:-0}" = 0 ]; then
    fail "with --memory-budget off the flood was not OOM-killed (exit $rc, oom_kill $oom_kills): the limit does not test the sizing"
fi

if [ "$live_flows" -gt 0 ]; then
    ip netns add "$netns"
    ip -n "$netns" link set lo up
    ip -n "$netns" link add ppflood0 type veth peer name ppflood1
    ip -n "$netns" link set ppflood0 up
    ip -n "$netns" link set ppflood1 up
    ip -n "$netns" addr add 10.244.1.20/16 dev ppflood0
    # shellcheck disable=SC2017 # rounded as podpath rounds it
    live_budget=$(((live_limit_mib << 20) / 4 * 3))

    live live-sized
    [ "$rc" = 0 ] || { fail "live sized run exited $rc"; tail -5 "$work/live-sized.err" | sed 's/^/      /'; }
    [ "${oom_kills:-1}" = 0 ] || fail "live sized run: oom_kill $oom_kills"
    [ "$peak" -le "$live_budget" ] || fail "live sized run: peak $peak above the budget $live_budget"
    cap_flows=$(metric live-sized 'podpath_table_capacity{table="flows"}')
    seen=$(metric live-sized 'podpath_capture_packets_total{interface="ppflood0"}')
    dropped=$(metric live-sized 'podpath_capture_drops_total{interface="ppflood0"}')
    evicted=$(metric live-sized 'podpath_table_evictions_total{table="flows"}')
    echo "      flows table $cap_flows; packets $seen, kernel drops $dropped, flow evictions $evicted"
    [ -n "$cap_flows" ] && [ "$cap_flows" -lt 57344 ] || fail "live: the flow table was not sized down: $cap_flows"
    [ "${evicted:-0}" -ge 57344 ] || fail "live: flow evictions ${evicted:-none}: the flood did not fill the table"

    live live-unsized --memory-budget off
    if [ "$rc" = 0 ] || [ "${oom_kills:-0}" = 0 ]; then
        fail "live, --memory-budget off: not OOM-killed (exit $rc, oom_kill $oom_kills): the limit does not test the sizing"
    fi
fi

[ "$failed" = 0 ] && echo "memory-limit: ok"
exit "$failed"
