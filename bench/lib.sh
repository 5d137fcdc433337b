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

# The load: a named profile (BENCH_PROFILE, bench/README.md and
# BENCHMARKS.md describe each), every generator in the client pod and bounded
# in time (and the curl loop also in count).
BENCH_PROFILES_ALL="default keepalive dns short tls"
BENCH_PROFILE=${BENCH_PROFILE:-default}
# default: two wrk on keep-alive connections (one through the DNS name, one
# through the ClusterIP), one wrk opening a fresh connection per request,
# dnsperf at a fixed rate with the resolver's search-list expansions (most
# NXDOMAIN), and a slow curl loop that resolves a namespaced name each time.
LOAD_KA_CONNS=${LOAD_KA_CONNS:-24}
LOAD_CLOSE_CONNS=${LOAD_CLOSE_CONNS:-8}
LOAD_DELAY_MS=${LOAD_DELAY_MS:-2}
LOAD_DNS_QPS=${LOAD_DNS_QPS:-3000}
LOAD_CURL_PER_S=${LOAD_CURL_PER_S:-5}
# keepalive: one keep-alive wrk fetches a LOAD_LARGE_KIB response with
# LOAD_LARGE_DELAY_MS between requests (so the capture files stay a few
# hundred MB), the other small ones as fast as the default load.
LOAD_LARGE_KIB=${LOAD_LARGE_KIB:-16}
LOAD_LARGE_DELAY_MS=${LOAD_LARGE_DELAY_MS:-10}
# dns: dnsperf at LOAD_DNS_HEAVY_QPS plus glibc's own search walk
# (getaddrinfo, A and AAAA per suffix) LOAD_RESOLVER_PER_S times a second.
LOAD_DNS_HEAVY_QPS=${LOAD_DNS_HEAVY_QPS:-8000}
LOAD_RESOLVER_PER_S=${LOAD_RESOLVER_PER_S:-200}
# short: LOAD_SHORT_CONNS wrk connections, each request on a new connection,
# half through the ClusterIP and half to the pod IP; curl at LOAD_SHORT_CURL_PER_S.
LOAD_SHORT_CONNS=${LOAD_SHORT_CONNS:-16}
LOAD_SHORT_CURL_PER_S=${LOAD_SHORT_CURL_PER_S:-20}
# The light DNS background of the profiles that are not about DNS.
LOAD_DNS_LIGHT_QPS=${LOAD_DNS_LIGHT_QPS:-300}

# The lab's run directory (nginx document roots), as lab.sh derives it.
export LAB_RUN_DIR=${LAB_RUN_DIR:-/run/${LAB_PREFIX}lab}

blog() { echo "bench $(date -u +%H:%M:%S): $*" >&2; }

in_pod() { ip netns exec "$POD_NS" "$@"; }

# The lab with HTTPS on (the tls profile) and the keepalive profile's large
# response in demo-app's document root.
bench_lab_up() {
    LAB_TLS=1 "$LAB" up
    head -c "$((LOAD_LARGE_KIB * 1024))" /dev/zero | tr '\0' x >"$LAB_RUN_DIR/demo-app/html/large"
}

