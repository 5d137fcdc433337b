# shellcheck shell=bash disable=SC2034
# Shared pieces of the benchmark and soak scripts: the lab under a private
# prefix, the load, podpath and tcpdump in the client pod, and the counters.
# Sourced, never run.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
LAB="$REPO/lab/lab.sh"
# The benchmark lab never shares namespaces with the default lab (pp-) that
# tests and CI build.
export LAB_PREFIX=${LAB_PREFIX:-pb-}
[[ $LAB_PREFIX != pp- ]] || { echo "bench: LAB_PREFIX=pp- is the default lab's; pick another" >&2; exit 1; }

# The busy client pod: demo-app-2 (namespace default, cluster.local).
POD_NS=${LAB_PREFIX}demo-app-2
POD_IP=10.244.1.20
METRICS_ADDR=127.0.0.1:9809
PODPATH=${PODPATH:-${CARGO_TARGET_DIR:-$REPO/target}/release/podpath}
PODPATH_FLAGS=(--service-cidr 10.96.0.0/12 --pod-cidr 10.244.0.0/16)
# Flags only `podpath run` takes (the capture mode).
PODPATH_RUN_FLAGS=()

# The load (README of bench/ and BENCHMARKS.md describe it). Two wrk
# processes on keep-alive connections (one through the DNS name, one through
# the ClusterIP), one wrk opening a fresh connection per request, dnsperf at
# a fixed rate with the resolver's search-list expansions (most NXDOMAIN),
# and a slow curl loop that resolves a namespaced name each time.
LOAD_KA_CONNS=${LOAD_KA_CONNS:-24}
LOAD_CLOSE_CONNS=${LOAD_CLOSE_CONNS:-8}
LOAD_DELAY_MS=${LOAD_DELAY_MS:-2}
LOAD_DNS_QPS=${LOAD_DNS_QPS:-3000}
LOAD_CURL_PER_S=${LOAD_CURL_PER_S:-5}

blog() { echo "bench $(date -u +%H:%M:%S): $*" >&2; }

in_pod() { ip netns exec "$POD_NS" "$@"; }

write_load_files() { # write_load_files DIR
    local dir=$1
    mkdir -p "$dir"
    printf 'function delay() return %d end\n' "$LOAD_DELAY_MS" >"$dir/delay.lua"
    # What glibc sends for `demo-app.default`, `nosuch` and `api.example.com`
    # from a pod in namespace default (search default.svc.cluster.local
    # svc.cluster.local cluster.local, ndots:5), plus direct hits.
    cat >"$dir/dns-names.txt" <<'NAMES'
demo-app.default.default.svc.cluster.local A
demo-app.default.default.svc.cluster.local AAAA
demo-app.default.svc.cluster.local A
demo-app.default.svc.cluster.local AAAA
demo-app-2.default.svc.cluster.local A
nosuch.default.svc.cluster.local A
nosuch.default.svc.cluster.local AAAA
nosuch.svc.cluster.local A
nosuch.svc.cluster.local AAAA
nosuch.cluster.local A
nosuch.cluster.local AAAA
nosuch A
nosuch AAAA
api.example.com.default.svc.cluster.local A
api.example.com.default.svc.cluster.local AAAA
api.example.com.svc.cluster.local A
api.example.com.svc.cluster.local AAAA
api.example.com.cluster.local A
api.example.com.cluster.local AAAA
api.example.com A
api.example.com AAAA
kube-dns.kube-system.svc.cluster.local A
NAMES
}

LOAD_PIDS=()

start_load() { # start_load SECONDS DIR : every generator bounded by time (and the curl loop by count)
    local secs=$1 dir=$2 limit=$(($1 + 15))
    write_load_files "$dir"
    timeout "$limit" ip netns exec "$POD_NS" wrk -t1 -c"$LOAD_KA_CONNS" -d"${secs}s" \
        -s "$dir/delay.lua" http://demo-app/ >"$dir/wrk-name.txt" 2>&1 &
    LOAD_PIDS+=($!)
    timeout "$limit" ip netns exec "$POD_NS" wrk -t1 -c"$LOAD_KA_CONNS" -d"${secs}s" \
        -s "$dir/delay.lua" http://10.96.100.10/ >"$dir/wrk-clusterip.txt" 2>&1 &
    LOAD_PIDS+=($!)
    timeout "$limit" ip netns exec "$POD_NS" wrk -t1 -c"$LOAD_CLOSE_CONNS" -d"${secs}s" \
        -H 'Connection: close' -s "$dir/delay.lua" http://10.96.100.10/ >"$dir/wrk-close.txt" 2>&1 &
    LOAD_PIDS+=($!)
    timeout "$limit" ip netns exec "$POD_NS" dnsperf -s 10.96.0.10 -d "$dir/dns-names.txt" \
        -Q "$LOAD_DNS_QPS" -l "$secs" -c 4 -t 2 >"$dir/dnsperf.txt" 2>&1 &
    LOAD_PIDS+=($!)
    local n=$((secs * LOAD_CURL_PER_S))
    # shellcheck disable=SC2016 # expanded by the inner shell
    timeout "$limit" ip netns exec "$POD_NS" bash -c '
        end=$((SECONDS + $2))
        for ((i = 0; i < $1 && SECONDS < end; i++)); do
            curl -s -o /dev/null --max-time 2 http://demo-app.default/ || true
            sleep "$3"
        done' _ "$n" "$secs" "$(awk -v r="$LOAD_CURL_PER_S" 'BEGIN { printf "%.3f", 1 / r }')" &
    LOAD_PIDS+=($!)
}

wait_load() {
    local pid
    for pid in "${LOAD_PIDS[@]}"; do wait "$pid" || true; done
    LOAD_PIDS=()
}

