#!/usr/bin/env bash
# Records tests/captures/dnsretx.pcap: glibc's resolver facing a slow DNS
# server, seen from a client "pod" namespace. Two namespaces of its own
# (pp-dnsretx-c, pp-dnsretx-s; run it under `flock /tmp/podpath-lab.lock`);
# the root namespace is never touched except for
# /etc/netns/pp-dnsretx-c/resolv.conf, removed on exit.
#
# The server is dnsmasq behind slow_dns.py, which answers every datagram a
# fixed delay after it arrived (tc netem would do the same; this machine's
# kernel has no sch_netem).
# 1. `getent ahosts cart`: answers delayed 2.5 s; the resolver waits 1 s per
#    attempt (timeout:1 attempts:3), so it sends its queries again with the
#    same id, and the server answers every copy 2.5 s after it.
# 2. `getent ahosts broken.default.svc.cluster.local.`: answered SERVFAIL
#    (slow_dns.py plays a forwarder that gave up on its upstream) 7 s after
#    each copy, after the resolver gave up (late answers).
#
# Needs: iproute2, tcpdump, dnsmasq, python3.
# Asserted in crates/core/src/engine_tests/capture.rs.
set -Eeuo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../dnsretx.pcap}
C=pp-dnsretx-c
S=pp-dnsretx-s
D=$(mktemp -d /tmp/pp-dnsretx.XXXXXX)
chmod 755 "$D"

cleanup() {
    for p in "$D"/*.pid; do
        [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
    done
    sleep 0.3
    ip netns del "$C" 2>/dev/null || true
    ip netns del "$S" 2>/dev/null || true
    rm -rf "/etc/netns/$C" "$D"
}
trap cleanup EXIT
trap 'echo "record.sh: failed at line $LINENO" >&2' ERR
ip netns del "$C" 2>/dev/null || true
ip netns del "$S" 2>/dev/null || true

ip netns add "$C"
ip netns add "$S"
ip -n "$C" link add eth0 type veth peer name eth0 netns "$S"
ip -n "$C" link set lo up
ip -n "$S" link set lo up
ip -n "$C" addr add 10.244.1.20/16 dev eth0
ip -n "$C" link set eth0 up
ip -n "$C" route add default dev eth0
ip -n "$S" addr add 10.244.2.30/16 dev eth0
ip -n "$S" addr add 10.96.0.10/32 dev lo
ip -n "$S" link set eth0 up
ip -n "$S" route add default dev eth0

mkdir -p "/etc/netns/$C"
cat > "/etc/netns/$C/resolv.conf" <<RC
search default.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
options ndots:5 timeout:1 attempts:3
RC

cat > "$D/hosts" <<H
10.96.50.5 cart.default.svc.cluster.local
H
# Other cluster.local names are NXDOMAIN.
ip netns exec "$S" dnsmasq --keep-in-foreground --no-resolv --no-hosts \
    --addn-hosts="$D/hosts" --local-ttl=5 --listen-address=127.0.0.1 --port=5353 \
    --bind-interfaces --address=/cluster.local/ \
    --pid-file="$D/dnsmasq.pid" --log-facility=- 2>"$D/dnsmasq.log" &
sleep 0.3

ip netns exec "$C" tcpdump -i eth0 -s 0 -U -w "$OUT" udp port 53 2>/dev/null &
echo $! > "$D/tcpdump.pid"
sleep 1
cx() { ip netns exec "$C" "$@"; }

slow() {
    [ -f "$D/slow.pid" ] && { kill "$(cat "$D/slow.pid")"; rm "$D/slow.pid"; sleep 0.2; }
    ip netns exec "$S" python3 "$HERE/slow_dns.py" 10.96.0.10 5353 "$1" &
    echo $! > "$D/slow.pid"
    sleep 0.5
}

slow 2.5
cx getent ahosts cart >/dev/null || true
# Answers still in flight arrive.
sleep 3

slow 7
cx getent ahosts broken.default.svc.cluster.local. >/dev/null || true
sleep 8

kill -INT "$(cat "$D/tcpdump.pid")"
rm "$D/tcpdump.pid"
sleep 0.5
echo "recorded $OUT: $(tcpdump -r "$OUT" 2>/dev/null | wc -l) packets"