write_load_files() { # write_load_files DIR
    local dir=$1
    mkdir -p "$dir"
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
LOAD_NAMES=()

# One generator in the pod: output in $LOAD_DIR/NAME.txt, killed at $LOAD_LIMIT s.
gen() { # gen NAME CMD...
    local name=$1; shift
    timeout "$LOAD_LIMIT" ip netns exec "$POD_NS" "$@" >"$LOAD_DIR/$name.txt" 2>&1 &
    LOAD_PIDS+=($!)
    LOAD_NAMES+=("$name")
}

gen_wrk() { # gen_wrk NAME CONNS DELAY_MS URL [WRK-ARGS...] : wrk for $LOAD_SECS, DELAY_MS between requests
    local name=$1 conns=$2 delay=$3 url=$4; shift 4
    printf 'function delay() return %d end\n' "$delay" >"$LOAD_DIR/delay-$delay.lua"
    gen "$name" wrk -t1 -c"$conns" -d"${LOAD_SECS}s" -s "$LOAD_DIR/delay-$delay.lua" "$@" "$url"
}

gen_dnsperf() { # gen_dnsperf NAME QPS
    gen "$1" dnsperf -s 10.96.0.10 -d "$LOAD_DIR/dns-names.txt" -Q "$2" -l "$LOAD_SECS" -c 4 -t 2
}

gen_curl() { # gen_curl NAME PER_S URL [CURL-ARGS...] : at most PER_S requests a second, one process each
    local name=$1 per_s=$2 url=$3; shift 3
    # shellcheck disable=SC2016 # expanded by the inner shell
    gen "$name" bash -c '
        n=$1 secs=$2 pause=$3 url=$4; shift 4
        end=$((SECONDS + secs)) ok=0
        for ((i = 0; i < n && SECONDS < end; i++)); do
            curl -s -o /dev/null --max-time 2 "$@" "$url" && ok=$((ok + 1))
            sleep "$pause"
        done
        echo "Requests: $i ($ok ok)"' _ "$((LOAD_SECS * per_s))" "$LOAD_SECS" \
        "$(awk -v r="$per_s" 'BEGIN { printf "%.3f", 1 / r }')" "$url" "$@"
}

gen_resolver() { # gen_resolver NAME PER_S NAME...
    local name=$1 per_s=$2; shift 2
    gen "$name" python3 "$BENCH_DIR/resolve_loop.py" "$per_s" "$LOAD_SECS" "$@"
}

start_load() { # start_load SECONDS DIR : the load of BENCH_PROFILE
    LOAD_SECS=$1 LOAD_DIR=$2 LOAD_LIMIT=$(($1 + 15))
    LOAD_NAMES=()
    write_load_files "$LOAD_DIR"
    case $BENCH_PROFILE in
        default)
            gen_wrk wrk-name "$LOAD_KA_CONNS" "$LOAD_DELAY_MS" http://demo-app/
            gen_wrk wrk-clusterip "$LOAD_KA_CONNS" "$LOAD_DELAY_MS" http://10.96.100.10/
            gen_wrk wrk-close "$LOAD_CLOSE_CONNS" "$LOAD_DELAY_MS" http://10.96.100.10/ -H 'Connection: close'
            gen_dnsperf dnsperf "$LOAD_DNS_QPS"
            gen_curl curl "$LOAD_CURL_PER_S" http://demo-app.default/ ;;
        keepalive)
            # Keep-alive only: large bodies through the name, small ones (many
            # heads to parse) through the ClusterIP.
            gen_wrk wrk-name-large "$LOAD_KA_CONNS" "$LOAD_LARGE_DELAY_MS" http://demo-app/large
            gen_wrk wrk-clusterip "$LOAD_KA_CONNS" "$LOAD_DELAY_MS" http://10.96.100.10/
            gen_dnsperf dnsperf "$LOAD_DNS_LIGHT_QPS"
            gen_curl curl "$LOAD_CURL_PER_S" http://demo-app.default/ ;;
        dns)
            gen_dnsperf dnsperf "$LOAD_DNS_HEAVY_QPS"
            gen_resolver resolver "$LOAD_RESOLVER_PER_S" nosuch api.example.com demo-app.default \
                kube-dns.kube-system demo-app
            gen_curl curl "$LOAD_CURL_PER_S" http://demo-app.default/ ;;
        short)
            gen_wrk wrk-close-clusterip "$((LOAD_SHORT_CONNS / 2))" "$LOAD_DELAY_MS" http://10.96.100.10/ -H 'Connection: close'
            gen_wrk wrk-close-podip "$((LOAD_SHORT_CONNS - LOAD_SHORT_CONNS / 2))" "$LOAD_DELAY_MS" http://10.244.1.10/ -H 'Connection: close'
            gen_dnsperf dnsperf "$LOAD_DNS_LIGHT_QPS"
            gen_curl curl "$LOAD_SHORT_CURL_PER_S" http://demo-app.default/ ;;
        tls)
            # HTTPS on keep-alive connections (SNI demo-app) and a fresh
            # handshake per request (no SNI: an address); curl with SNI
            # demo-app.default after the search walk.
            gen_wrk wrk-tls-name "$LOAD_KA_CONNS" "$LOAD_DELAY_MS" https://demo-app/
            gen_wrk wrk-tls-close "$LOAD_CLOSE_CONNS" "$LOAD_DELAY_MS" https://10.96.100.10/ -H 'Connection: close'
            gen_dnsperf dnsperf "$LOAD_DNS_LIGHT_QPS"
            gen_curl curl "$LOAD_CURL_PER_S" https://demo-app.default/ -k ;;
        *)
            echo "bench: unknown profile '$BENCH_PROFILE' (profiles: $BENCH_PROFILES_ALL)" >&2
            return 1 ;;
    esac
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

load_summary() { # load_summary DIR : one line per generator of the last start_load
    local dir=$1 name pattern
    for name in "${LOAD_NAMES[@]}"; do
        case $name in
            wrk*) pattern='Requests/sec|Socket errors|Non-2xx' ;;
            dnsperf*) pattern='Queries per second' ;;
            *) pattern='Requests:|Lookups:' ;;
        esac
        printf '%s: %s\n' "$name" "$(grep -hE "$pattern" "$dir/$name.txt" 2>/dev/null | tr -s ' ' | tr '\n' ' ' | sed 's/ $//' || echo '?')"
    done
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

# CPU time of a process in seconds: the sum of its threads' run time from
# schedstat (nanoseconds; utime+stime in /proc/PID/stat move in 10 ms ticks,
# too coarse for tcpdump's fraction of a second). podpath's and tcpdump's
# threads live as long as the process, so none drops out of the sum.
cpu_seconds() { # cpu_seconds PID
    if [[ -r /proc/$1/schedstat ]]; then
        cat "/proc/$1/task/"*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.4f\n", s / 1e9 }'
    else
        awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat"
    fi
}

