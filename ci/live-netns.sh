#!/usr/bin/env bash
# ci/live-checks.sh against the real binary, in two network namespaces of its
# own (so it does not need, or disturb, the shared lab in lab/):
#
#   ci/live-netns.sh target/release/podpath
#
#   pp-pkgc-<pid>  the "pod": podpath run (eth0 + lo), a client loop, and
#                  ci/live-checks.sh (curl, Prometheus, the dashboard queries)
#   pp-pkgs-<pid>  the "rest of the cluster", over a veth pair: a pod IP
#                  (10.244.1.10, nginx stand-in), a ClusterIP nothing resolves
#                  (10.96.100.10), a ClusterIP the name demo-app resolves to
#                  (10.96.100.11), cluster DNS (dnsmasq on 10.244.0.53; PTR
#                  as CoreDNS answers it: the pod IP is an endpoint of
#                  demo-app, 10.96.100.10 the Service `legacy`)
#
# The client loop asks PTR for the pod IP and 10.96.100.10 (getent, as an
# app would), calls localhost, the pod IP, all three ClusterIPs, demo-app,
# demo-app.default, the Service FQDN, a missing path, a name that does not
# exist, a closed port and a DELETE answered 501, and the server calls the
# pod's port 8080, once a second for at most LOOP_SECONDS (default 150). Needs root, dnsmasq, python3, curl. Everything it made is removed on
# exit. Extra environment is passed to ci/live-checks.sh (SCRAPE_WAIT,
# MIN_DATA_RATIO, PROMETHEUS_PORT).
set -euo pipefail

bin=$(realpath "${1:?usage: ci/live-netns.sh PATH/TO/podpath}")
root=$(cd "$(dirname "$0")/.." && pwd)
c="pp-pkgc-$$"
s="pp-pkgs-$$"
web=$(mktemp -d)
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$c" 2>/dev/null || true
    ip netns del "$s" 2>/dev/null || true
    rm -rf "/etc/netns/$c" "$web"
}
trap cleanup EXIT

command -v dnsmasq >/dev/null || apt-get install -y --no-install-recommends dnsmasq-base >/dev/null

ip netns add "$c"
ip netns add "$s"
# Created directly inside the namespaces: nothing appears in the root one.
ip link add "ppc$$" netns "$c" type veth peer name "pps$$" netns "$s"
ip -n "$c" link set "ppc$$" name eth0
ip -n "$s" link set "pps$$" name eth0
for n in "$c" "$s"; do
    ip -n "$n" link set lo up
    ip -n "$n" link set eth0 up
done
ip -n "$c" addr add 10.244.1.20/16 dev eth0
ip -n "$c" route add 10.96.0.0/12 dev eth0
ip -n "$s" addr add 10.244.1.10/16 dev eth0
for a in 10.244.0.53 10.96.100.10 10.96.100.11; do ip -n "$s" addr add "$a/32" dev eth0; done

# `ip netns exec` bind-mounts these over /etc for commands in the pod.
mkdir -p "/etc/netns/$c"
printf 'nameserver 10.244.0.53\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n' \
    > "/etc/netns/$c/resolv.conf"
echo hello > "$web/index.html"

ip netns exec "$s" dnsmasq --keep-in-foreground --listen-address=10.244.0.53 --bind-interfaces \
    --no-resolv --no-hosts --local=/cluster.local/ --user=root --pid-file="$web/dnsmasq.pid" --log-facility=/dev/null \
    --address=/demo-app.default.svc.cluster.local/10.96.100.11 \
    --ptr-record=10.1.244.10.in-addr.arpa,10-244-1-10.demo-app.default.svc.cluster.local \
    --ptr-record=10.100.96.10.in-addr.arpa,legacy.default.svc.cluster.local &
pids+=($!)
ip netns exec "$s" python3 -m http.server 80 --bind 0.0.0.0 --directory "$web" > /dev/null 2>&1 &
pids+=($!)
# An app port in the pod, called from outside (inbound traffic).
ip netns exec "$c" python3 -m http.server 8080 --bind 0.0.0.0 --directory "$web" > /dev/null 2>&1 &
pids+=($!)
ip netns exec "$c" env POD_NAMESPACE=default POD_NAME=demo-app-2-lab POD_IP=10.244.1.20 \
    "$bin" run --listen 0.0.0.0:9809 --cluster-domain cluster.local \
    --service-cidr 10.96.0.0/12 --pod-cidr 10.244.0.0/16 --log-format json > "$web/podpath.log" 2>&1 &
pp=$!
pids+=("$pp")

for _ in $(seq 1 50); do
    ip netns exec "$c" curl -fsS -o /dev/null --max-time 1 http://127.0.0.1:9809/readyz 2>/dev/null && break
    kill -0 "$pp" 2>/dev/null || { cat "$web/podpath.log"; exit 1; }
    sleep 0.2
done

client_loop() {
    local end=$((SECONDS + ${LOOP_SECONDS:-150})) u
    while [ "$SECONDS" -lt "$end" ]; do
        ip netns exec "$c" getent hosts 10.244.1.10 10.96.100.10 || true
        for u in http://localhost:9809/healthz http://10.244.1.10/ http://10.96.100.10/ http://10.96.100.11/ http://demo-app/ \
            http://demo-app.default/ http://demo-app.default.svc.cluster.local/missing http://nosuch/ \
            http://10.244.1.10:81/; do
            ip netns exec "$c" curl -s -o /dev/null --max-time 2 "$u" || true
        done
        # 501 from the stand-in server (a 5xx), and an inbound request.
        ip netns exec "$c" curl -s -o /dev/null --max-time 2 -X DELETE http://10.244.1.10/ || true
        ip netns exec "$s" curl -s -o /dev/null --max-time 2 http://10.244.1.20:8080/ || true
        sleep 1
    done
}
client_loop > /dev/null 2>&1 &
pids+=($!)
sleep 10

# The literal destinations, named from the app's own DNS traffic: the pod
# IP and `legacy` by the PTR answers it asked for, 10.96.100.11 by the
# answers for demo-app.
ip netns exec "$c" env PODPATH_METRICS_URL=http://127.0.0.1:9809/metrics LAB_NAMESPACE=default \
    EXPECT_NAMED="10.244.1.10=demo-app/default 10.96.100.11=demo-app/default 10.96.100.10=legacy/default" \
    LAB_POD=demo-app-2-lab LAB_WORKLOAD=demo-app-2 "$root/ci/live-checks.sh"
echo "podpath: $(grep -E '^VmHWM' "/proc/$pp/status" | tr -s ' \t' ' '), cpu $(ps -o cputime= -p "$pp")"
