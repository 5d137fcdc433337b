#!/usr/bin/env bash
# Records tests/captures/proto.pcap: TLS ClientHellos, h2c and gRPC-shaped
# calls, a stale DNS answer and a rewritten destination, seen from a client
# "pod" namespace. Everything runs in two namespaces this script creates
# (pp-proto-c, pp-proto-s); the root namespace is never touched except for
# /etc/netns/pp-proto-c/resolv.conf (how `ip netns exec` gives a namespace
# its own resolver configuration), removed on exit.
#
# Needs: iproute2 nftables tcpdump dnsmasq nginx-light openssl curl dnsutils,
# and python3 -m pip install h2 (the h2c server).
# The expectations are asserted in crates/core/src/engine_tests/capture.rs; re-recording
# changes ports and timings but not what those tests check.
set -Eeuo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../proto.pcap}
C=pp-proto-c
S=pp-proto-s
D=$(mktemp -d /tmp/pp-proto.XXXXXX)
# dnsmasq and nginx workers drop privileges and must read their files.
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
cleanup_ns() { ip netns del "$C" 2>/dev/null || true; ip netns del "$S" 2>/dev/null || true; }
cleanup_ns

ip netns add "$C"
ip netns add "$S"
ip -n "$C" link add eth0 type veth peer name eth0 netns "$S"
ip -n "$C" link set lo up
ip -n "$S" link set lo up
ip -n "$C" addr add 10.244.1.20/16 dev eth0
ip -n "$C" link set eth0 up
ip -n "$C" route add default dev eth0
ip -n "$S" addr add 10.244.2.30/16 dev eth0
ip -n "$S" link set eth0 up
for a in 10.96.0.10 10.96.50.5 203.0.113.10 203.0.113.11 10.244.2.31 10.244.2.40 10.244.2.41; do
    ip -n "$S" addr add "$a/32" dev lo
done
ip -n "$S" route add default dev eth0

mkdir -p "/etc/netns/$C"
cat > "/etc/netns/$C/resolv.conf" <<RC
search default.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
options ndots:5
RC

# DNS: kube-dns-like, TTL 5 s like CoreDNS; names outside these are NXDOMAIN.
cat > "$D/hosts" <<H
10.96.50.5 echo.default.svc.cluster.local
10.96.100.10 demo-app.default.svc.cluster.local
203.0.113.10 api.example.com
10.244.2.30 db.default.svc.cluster.local
H
ip netns exec "$S" dnsmasq --keep-in-foreground --no-resolv --no-hosts \
    --addn-hosts="$D/hosts" --local-ttl=5 --listen-address=10.96.0.10 \
    --bind-interfaces --address=/cluster.local/ --address=/example.com/ \
    --pid-file="$D/dnsmasq.pid" --log-facility=- 2>"$D/dnsmasq.log" &
sleep 0.2

# TLS server for both external addresses.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=api.example.com -keyout "$D/k.pem" -out "$D/c.pem" -days 1 2>/dev/null
ip netns exec "$S" openssl s_server -accept 443 -cert "$D/c.pem" -key "$D/k.pem" \
    -www -quiet >/dev/null 2>&1 &
echo $! > "$D/s_server.pid"

# h2c (prior knowledge) on echo's ClusterIP; nginx (HTTP/1) on the pod IPs.
ip netns exec "$S" python3 "$HERE/h2c_server.py" 10.96.50.5 50051 &
echo $! > "$D/h2c.pid"
mkdir -p "$D/tmp"
cat > "$D/nginx.conf" <<NG
daemon off;
pid $D/nginx.pid;
error_log $D/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $D/tmp;
    proxy_temp_path $D/tmp;
    fastcgi_temp_path $D/tmp;
    uwsgi_temp_path $D/tmp;
    scgi_temp_path $D/tmp;
    server {
        listen 10.244.2.30:80;
        listen 10.244.2.31:80;
        listen 10.244.2.40:80;
        listen 10.244.2.41:80;
        location / { return 200 "ok\n"; }
    }
}
NG
ip netns exec "$S" nginx -c "$D/nginx.conf" -e "$D/error.log" &
sleep 0.5

ip netns exec "$C" tcpdump -i eth0 -s 0 -U -w "$OUT" ip 2>/dev/null &
echo $! > "$D/tcpdump.pid"
sleep 1
cx() { ip netns exec "$C" "$@"; }
step() { sleep 0.3; }

# 1. TLS to a looked-up name (SNI confirms it), then to a literal address without SNI.
# (s_server -www answers HTTP/1.0, which curl may reject after offering h2:
# only the ClientHello matters here.)
cx curl -sk -o /dev/null https://api.example.com/ || true; step
cx openssl s_client -connect 203.0.113.11:443 -noservername -alpn http/1.1 </dev/null >/dev/null 2>&1; step

# 2. h2c: one gRPC-shaped call from curl (nghttp2's HPACK), then three
#    requests on one connection from h2c_client.py (python hpack, with the
#    dynamic table carrying over between them).
#    Before them, a pod IP dialed literally right after an unrelated lookup
#    (echo's): held as a rewrite candidate, then refuted by curl dialing
#    echo's ClusterIP, so a literal pod_ip call.
cx sh -c 'getent ahosts echo >/dev/null; curl -s -o /dev/null http://10.244.2.41/'; step
cx curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary hello -o /dev/null http://echo:50051/demo.Echo/Say; step
cx python3 "$HERE/h2c_client.py" echo 50051; step

# 3. Stale DNS: db moves from .30 to .31; the client keeps dialing .30, then
#    dials .31 after its TTL.
cx dig +short +tries=1 db.default.svc.cluster.local >/dev/null; step
sed -i 's/^10.244.2.30 db/10.244.2.31 db/' "$D/hosts"
kill -HUP "$(cat "$D/dnsmasq.pid")"; sleep 0.2
cx dig +short +tries=1 db.default.svc.cluster.local >/dev/null; step
cx curl -s -o /dev/null http://10.244.2.30/; step
sleep 6
cx curl -s -o /dev/null http://10.244.2.31/; step

# 4. Dialed versus seen: DNAT in the client's own namespace rewrites the
#    ClusterIP to a pod IP at connect time, as Cilium's socket LB does.
cx nft -f - <<NFT
table ip pp_rewrite {
    chain output {
        type nat hook output priority -100;
        ip daddr 10.96.100.10 tcp dport 80 dnat to 10.244.2.40:80
    }
}
NFT
for _ in 1 2 3 4; do
    cx curl -s -o /dev/null http://demo-app/
    sleep 1.5
done

sleep 1
kill -INT "$(cat "$D/tcpdump.pid")"
rm "$D/tcpdump.pid"
sleep 0.5
echo "recorded $OUT: $(tcpdump -r "$OUT" 2>/dev/null | wc -l) packets"