status_kib() { # status_kib PID FIELD (VmRSS, VmHWM)
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# Outbound TCP connections in a capture: distinct SYNs without ACK sent by
# the pod (or on loopback), podpath's metrics port excluded.
count_syns() { # count_syns FILE
    python3 "$BENCH_DIR/count_syns.py" --src "$POD_IP" --exclude-port "${METRICS_ADDR##*:}" "$1"
}

# One measured value of the current profile: a row of $WORK/results.tsv,
# which bench/report.py turns into the results.
put() { # put KEY VALUE
    printf '%s\t%s\t%s\n' "$BENCH_PROFILE" "$1" "$2" >>"$WORK/results.tsv"
}

# `podpath run` and `tcpdump -i any -w` side by side in the pod for
# LIVE_SECONDS of the profile's load, in capture MODE; puts live.MODE.* rows.
# Needs WORK and the lab up.
live_measure() { # live_measure MODE
    local mode=$1 m0 m1 p_cpu0 p_cpu1 t_cpu0 t_cpu1 t0 t1 live k=live.$1
    sleep 3
    blog "$BENCH_PROFILE: live ($mode), ${LIVE_SECONDS}s, podpath run and tcpdump side by side"
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
    put "$k.load" "$(load_summary "$WORK" | tr '\n' ';' | sed 's/;$//')"
    put "$k.hwm_kib" "$(status_kib "$PODPATH_PID" VmHWM)"
    put "$k.rss_kib" "$(status_kib "$PODPATH_PID" VmRSS)"
    put "$k.tcpdump_hwm_kib" "$(status_kib "$TCPDUMP_PID" VmHWM)"
    stop_pid "$TCPDUMP_PID"; TCPDUMP_PID=
    stop_pid "$PODPATH_PID"; PODPATH_PID=
    put "$k.packets" "$(($(metric_sum "$m1" podpath_capture_packets_total) - $(metric_sum "$m0" podpath_capture_packets_total)))"
    put "$k.drops" "$(metric_sum "$m1" podpath_capture_drops_total)"
    put "$k.conns" "$(($(metric_sum "$m1" podpath_connections_total 'protocol="tcp"') - $(metric_sum "$m0" podpath_connections_total 'protocol="tcp"')))"
    put "$k.tcpdump_conns" "$(count_syns "$live")"
    put "$k.tcpdump_packets" "$(awk '/packets captured/ { print $1 }' "$live.log")"
    put "$k.tcpdump_drops" "$(awk '/dropped by kernel/ { print $1 }' "$live.log")"
    put "$k.seconds" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
    put "$k.cpu" "$(awk -v a="$p_cpu0" -v b="$p_cpu1" 'BEGIN { printf "%.4f", b - a }')"
    put "$k.tcpdump_cpu" "$(awk -v a="$t_cpu0" -v b="$t_cpu1" 'BEGIN { printf "%.4f", b - a }')"
    rm -f "$live"
    PODPATH_RUN_FLAGS=()
}

# perf's stage table (bench/perf_stages.py) of a recording: KEY.stages holds
# its JSON. perf script's DWARF unwinding is the slow part (seconds).
put_stages() { # put_stages KEY PERF-DATA [PERF-SCRIPT-ARGS...]
    local key=$1 data=$2; shift 2
    put "$key.stages" "$(perf script -i "$data" -F period,ip,sym,dso --no-inline "$@" 2>/dev/null \
        | python3 "$BENCH_DIR/perf_stages.py")"
}

# A separate, unmeasured live pass with perf attached to `podpath run` (ring
# mode, no tcpdump beside it: perf's sampling and unwinding cost CPU that
# must not count in live_measure's ratio); puts live_perf.* rows.
live_perf() { # live_perf SECONDS
    local secs=$1 m0 m1 c0 c1 data=$WORK/live.perf
    blog "$BENCH_PROFILE: perf on podpath run, ${secs}s"
    PODPATH_RUN_FLAGS=(--capture-mode ring)
    start_podpath "$WORK/podpath-perf.log"
    start_load "$((secs + 2))" "$WORK"
    sleep 1
    m0=$(scrape); c0=$(cpu_seconds "$PODPATH_PID")
    perf record -q -e cpu-clock -F "$PERF_FREQ" --call-graph dwarf -p "$PODPATH_PID" -o "$data" -- sleep "$secs" >/dev/null 2>&1 || true
    m1=$(scrape); c1=$(cpu_seconds "$PODPATH_PID")
    wait_load
    stop_pid "$PODPATH_PID"; PODPATH_PID=
    PODPATH_RUN_FLAGS=()
    put live_perf.packets "$(($(metric_sum "$m1" podpath_capture_packets_total) - $(metric_sum "$m0" podpath_capture_packets_total)))"
    put live_perf.cpu "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.4f", b - a }')"
    put_stages live_perf "$data"
    rm -f "$data"
}