stop_load() {
    local pid
    for pid in "${LOAD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait_load
}

load_summary() { # load_summary DIR : one line per generator
    local dir=$1 f
    for f in wrk-name wrk-clusterip wrk-close; do
        printf '%s: %s\n' "$f" "$(grep -h 'Requests/sec' "$dir/$f.txt" 2>/dev/null | tr -s ' ' || echo '?')"
    done
    printf 'dnsperf: %s\n' "$(grep -h 'Queries per second' "$dir/dnsperf.txt" 2>/dev/null | tr -s ' ' || echo '?')"
}

# podpath run in the pod; sets PODPATH_PID (ip netns exec and env exec, so $! is
# podpath itself; a shell function here would put a subshell in between).
start_podpath() { # start_podpath LOGFILE
    ip netns exec "$POD_NS" env POD_IP="$POD_IP" POD_NAMESPACE=default "$PODPATH" run "${PODPATH_FLAGS[@]}" "${PODPATH_RUN_FLAGS[@]}" \
        --listen "$METRICS_ADDR" --log warn >"$1" 2>&1 &
    PODPATH_PID=$!
    local _
    for _ in $(seq 1 100); do
        in_pod curl -sf "http://$METRICS_ADDR/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: podpath did not become ready; log:" >&2; cat "$1" >&2; return 1
}

stop_pid() { # stop_pid PID : SIGINT, then wait
    kill -INT "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

scrape() { in_pod curl -sf --max-time 5 "http://$METRICS_ADDR/metrics"; }

# Sum of a metric's samples whose labels contain FILTER.
metric_sum() { # metric_sum METRICS-TEXT NAME [FILTER]
    awk -v name="$2" -v filt="${3:-}" '
        index($0, name "{") == 1 || $1 == name { if (filt == "" || index($0, filt)) s += $NF }
        END { printf "%d\n", s }' <<<"$1"
}

# tcpdump in the pod; sets TCPDUMP_PID once it listens.
start_tcpdump() { # start_tcpdump FILE ARGS...
    local file=$1 _; shift
    ip netns exec "$POD_NS" tcpdump -Z root -i any -w "$file" "$@" 2>"$file.log" &
    TCPDUMP_PID=$!
    for _ in $(seq 1 50); do
        grep -q 'listening on' "$file.log" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: tcpdump did not start" >&2; cat "$file.log" >&2; return 1
}

# utime+stime of a process in seconds.
cpu_seconds() { # cpu_seconds PID
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat"
}

status_kib() { # status_kib PID FIELD (VmRSS, VmHWM)
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# Outbound TCP connections in a capture: distinct SYNs without ACK sent by
# the pod (or on loopback), podpath's metrics port excluded.
count_syns() { # count_syns FILE
    python3 "$BENCH_DIR/count_syns.py" --src "$POD_IP" --exclude-port "${METRICS_ADDR##*:}" "$1"
}

# `podpath run` and `tcpdump -i any -w` side by side in the pod for
# LIVE_SECONDS of the load, in capture MODE; results in L[MODE,*]. Needs WORK
# and the lab up.
declare -A L
live_measure() { # live_measure MODE
    local mode=$1 m0 m1 p_cpu0 p_cpu1 t_cpu0 t_cpu1 t0 t1 live
    sleep 3
    blog "live ($mode): ${LIVE_SECONDS}s, podpath run and tcpdump side by side"
    live=$WORK/live-$mode.pcap
    rm -f "$live"
    PODPATH_RUN_FLAGS=(--capture-mode "$mode")
    start_podpath "$WORK/podpath-$mode.log"
    start_tcpdump "$live"
    m0=$(scrape)
    p_cpu0=$(cpu_seconds "$PODPATH_PID"); t_cpu0=$(cpu_seconds "$TCPDUMP_PID")
    t0=$(date +%s.%N)
    start_load "$LIVE_SECONDS" "$WORK"
    wait_load
    sleep 3
    p_cpu1=$(cpu_seconds "$PODPATH_PID"); t_cpu1=$(cpu_seconds "$TCPDUMP_PID")
    t1=$(date +%s.%N)
    m1=$(scrape)
    L[$mode,load]=$(load_summary "$WORK" | tr '\n' ';')
    L[$mode,hwm]=$(status_kib "$PODPATH_PID" VmHWM)
    L[$mode,rss]=$(status_kib "$PODPATH_PID" VmRSS)
    stop_pid "$TCPDUMP_PID"; TCPDUMP_PID=
    stop_pid "$PODPATH_PID"; PODPATH_PID=
    L[$mode,pkts]=$(($(metric_sum "$m1" podpath_capture_packets_total) - $(metric_sum "$m0" podpath_capture_packets_total)))
    L[$mode,drops]=$(metric_sum "$m1" podpath_capture_drops_total)
    L[$mode,conns]=$(($(metric_sum "$m1" podpath_connections_total 'protocol="tcp"') - $(metric_sum "$m0" podpath_connections_total 'protocol="tcp"')))
    L[$mode,tconns]=$(count_syns "$live")
    L[$mode,tpkts]=$(awk '/packets captured/ { print $1 }' "$live.log")
    L[$mode,tkdrops]=$(awk '/dropped by kernel/ { print $1 }' "$live.log")
    L[$mode,secs]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    L[$mode,cpu]=$(awk -v a="$p_cpu0" -v b="$p_cpu1" 'BEGIN { printf "%.2f", b - a }')
    L[$mode,tcpu]=$(awk -v a="$t_cpu0" -v b="$t_cpu1" 'BEGIN { printf "%.2f", b - a }')
    rm -f "$live"
}
