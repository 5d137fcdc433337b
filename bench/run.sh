#!/usr/bin/env bash
# Every benchmark, one command (as root):  bench/run.sh
#
# 1. builds podpath (release) and the engine_rss example;
# 2. for each load profile in BENCH_PROFILES (comma- or space-separated,
#    default all: default,keepalive,dns,short,tls; bench/lib.sh defines them),
#    on a freshly built benchmark lab (namespaces ${LAB_PREFIX:-pb-}*, never pp-*):
#    a. offline: records OFFLINE_PACKETS (200 000) packets in the busy client
#       pod under the profile's load, then times `podpath analyze`,
#       `tcpdump -r FILE -w /dev/null` and `tshark -n -r FILE -q -z dns,tree`
#       in turn with hyperfine (BENCH_ROUNDS rounds, default 7), and their
#       peak RSS once each;
#    b. live: `podpath run` and `tcpdump -i any -w FILE` side by side in the
#       pod for LIVE_SECONDS (20) of the same load, once per capture mode in
#       LIVE_MODES ("ring"): CPU seconds of both, drops, podpath's outbound
#       TCP connections against the SYNs in tcpdump's file, peak RSS;
#    c. per-stage profile (BENCH_PERF=1 and perf installed): `perf record`
#       of PERF_REPEAT analyze runs over the capture and of PERF_LIVE_SECONDS
#       of `podpath run` (a separate pass, so perf's cost stays out of b),
#       samples attributed to stages by bench/perf_stages.py;
# 3. memory: generated floods (1M distinct flows, 100k distinct DNS names)
#    through the engine (engine_rss) and through `podpath analyze`;
# 4. criterion micro-benchmarks (BENCH_CRITERION=0 skips them);
# then bench/report.py writes bench/results/<date>.md and the results section
# of BENCHMARKS.md (BENCH_WRITE_DOC=0 leaves BENCHMARKS.md alone): one table,
# every goal per profile, a goal met only when it holds on every profile.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_ROUNDS:-7}
OFFLINE_PACKETS=${OFFLINE_PACKETS:-200000}
LIVE_SECONDS=${LIVE_SECONDS:-20}
LIVE_MODES=${LIVE_MODES:-ring}
PROFILES=$(tr ',' ' ' <<<"${BENCH_PROFILES:-$BENCH_PROFILES_ALL}")
BENCH_PERF=${BENCH_PERF:-1}
PERF_FREQ=${PERF_FREQ:-4999}
PERF_REPEAT=${PERF_REPEAT:-5}
PERF_LIVE_SECONDS=${PERF_LIVE_SECONDS:-10}
FLOOD_FLOWS=${FLOOD_FLOWS:-1000000}
FLOOD_NAMES=${FLOOD_NAMES:-100000}
BENCH_CRITERION=${BENCH_CRITERION:-1}
BENCH_WRITE_DOC=${BENCH_WRITE_DOC:-1}
STAMP=$(date -u +%Y-%m-%d)
RESULTS=${RESULTS:-$REPO/bench/results}
WORK=${BENCH_WORK:-/tmp/podpath-bench-$LAB_PREFIX}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
PODPATH=$CARGO_TARGET_DIR/release/podpath
ENGINE_RSS=$CARGO_TARGET_DIR/release/examples/engine_rss

