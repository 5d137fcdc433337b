#!/usr/bin/env bash
# Soak: `podpath run` in the lab's busy client pod at the benchmark load for
# SOAK_SECONDS (default 1800), sampling RSS, CPU, drops and the connection
# count every SOAK_INTERVAL seconds (default 30); at the end its outbound TCP
# connection count is compared with a parallel tcpdump capture (SYNs only,
# snap 96, so the file stays small). BENCH_PROFILE picks the load (default
# `default`, bench/README.md). Writes bench/results/soak-<stamp>.md and
# .tsv; exit 1 if drops are not zero or the counts differ. Run as root.
#
#   LAB_PREFIX=ps- bench/soak.sh      (default prefix ps-, never pp-)
set -euo pipefail
export LAB_PREFIX=${LAB_PREFIX:-ps-}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-1800}
SOAK_INTERVAL=${SOAK_INTERVAL:-30}
# ring (default) or recvmsg
SOAK_CAPTURE_MODE=${SOAK_CAPTURE_MODE:-ring}
PODPATH_RUN_FLAGS=(--capture-mode "$SOAK_CAPTURE_MODE")
STAMP=$(date -u +%Y-%m-%dT%H%MZ)
RESULTS=${RESULTS:-$REPO/bench/results}
WORK=${BENCH_WORK:-/tmp/podpath-soak-$LAB_PREFIX}
[[ $(id -u) -eq 0 ]] || { echo "soak: run as root" >&2; exit 1; }
[[ -x $PODPATH ]] || { echo "soak: build first: cargo build --release ($PODPATH)" >&2; exit 1; }
mkdir -p "$RESULTS" "$WORK"
rm -f "$WORK"/*.pcap "$WORK"/*.log
# A private copy: rebuilds during the soak must not change what runs. The
# version is the tree's at the start (commits during the soak do not count).
cp "$PODPATH" "$WORK/podpath"
VERSION=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')
PODPATH=$WORK/podpath

cleanup() {
    stop_load
    [[ -n ${TCPDUMP_PID:-} ]] && stop_pid "$TCPDUMP_PID"
    [[ -n ${PODPATH_PID:-} ]] && stop_pid "$PODPATH_PID"
    "$LAB" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

bench_lab_up
sleep 2
start_podpath "$WORK/podpath.log"
# SYN and SYN-ACK of IPv4, all of IPv6 (the load has none).
start_tcpdump "$WORK/syns.pcap" -s 96 '(tcp and tcp[tcpflags] & tcp-syn != 0) or ip6'
blog "soak: ${SOAK_SECONDS}s in $POD_NS, podpath pid $PODPATH_PID, tcpdump pid $TCPDUMP_PID"
start_load "$SOAK_SECONDS" "$WORK"

tsv=$RESULTS/soak-$STAMP.tsv
printf 'elapsed_s\trss_kib\thwm_kib\tcpu_s\tpackets\tdrops\ttcp_connections\n' >"$tsv"
t0=$SECONDS
sample() {
    local m
    m=$(scrape || true)
    printf '%d\t%s\t%s\t%s\t%s\t%s\t%s\n' $((SECONDS - t0)) \
        "$(status_kib "$PODPATH_PID" VmRSS)" "$(status_kib "$PODPATH_PID" VmHWM)" \
        "$(cpu_seconds "$PODPATH_PID")" \
        "$(metric_sum "$m" podpath_capture_packets_total)" \
        "$(metric_sum "$m" podpath_capture_drops_total)" \
        "$(metric_sum "$m" podpath_connections_total 'protocol="tcp"')" >>"$tsv"
}
while ((SECONDS - t0 < SOAK_SECONDS)); do
    sleep "$SOAK_INTERVAL"
    sample
    kill -0 "$PODPATH_PID" 2>/dev/null || { echo "soak: podpath exited" >&2; exit 1; }
done
wait_load
# Let the last FINs and the final SYN-ACKs reach both captures.
sleep 3
sample
final=$(scrape)
stop_pid "$TCPDUMP_PID"; TCPDUMP_PID=
tcpdump_conns=$(count_syns "$WORK/syns.pcap")
podpath_conns=$(metric_sum "$final" podpath_connections_total 'protocol="tcp"')
drops=$(metric_sum "$final" podpath_capture_drops_total)
packets=$(metric_sum "$final" podpath_capture_packets_total)
evictions=$(metric_sum "$final" podpath_table_evictions_total)
tcpdump_stats=$(grep -E 'captured|received|dropped' "$WORK/syns.pcap.log" | tr '\n' ';')
stop_pid "$PODPATH_PID"; PODPATH_PID=

summary=$(awk -F'\t' 'NR > 1 { n++; r[n] = $2; if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2; h = $3 }
    END { printf "samples %d, RSS first %.1f MiB, last %.1f MiB, min %.1f MiB, max %.1f MiB, VmHWM %.1f MiB",
          n, r[1] / 1024, r[n] / 1024, min / 1024, max / 1024, h / 1024 }' "$tsv")
md=$RESULTS/soak-$STAMP.md
{
    echo "# Soak $STAMP"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
    echo "- podpath $VERSION (tree at the start), capture mode $SOAK_CAPTURE_MODE"
    echo "- duration: ${SOAK_SECONDS}s in \`$POD_NS\`, sampled every ${SOAK_INTERVAL}s ($(basename "$tsv"))"
    echo "- load profile: $BENCH_PROFILE (bench/README.md)"
    echo "- load: $(load_summary "$WORK" | tr '\n' ';' | sed 's/;$//')"
    echo "- RSS: $summary"
    echo "- podpath packets: $packets, drops: $drops, table evictions: $evictions, CPU: $(tail -1 "$tsv" | cut -f4) s"
    echo "- outbound TCP connections: podpath $podpath_conns, tcpdump (distinct SYNs) $tcpdump_conns ($( [[ $podpath_conns == "$tcpdump_conns" ]] && echo exact || echo MISMATCH))"
    echo "- tcpdump: $tcpdump_stats"
} >"$md"
cat "$md"
rm -f "$WORK/syns.pcap"
[[ $drops == 0 && $podpath_conns == "$tcpdump_conns" ]]
