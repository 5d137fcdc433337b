#!/usr/bin/env bash
# Every benchmark, one command (as root):  bench/run.sh
#
# 1. builds podpath (release) and the engine_rss example;
# 2. builds the benchmark lab (namespaces ${LAB_PREFIX:-pb-}*, never pp-*);
# 3. offline: records OFFLINE_PACKETS (200 000) packets in the busy client pod
#    under the load of bench/lib.sh, then times `podpath analyze`,
#    `tcpdump -r FILE -w /dev/null` and `tshark -n -r FILE -q -z dns,tree`
#    in turn with hyperfine (BENCH_ROUNDS rounds, default 7);
# 4. live: `podpath run` and `tcpdump -i any -w FILE` side by side in the pod
#    for LIVE_SECONDS (30) of the same load, once per capture mode in
#    LIVE_MODES ("ring recvmsg"): CPU seconds of both, podpath's drops, its
#    outbound TCP connections against the SYNs in tcpdump's file, podpath's
#    peak RSS;
# 5. memory: generated floods (1M distinct flows, 100k distinct DNS names)
#    through the engine (engine_rss) and through `podpath analyze`;
# 6. criterion micro-benchmarks (BENCH_CRITERION=0 skips them);
# then writes bench/results/<date>.md and the results section of BENCHMARKS.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_ROUNDS:-7}
OFFLINE_PACKETS=${OFFLINE_PACKETS:-200000}
LIVE_SECONDS=${LIVE_SECONDS:-30}
LIVE_MODES=${LIVE_MODES:-ring recvmsg}
FLOOD_FLOWS=${FLOOD_FLOWS:-1000000}
FLOOD_NAMES=${FLOOD_NAMES:-100000}
BENCH_CRITERION=${BENCH_CRITERION:-1}
STAMP=$(date -u +%Y-%m-%d)
RESULTS=${RESULTS:-$REPO/bench/results}
WORK=${BENCH_WORK:-/tmp/podpath-bench-$LAB_PREFIX}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
PODPATH=$CARGO_TARGET_DIR/release/podpath
ENGINE_RSS=$CARGO_TARGET_DIR/release/examples/engine_rss