[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (namespaces, capture)" >&2; exit 1; }
for profile in $PROFILES; do
    [[ " $BENCH_PROFILES_ALL " == *" $profile "* ]] ||
        { echo "bench: unknown profile '$profile' (profiles: $BENCH_PROFILES_ALL)" >&2; exit 1; }
done
for tool in hyperfine tcpdump tshark wrk dnsperf openssl python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (bench/install-deps.sh)" >&2; exit 1; }
done
if [[ $BENCH_PERF == 1 ]] && ! command -v perf >/dev/null; then
    echo "bench: perf is missing (apt-get install linux-perf), per-stage profiles skipped" >&2
    BENCH_PERF=0
fi
mkdir -p "$RESULTS" "$WORK"
: >"$WORK/results.tsv"
started=$SECONDS

cleanup() {
    stop_load
    [[ -n ${TCPDUMP_PID:-} ]] && stop_pid "$TCPDUMP_PID"
    [[ -n ${PODPATH_PID:-} ]] && stop_pid "$PODPATH_PID"
    "$LAB" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

blog "build"
(cd "$REPO" && cargo build --release --bin podpath --example engine_rss)

maxrss_kib() { # maxrss_kib CMD... : peak RSS of one run, output discarded
    /usr/bin/time -f '%M' -o "$WORK/time.txt" "$@" >/dev/null 2>&1 || true
    cat "$WORK/time.txt"
}

# ------------------------------------------------------------ per profile
for BENCH_PROFILE in $PROFILES; do
    export BENCH_PROFILE
    blog "=== profile $BENCH_PROFILE"
    # A fresh lab per profile: no conntrack entries, TIME_WAIT sockets or
    # nginx state carried from one profile's load into the next.
    bench_lab_up
    sleep 2

    # -------------------------------------------------------- offline
    OFFLINE=$WORK/offline-$BENCH_PROFILE.pcap
    rm -f "$OFFLINE"
    blog "$BENCH_PROFILE: recording $OFFLINE_PACKETS packets in $POD_NS"
    start_tcpdump "$OFFLINE" -c "$OFFLINE_PACKETS"
    t0=$(date +%s.%N)
    start_load 120 "$WORK"
    wait "$TCPDUMP_PID" || true
    TCPDUMP_PID=
    put offline.seconds "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
    stop_load
    put offline.packets "$(awk '/packets captured/ { print $1 }' "$OFFLINE.log")"
    put offline.bytes "$(stat -c %s "$OFFLINE")"
    blog "$BENCH_PROFILE: $(du -h "$OFFLINE" | cut -f1); hyperfine, $ROUNDS rounds"
    hyperfine -N --runs "$ROUNDS" --warmup 1 --export-json "$WORK/hyperfine-$BENCH_PROFILE.json" \
        -n 'podpath analyze' "$PODPATH analyze ${PODPATH_FLAGS[*]} $OFFLINE" \
        -n 'tcpdump -r -w /dev/null' "tcpdump -r $OFFLINE -w /dev/null" \
        -n 'tshark -z dns,tree' "tshark -n -r $OFFLINE -q -z dns,tree" >"$WORK/hyperfine-$BENCH_PROFILE.txt" 2>&1
    put offline.hyperfine "$WORK/hyperfine-$BENCH_PROFILE.json"
    put offline.analyze_rss_kib "$(maxrss_kib "$PODPATH" analyze "${PODPATH_FLAGS[@]}" "$OFFLINE")"
    put offline.tcpdump_rss_kib "$(maxrss_kib tcpdump -r "$OFFLINE" -w /dev/null)"
    put offline.tshark_rss_kib "$(maxrss_kib tshark -n -r "$OFFLINE" -q -z dns,tree)"

    if [[ $BENCH_PERF == 1 ]]; then
        blog "$BENCH_PROFILE: perf on $PERF_REPEAT analyze runs"
        # shellcheck disable=SC2016 # expanded by the inner shell
        perf record -q -e cpu-clock -F "$PERF_FREQ" --call-graph dwarf -o "$WORK/analyze.perf" -- \
            bash -c 'for ((i = 0; i < $1; i++)); do "${@:2}" >/dev/null; done' _ "$PERF_REPEAT" \
            "$PODPATH" analyze "${PODPATH_FLAGS[@]}" "$OFFLINE" >/dev/null 2>&1 || true
        put analyze_perf.runs "$PERF_REPEAT"
        put_stages analyze_perf "$WORK/analyze.perf" --comms podpath
        rm -f "$WORK/analyze.perf"
    fi
    rm -f "$OFFLINE"

    # -------------------------------------------------------- live
    # One run per capture mode (LIVE_MODES), each with its own tcpdump beside it.
    for mode in $LIVE_MODES; do
        live_measure "$mode"
    done
    if [[ $BENCH_PERF == 1 ]]; then
        sleep 2
        live_perf "$PERF_LIVE_SECONDS"
    fi
    "$LAB" down
done

# ------------------------------------------------------------ memory
blog "memory: floods"
[[ -s $WORK/flows-$FLOOD_FLOWS.pcap ]] || python3 "$BENCH_DIR/gen_flood.py" flows "$FLOOD_FLOWS" "$WORK/flows-$FLOOD_FLOWS.pcap"
[[ -s $WORK/names-$FLOOD_NAMES.pcap ]] || python3 "$BENCH_DIR/gen_flood.py" names "$FLOOD_NAMES" "$WORK/names-$FLOOD_NAMES.pcap"
mem() { # mem NAME CMD... -> peak RSS in KiB; the output stays in $WORK/NAME.out
    local name=$1; shift
    /usr/bin/time -f '%M' -o "$WORK/time.txt" "$@" >"$WORK/$name.out" 2>&1 || true
    cat "$WORK/time.txt"
}
BENCH_PROFILE=-
put flood.flows "$FLOOD_FLOWS"
put flood.names "$FLOOD_NAMES"
put flood.flows_engine_kib "$(mem flows-engine "$ENGINE_RSS" "$WORK/flows-$FLOOD_FLOWS.pcap")"
put flood.names_engine_kib "$(mem names-engine "$ENGINE_RSS" "$WORK/names-$FLOOD_NAMES.pcap")"
put flood.flows_analyze_kib "$(mem flows-analyze "$PODPATH" analyze --format prometheus "${PODPATH_FLAGS[@]}" "$WORK/flows-$FLOOD_FLOWS.pcap")"
put flood.names_analyze_kib "$(mem names-analyze "$PODPATH" analyze --format prometheus "${PODPATH_FLAGS[@]}" "$WORK/names-$FLOOD_NAMES.pcap")"
put flood.flows_engine_line "$(grep -h 'packets=' "$WORK/flows-engine.out" || true)"
put flood.names_engine_line "$(grep -h 'packets=' "$WORK/names-engine.out" || true)"

# ------------------------------------------------------------ criterion
if [[ $BENCH_CRITERION == 1 ]]; then
    blog "criterion"
    (cd "$REPO" && cargo bench --bench hot_paths -- --noplot) >"$WORK/criterion.txt" 2>&1 || true
    # A long benchmark name sits on its own line above its `time:` line.
    awk '/time:/ { line = $0; sub(/^ +/, "", line); if (prev != "change:") print ($1 == "time:" ? prev " " : "") line } { prev = $1 }' \
        "$WORK/criterion.txt" >"$WORK/criterion-lines.txt"
    put criterion "$WORK/criterion-lines.txt"
fi

# ------------------------------------------------------------ report
put machine "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
put versions "podpath $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'), $(tcpdump --version 2>&1 | head -1), $(tshark --version 2>/dev/null | head -1 | sed 's/\.$//'), $(hyperfine --version)$( [[ $BENCH_PERF == 1 ]] && echo ", $(perf --version)")"
put settings "profiles: $PROFILES; BENCH_ROUNDS=$ROUNDS, OFFLINE_PACKETS=$OFFLINE_PACKETS, LIVE_SECONDS=$LIVE_SECONDS, LIVE_MODES=$LIVE_MODES, BENCH_PERF=$BENCH_PERF (PERF_FREQ=$PERF_FREQ, PERF_REPEAT=$PERF_REPEAT, PERF_LIVE_SECONDS=$PERF_LIVE_SECONDS); run took $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
md=$RESULTS/$STAMP.md
python3 "$BENCH_DIR/report.py" "$WORK/results.tsv" "Benchmark run $STAMP" >"$md"
cat "$md"
if [[ $BENCH_WRITE_DOC == 1 ]]; then
    python3 "$BENCH_DIR/report.py" --splice "$REPO/BENCHMARKS.md" "$md"
    blog "results in $md and BENCHMARKS.md"
else
    blog "results in $md (BENCHMARKS.md left as it was)"
fi