[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (namespaces, capture)" >&2; exit 1; }
for tool in hyperfine tcpdump tshark wrk dnsperf python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (see bench/README.md)" >&2; exit 1; }
done
mkdir -p "$RESULTS" "$WORK"

cleanup() {
    stop_load
    [[ -n ${TCPDUMP_PID:-} ]] && stop_pid "$TCPDUMP_PID"
    [[ -n ${PODPATH_PID:-} ]] && stop_pid "$PODPATH_PID"
    "$LAB" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

blog "build"
(cd "$REPO" && cargo build --release --bin podpath --example engine_rss)

"$LAB" up
sleep 2

# ------------------------------------------------------------ offline
OFFLINE=$WORK/offline.pcap
rm -f "$OFFLINE"
blog "offline: recording $OFFLINE_PACKETS packets in $POD_NS"
start_tcpdump "$OFFLINE" -c "$OFFLINE_PACKETS"
start_load 120 "$WORK"
wait "$TCPDUMP_PID" || true
TCPDUMP_PID=
stop_load
offline_packets=$(awk '/packets captured/ { print $1 }' "$OFFLINE.log")
blog "offline: $offline_packets packets, $(du -h "$OFFLINE" | cut -f1)"

blog "offline: hyperfine, $ROUNDS rounds"
hyperfine -N --runs "$ROUNDS" --warmup 1 --export-json "$WORK/offline.json" \
    -n 'podpath analyze' "$PODPATH analyze ${PODPATH_FLAGS[*]} $OFFLINE" \
    -n 'tcpdump -r -w /dev/null' "tcpdump -r $OFFLINE -w /dev/null" \
    -n 'tshark -z dns,tree' "tshark -n -r $OFFLINE -q -z dns,tree" >"$WORK/hyperfine.txt" 2>&1
read -r t_podpath t_tcpdump t_tshark < <(python3 -c '
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print(*(r[k]["median"] for k in ("podpath analyze", "tcpdump -r -w /dev/null", "tshark -z dns,tree")))
' "$WORK/offline.json")

profile=""
if command -v perf >/dev/null; then
    perf record -q -F 2999 -g -o "$WORK/analyze.perf" "$PODPATH" analyze "${PODPATH_FLAGS[@]}" "$OFFLINE" >/dev/null 2>&1 || true
    profile=$(perf report -i "$WORK/analyze.perf" --no-children --sort sym --stdio 2>/dev/null \
        | grep -E '^ +[0-9]' | head -12 || true)
fi

# ------------------------------------------------------------ live
# One run per capture mode (LIVE_MODES), each with its own tcpdump beside it.
for mode in $LIVE_MODES; do
    live_measure "$mode"
done
PODPATH_RUN_FLAGS=()
"$LAB" down

# ------------------------------------------------------------ memory
blog "memory: floods"
[[ -s $WORK/flows.pcap ]] || python3 "$BENCH_DIR/gen_flood.py" flows "$FLOOD_FLOWS" "$WORK/flows.pcap"
[[ -s $WORK/names.pcap ]] || python3 "$BENCH_DIR/gen_flood.py" names "$FLOOD_NAMES" "$WORK/names.pcap"
mem() { # mem NAME CMD... -> "maxrss_kib wall_s"
    local name=$1; shift
    /usr/bin/time -f '%M %e' -o "$WORK/time.txt" "$@" >"$WORK/$name.out" 2>&1 || true
    cat "$WORK/time.txt"
}
read -r flows_engine_kib _ < <(mem flows-engine "$ENGINE_RSS" "$WORK/flows.pcap")
read -r names_engine_kib _ < <(mem names-engine "$ENGINE_RSS" "$WORK/names.pcap")
read -r flows_analyze_kib _ < <(mem flows-analyze "$PODPATH" analyze --format prometheus "${PODPATH_FLAGS[@]}" "$WORK/flows.pcap")
read -r names_analyze_kib _ < <(mem names-analyze "$PODPATH" analyze --format prometheus "${PODPATH_FLAGS[@]}" "$WORK/names.pcap")
flows_engine_line=$(grep -h 'packets=' "$WORK/flows-engine.out" || true)
names_engine_line=$(grep -h 'packets=' "$WORK/names-engine.out" || true)

# ------------------------------------------------------------ criterion
criterion=""
if [[ $BENCH_CRITERION == 1 ]]; then
    blog "criterion"
    (cd "$REPO" && cargo bench --bench hot_paths -- --noplot) >"$WORK/criterion.txt" 2>&1 || true
    # A long benchmark name sits on its own line above its `time:` line.
    criterion=$(awk '/time:/ { line = $0; sub(/^ +/, "", line); if (prev != "change:") print ($1 == "time:" ? prev " " : "") line } { prev = $1 }' "$WORK/criterion.txt")
fi

# ------------------------------------------------------------ report
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
yes_no() { # yes_no A OP B
    if awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; then echo yes; else echo NO; fi
}
r_tcpdump=$(ratio "$t_podpath" "$t_tcpdump")
r_tshark=$(ratio "$t_tshark" "$t_podpath")
pps() { awk -v n="${L[$1,pkts]}" -v s="${L[$1,secs]}" 'BEGIN { printf "%.0f", n / s }'; }
md=$RESULTS/$STAMP.md
{
    echo "# Benchmark run $STAMP"
    echo
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "podpath $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'), $(tcpdump --version 2>&1 | head -1), $(tshark --version 2>/dev/null | head -1 | sed 's/\.$//'), $(hyperfine --version)."
    echo
    echo "| metric | podpath | peer | ratio | goal | met? |"
    echo "| --- | --- | --- | --- | --- | --- |"
    printf '| offline, median of %s (%s packets) | %.3f s | tcpdump -r -w /dev/null %.3f s | %sx tcpdump | <= 1.5x | %s |\n' \
        "$ROUNDS" "$offline_packets" "$t_podpath" "$t_tcpdump" "$r_tcpdump" "$(yes_no "$r_tcpdump" "<=" 1.5)"
    printf '| offline vs tshark | %.3f s | tshark -z dns,tree %.3f s | %sx faster | >= 20x | %s |\n' \
        "$t_podpath" "$t_tshark" "$r_tshark" "$(yes_no "$r_tshark" ">=" 20)"
    for mode in $LIVE_MODES; do
        r_cpu=$(ratio "${L[$mode,cpu]}" "${L[$mode,tcpu]}")
        printf '| live CPU (%s), %s s at %s packets/s | %s s | tcpdump -i any -w %s s | %sx | <= 1x | %s |\n' \
            "$mode" "${L[$mode,secs]}" "$(pps "$mode")" "${L[$mode,cpu]}" "${L[$mode,tcpu]}" "$r_cpu" "$(yes_no "$r_cpu" "<=" 1)"
        printf '| live drops (%s) | %s | tcpdump kernel drops %s | | 0 | %s |\n' "$mode" "${L[$mode,drops]}" "${L[$mode,tkdrops]}" "$(yes_no "${L[$mode,drops]}" "==" 0)"
        printf '| outbound TCP connections (%s) | %s | %s distinct SYNs in tcpdump file | | exact | %s |\n' \
            "$mode" "${L[$mode,conns]}" "${L[$mode,tconns]}" "$(yes_no "${L[$mode,conns]}" "==" "${L[$mode,tconns]}")"
        printf '| peak RSS at steady load (%s, VmHWM) | %s MiB | | | <= 32 MiB | %s |\n' "$mode" "$(mib "${L[$mode,hwm]}")" "$(yes_no "${L[$mode,hwm]}" "<=" 32768)"
    done
    printf '| peak RSS, %s distinct flows (engine) | %s MiB | analyze: %s MiB | | <= 64 MiB | %s |\n' \
        "$FLOOD_FLOWS" "$(mib "$flows_engine_kib")" "$(mib "$flows_analyze_kib")" "$(yes_no "$flows_engine_kib" "<=" 65536)"
    printf '| peak RSS, %s distinct DNS names (engine) | %s MiB | analyze: %s MiB | | <= 64 MiB | %s |\n' \
        "$FLOOD_NAMES" "$(mib "$names_engine_kib")" "$(mib "$names_analyze_kib")" "$(yes_no "$names_engine_kib" "<=" 65536)"
    echo
    echo "The offline capture was recorded under the same load as the live run, stopped at $OFFLINE_PACKETS packets."
    echo
    for mode in $LIVE_MODES; do
        echo "Live load ($mode): ${L[$mode,load]%;}; podpath saw ${L[$mode,pkts]} packets ($(pps "$mode")/s), tcpdump wrote ${L[$mode,tpkts]}; podpath RSS at the end $(mib "${L[$mode,rss]}") MiB."
        echo
    done
    echo
    echo "Floods (engine_rss): flows: $flows_engine_line; names: $names_engine_line"
    echo
    echo "hyperfine:"
    echo
    echo '```'
    grep -vE '^\s*$' "$WORK/hyperfine.txt" | sed "s|$WORK/||g; s|$CARGO_TARGET_DIR/release/||g"
    echo '```'
    if [[ -n $profile ]]; then
        echo
        echo "Profile of \`podpath analyze\` on the offline capture (perf, self time, top symbols):"
        echo
        echo '```'
        echo "$profile"
        echo '```'
    fi
    if [[ -n $criterion ]]; then
        echo
        echo "criterion (benches/hot_paths.rs, tests/captures/rich-any.pcap):"
        echo
        echo '```'
        echo "$criterion"
        echo '```'
    fi
} >"$md"
cat "$md"

# BENCHMARKS.md: replace the section between the markers with this run.
python3 - "$REPO/BENCHMARKS.md" "$md" <<'PY'
import sys
path, md = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- results:begin -->", "<!-- results:end -->"
try:
    text = open(path).read()
except FileNotFoundError:
    text = f"# Benchmarks\n\n{begin}\n{end}\n"
if begin not in text or end not in text:
    text += f"\n{begin}\n{end}\n"
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
body = md.split("\n", 1)[1].lstrip("\n")
open(path, "w").write(f"{head}{begin}\n\nLatest run ({sys.argv[2].rsplit('/', 1)[-1]}):\n\n{body}\n{end}{tail}")
PY
blog "results in $md and BENCHMARKS.md"
