#!/usr/bin/env bash
# podpath lab: a one-node "Kubernetes" built from network namespaces.
#
# Everything lives in namespaces named pp-* (prefix: $LAB_PREFIX, default pp-); the root namespace's interfaces,
# routes, nftables and sysctls are never touched. See lab/README.md.
#
#   lab.sh up               build the lab (tears down leftovers first)
#   lab.sh down             remove every namespace, process and file it made
#   lab.sh status           list namespaces and processes
#   lab.sh exec POD CMD...  run CMD inside POD's namespace (with its resolv.conf)
#   lab.sh seed             replay the seed walkthrough from demo-app-2
#   lab.sh rich             replay the richer scenario from shop/checkout
#   lab.sh record [DIR]     up + tcpdump + seed + rich + down, captures into DIR
#                           (default: tests/captures next to this script's repo)
set -euo pipefail

# Prefix of every namespace, /etc/netns/<ns> directory and the run directory,
# so several labs (CI, benchmarks) can run side by side. The default lab keeps
# its historical run directory.
P=${LAB_PREFIX:-pp-}
[[ $P =~ ^[a-z][a-z0-9-]*$ ]] || { echo "lab.sh: LAB_PREFIX must match [a-z][a-z0-9-]*" >&2; exit 1; }
if [[ $P == pp- ]]; then DEFAULT_RUN_DIR=/run/podpath-lab; else DEFAULT_RUN_DIR=/run/${P}lab; fi
RUN_DIR=${LAB_RUN_DIR:-$DEFAULT_RUN_DIR}
NODE=${P}node
# Pause between walkthrough steps, seconds.
STEP_PAUSE=${LAB_STEP_PAUSE:-0.3}
# LAB_TLS=1: every nginx also serves HTTPS on :443 with one self-signed
# certificate made at `up`, and demo-app's Service gets port 443 (the
# benchmarks' TLS load). Off by default: the recorded scenarios use none of it.
TLS=${LAB_TLS:-0}

# Calico-style gateway: every pod routes via 169.254.1.1 / the node veth's
# link-local address; the node-side veth always has this MAC.
GW4=169.254.1.1
GW_MAC=ee:ee:ee:ee:ee:ee
GW6=fe80::ecee:eeff:feee:eeee

KUBE_DNS_IP=10.96.0.10
EXTERNAL_IP=203.0.113.10
EXTERNAL_IP6=2001:db8:113::10

# Pod table: name|k8s namespace|cluster domain|IPv4|IPv6|node-side veth|MAC|role
# role: nginx (an HTTP server on :80), dns (dnsmasq), client-only.
PODS=(
    "coredns|kube-system|cluster.local|10.244.0.53|fd00:10:244::53|cali-coredns|0a:58:0a:f4:00:35|dns"
    "demo-app|default|cluster.local|10.244.1.10|fd00:10:244::1:10|cali-demo-app|0a:58:0a:f4:01:0a|nginx"
    "demo-app-2|default|cluster.local|10.244.1.20|fd00:10:244::1:20|cali-demo-app2|0a:58:0a:f4:01:14|nginx"
    "cart|shop|corp.internal|10.244.2.10|fd00:10:244::2:10|cali-cart|0a:58:0a:f4:02:0a|nginx"
    "checkout|shop|corp.internal|10.244.2.20|fd00:10:244::2:20|cali-checkout|0a:58:0a:f4:02:14|nginx"
    "inventory-0|shop|corp.internal|10.244.2.30|fd00:10:244::2:30|cali-inventory|0a:58:0a:f4:02:1e|nginx"
    "catalog|shop|corp.internal|10.244.2.40|fd00:10:244::2:40|cali-catalog|0a:58:0a:f4:02:28|nginx"
)
# The "internet": one host outside the cluster, reached through the node.
EXTERNAL="external|-|-|$EXTERNAL_IP|$EXTERNAL_IP6|ext-uplink|02:00:cb:00:71:0a|nginx"

# Services as kube-proxy would program them: name|ns|domain|ClusterIP|proto|port|backend IP|backend port
# A ClusterIP of "None" is a headless Service: DNS answers with the backend
# (pod) address and there is no DNAT rule.
SERVICES=(
    "kube-dns|kube-system|cluster.local|$KUBE_DNS_IP|udp|53|10.244.0.53|53"
    "kube-dns|kube-system|cluster.local|$KUBE_DNS_IP|tcp|53|10.244.0.53|53"
    "demo-app|default|cluster.local|10.96.100.10|tcp|80|10.244.1.10|80"
    "demo-app-2|default|cluster.local|10.96.100.20|tcp|80|10.244.1.20|80"
    "kube-dns|kube-system|corp.internal|$KUBE_DNS_IP|udp|53|10.244.0.53|53"
    "cart|shop|corp.internal|10.96.200.10|tcp|80|10.244.2.10|80"
    "checkout|shop|corp.internal|10.96.200.20|tcp|80|10.244.2.20|80"
    "legacy|shop|corp.internal|10.96.200.30|tcp|8080|10.244.2.10|8080"
    "inventory|shop|corp.internal|None|tcp|80|10.244.2.30|80"
    "catalog|shop|corp.internal|fd00:10:96::c8|tcp|80|fd00:10:244::2:40|80"
)
if [[ $TLS == 1 ]]; then
    SERVICES+=("demo-app|default|cluster.local|10.96.100.10|tcp|443|10.244.1.10|443")
fi
# A pod address that a NetworkPolicy-like rule on the node drops silently
# (connect timeouts).
BLACKHOLE_IP=10.244.2.50

die() { echo "lab.sh: $*" >&2; exit 1; }
log() { echo "lab: $*" >&2; }

need_root() { [[ $(id -u) -eq 0 ]] || die "run as root"; }

field() { # field RECORD INDEX
    local IFS='|'
    # shellcheck disable=SC2206
    local parts=($1)
    echo "${parts[$2]}"
}

pod_record() { # pod_record NAME -> the PODS/EXTERNAL record
    local rec
    for rec in "${PODS[@]}" "$EXTERNAL"; do
        [[ $(field "$rec" 0) == "$1" ]] && { echo "$rec"; return 0; }
    done
    return 1
}

ns_of() { # ns_of POD -> netns name
    local name=${1#"$P"}
    pod_record "$name" >/dev/null || die "unknown pod '$1' (pods: $(pod_names))"
    echo "$P$name"
}

pod_names() {
    local rec out=()
    for rec in "${PODS[@]}" "$EXTERNAL"; do out+=("$(field "$rec" 0)"); done
    echo "${out[*]}"
}

in_ns() { # in_ns NETNS CMD... : run in a namespace, with its /etc/netns files
    local ns=$1; shift
    ip netns exec "$ns" "$@"
}

sysctl_ns() { # sysctl_ns NETNS key=value...
    local ns=$1; shift
    in_ns "$ns" sysctl -qw "$@" >/dev/null
}

# ---------------------------------------------------------------- down

lab_namespaces() { # every namespace this lab creates, node last
    local rec
    for rec in "${PODS[@]}" "$EXTERNAL"; do echo "$P$(field "$rec" 0)"; done
    echo "$NODE"
}

lab_down() {
    need_root
    local ns pid pidfile
    # Processes the lab started: by pid file first, then whatever still runs
    # inside the lab's own namespaces (all of it was started by this script).
    # Other pp-* namespaces on the machine are not ours and are left alone.
    if [[ -d $RUN_DIR ]]; then
        for pidfile in "$RUN_DIR"/*/*.pid; do
            [[ -f $pidfile ]] || continue
            pid=$(cat "$pidfile" 2>/dev/null || true)
            if [[ $pid =~ ^[0-9]+$ ]]; then kill "$pid" 2>/dev/null || true; fi
        done
    fi
    for ns in $(lab_namespaces); do
        [[ -e /run/netns/$ns ]] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
            kill "$pid" 2>/dev/null || true
        done
    done
    sleep 0.2
    for ns in $(lab_namespaces); do
        if [[ -e /run/netns/$ns ]]; then
            for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
                kill -9 "$pid" 2>/dev/null || true
            done
            ip netns del "$ns" 2>/dev/null || true
        fi
        rm -rf "/etc/netns/$ns"
    done
    rmdir /etc/netns 2>/dev/null || true
    rm -rf "$RUN_DIR"
}

# ---------------------------------------------------------------- up

# Files kubelet puts in every pod; `ip netns exec` bind-mounts each file of
# /etc/netns/<ns>/ over /etc/<file>.
write_pod_etc() { # write_pod_etc NAME K8S_NS DOMAIN IPV4
    local name=$1 kns=$2 domain=$3 ip4=$4 dir=/etc/netns/$P$1
    mkdir -p "$dir"
    if [[ $kns != - && $name != coredns ]]; then
        cat >"$dir/resolv.conf" <<EOF
search $kns.svc.$domain svc.$domain $domain
nameserver $KUBE_DNS_IP
options ndots:5
EOF
    fi
    cat >"$dir/hosts" <<EOF
# Kubernetes-managed hosts file.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::0	ip6-localnet
fe00::0	ip6-mcastprefix
fe00::1	ip6-allnodes
fe00::2	ip6-allrouters
$ip4	$name
EOF
    # Pin the lookup order so the host's nsswitch (mdns, myhostname, ...)
    # cannot add or reorder queries.
    printf 'hosts: files dns\n' >"$dir/nsswitch.conf"
}

make_node() {
    ip netns add "$NODE"
    ip -n "$NODE" link set lo up
    sysctl_ns "$NODE" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
        net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.default.router_solicitations=0 \
        net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.rp_filter=0
}

make_pod() { # make_pod RECORD
    local rec=$1 name kns domain ip4 ip6 veth mac ns
    name=$(field "$rec" 0); kns=$(field "$rec" 1); domain=$(field "$rec" 2)
    ip4=$(field "$rec" 3); ip6=$(field "$rec" 4); veth=$(field "$rec" 5); mac=$(field "$rec" 6)
    ns=$P$name
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Quiet IPv6: no DAD, no router solicitations, no SLAAC, so the captures
    # hold only the traffic the scenarios make.
    sysctl_ns "$ns" net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
        net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.default.router_solicitations=0 \
        net.ipv6.conf.default.addr_gen_mode=1
    ip -n "$NODE" link add name "$veth" type veth peer name eth0 netns "$ns"
    ip -n "$NODE" link set "$veth" address "$GW_MAC"
    ip -n "$ns" link set eth0 address "$mac"
    # Node side (Calico): proxy ARP answers for 169.254.1.1, /32 and /128
    # routes point at the veth.
    sysctl_ns "$NODE" "net.ipv4.conf.$veth.proxy_arp=1" "net.ipv4.conf.$veth.rp_filter=0" \
        "net.ipv6.conf.$veth.accept_dad=0" "net.ipv6.conf.$veth.forwarding=1"
    ip -n "$NODE" link set "$veth" up
    ip -n "$NODE" addr add "$GW6/64" dev "$veth" nodad 2>/dev/null || true
    ip -n "$ns" link set eth0 up
    ip -n "$ns" addr add "$ip4/32" dev eth0
    ip -n "$ns" addr add "$ip6/128" dev eth0 nodad
    ip -n "$ns" route add "$GW4" dev eth0 scope link
    ip -n "$ns" route add default via "$GW4" dev eth0 onlink
    ip -n "$ns" -6 route add default via "$GW6" dev eth0
    ip -n "$NODE" route add "$ip4/32" dev "$veth"
    ip -n "$NODE" -6 route add "$ip6/128" dev "$veth"
    # Static neighbours on both ends: no ARP/NDP exchanges in the captures,
    # whatever the timing (neighbour entries otherwise go stale and re-probe).
    ip -n "$ns" neigh replace "$GW4" lladdr "$GW_MAC" dev eth0 nud permanent
    ip -n "$ns" neigh replace "$GW6" lladdr "$GW_MAC" dev eth0 nud permanent
    ip -n "$NODE" neigh replace "$ip4" lladdr "$mac" dev "$veth" nud permanent
    ip -n "$NODE" neigh replace "$ip6" lladdr "$mac" dev "$veth" nud permanent
    write_pod_etc "$name" "$kns" "$domain" "$ip4"
}

# One key and self-signed certificate for every HTTPS server of the lab (the
# clients do not verify: curl -k, wrk never does).
make_tls_cert() {
    local dir=$RUN_DIR/tls
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
        -subj "/CN=podpath-lab" -addext "subjectAltName=DNS:*.svc.cluster.local,DNS:*.svc.corp.internal,DNS:localhost" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null || die "openssl could not make the lab certificate"
}

start_nginx() { # start_nginx NAME
    local name=$1 dir=$RUN_DIR/$1 tls=""
    mkdir -p "$dir/html" "$dir/tmp"
    printf '%s\n' "$name" >"$dir/html/index.html"
    if [[ $TLS == 1 ]]; then
        tls="listen 443 ssl;
        listen [::]:443 ssl;
        ssl_certificate $RUN_DIR/tls/cert.pem;
        ssl_certificate_key $RUN_DIR/tls/key.pem;"
    fi
    cat >"$dir/nginx.conf" <<EOF
# podpath lab: nginx for pod $name
daemon on;
master_process on;
worker_processes 1;
user root;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 128; }
http {
    default_type text/plain;
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_timeout 65s;
    server {
        listen 80;
        listen [::]:80;
        $tls
        server_name _;
        root $dir/html;
        index index.html;
    }
}
EOF
    in_ns "$P$name" nginx -e "$dir/error.log" -c "$dir/nginx.conf" -p "$dir"
}

# dnsmasq plays CoreDNS: authoritative for the cluster domains (unknown names
# NXDOMAIN), TTL 5 s, A records only for IPv4 Services (AAAA gets NOERROR with
# no answer) and AAAA only for IPv6 ones. PTR as CoreDNS's default Corefile
# (`kubernetes cluster.local in-addr.arpa ip6.arpa`) answers it: a ClusterIP
# names its Service (`--host-record` gives A/AAAA and PTR), an endpoint
# address names `<dashed-ip>.<svc>.<ns>.svc.<domain>` (`--ptr-record`; the
# address with `.` or `:` turned into `-`, as CoreDNS's endpointHostname
# does for endpoints without a hostname). Other addresses: NXDOMAIN.
start_dns() {
    local dir=$RUN_DIR/coredns rec name kns domain cip bip args=() seen=" " ptrs=" "
    mkdir -p "$dir"
    # shellcheck disable=SC2054 # host-record values are comma-separated by design
    args+=(--conf-file=/dev/null --no-resolv --no-hosts --no-poll
        --user=root --group=root
        --listen-address=10.244.0.53 --bind-interfaces --port=53
        --local-ttl=5 --neg-ttl=5 --cache-size=0
        --log-queries=extra --log-facility="$dir/dnsmasq.log" --pid-file="$dir/dnsmasq.pid"
        --local=/cluster.local/ --local=/corp.internal/ --local=/example.com/
        # Every other name: NXDOMAIN (the cluster has no upstream).
        --local=/#/
        "--host-record=api.example.com,$EXTERNAL_IP")
    for rec in "${SERVICES[@]}"; do
        name=$(field "$rec" 0); kns=$(field "$rec" 1); domain=$(field "$rec" 2)
        cip=$(field "$rec" 3); bip=$(field "$rec" 6)
        local fqdn=$name.$kns.svc.$domain
        [[ $seen == *" $fqdn "* ]] && continue
        seen+="$fqdn "
        if [[ $cip == None ]]; then
            args+=(--host-record="$fqdn,$bip")
        else
            args+=(--host-record="$fqdn,$cip")
        fi
        local ptr
        ptr="$(reverse_name "$bip"),$(tr '.:' '--' <<<"$bip").$fqdn"
        [[ $ptrs == *" $ptr "* ]] && continue
        ptrs+="$ptr "
        args+=(--ptr-record="$ptr")
    done
    in_ns "${P}coredns" dnsmasq "${args[@]}"
}

reverse_name() { # reverse_name IP -> its in-addr.arpa / ip6.arpa name
    python3 -c 'import ipaddress, sys; print(ipaddress.ip_address(sys.argv[1]).reverse_pointer)' "$1"
}

write_nft() {
    local rec proto cip port bip bport fam rules=""
    for rec in "${SERVICES[@]}"; do
        cip=$(field "$rec" 3); proto=$(field "$rec" 4); port=$(field "$rec" 5)
        bip=$(field "$rec" 6); bport=$(field "$rec" 7)
        [[ $cip == None ]] && continue
        if [[ $cip == *:* ]]; then
            fam=ip6; bip="[$bip]"
        else
            fam=ip
        fi
        rules+="        $fam daddr $cip $proto dport $port dnat $fam to $bip:$bport"$'\n'
    done
    in_ns "$NODE" nft -f - <<EOF
# kube-proxy's job: ClusterIP:port -> backend pod, in the node's prerouting.
table inet kube-proxy {
    chain services {
        type nat hook prerouting priority dstnat; policy accept;
$rules    }
}
# A NetworkPolicy that drops everything sent to one pod address: SYNs vanish
# and the client's connect times out.
table inet network-policy {
    chain drop-isolated {
        type filter hook prerouting priority raw; policy accept;
        ip daddr $BLACKHOLE_IP drop
    }
}
EOF
}

wait_listen() { # wait_listen NETNS PORT PROTO
    local _
    for _ in $(seq 1 50); do
        if in_ns "$1" ss -Hln"${3:0:1}" "sport = :$2" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    die "nothing listens on $3/$2 in $1"
}

lab_up() {
    need_root
    lab_down
    mkdir -p "$RUN_DIR"
    make_node
    local rec
    for rec in "${PODS[@]}" "$EXTERNAL"; do make_pod "$rec"; done
    write_nft
    start_dns
    if [[ $TLS == 1 ]]; then make_tls_cert; fi
    for rec in "${PODS[@]}" "$EXTERNAL"; do
        [[ $(field "$rec" 7) == nginx ]] && start_nginx "$(field "$rec" 0)"
    done
    wait_listen "${P}coredns" 53 udp
    wait_listen "${P}coredns" 53 tcp
    for rec in "${PODS[@]}" "$EXTERNAL"; do
        [[ $(field "$rec" 7) == nginx ]] && wait_listen "$P$(field "$rec" 0)" 80 tcp
        if [[ $TLS == 1 && $(field "$rec" 7) == nginx ]]; then wait_listen "$P$(field "$rec" 0)" 443 tcp; fi
    done
    log "up: $(pod_names) behind $NODE; run dir $RUN_DIR"
}

lab_status() {
    local ns
    for ns in $(lab_namespaces); do
        if [[ -e /run/netns/$ns ]]; then
            echo "$ns: pids $(ip netns pids "$ns" | tr '\n' ' ')"
        else
            echo "$ns: absent"
        fi
    done
}

# ---------------------------------------------------------------- scenarios

pause() { sleep "$STEP_PAUSE"; }

# Run one curl in a pod (CURL_ENV: extra environment, e.g. RES_OPTIONS=use-vc);
# print the outcome, never fail the scenario (refused
# and timed-out connections are part of it).
curl_in() { # curl_in POD CURL-ARGS...
    local pod=$1 out rc; shift
    out=$(in_ns "$P$pod" env ${CURL_ENV:+"$CURL_ENV"} curl -s -o /dev/null -w '%{http_code} ' "$@") && rc=0 || rc=$?
    log "[$pod] ${CURL_ENV:+$CURL_ENV }curl $* -> http ${out% } exit $rc"
}

lab_seed() {
    need_root
    curl_in demo-app-2 http://localhost/; pause
    curl_in demo-app-2 http://10.244.1.10/; pause
    curl_in demo-app-2 http://10.96.100.10/; pause
    curl_in demo-app-2 http://demo-app/; pause
    curl_in demo-app-2 http://demo-app.default/
}

lab_rich() {
    need_root
    # 1. Short Service name; three requests on one keep-alive connection, the
    #    last a 404.
    curl_in checkout -o /dev/null -o /dev/null http://cart/ http://cart/index.html http://cart/missing; pause
    # 2. Headless Service: DNS answers the pod IP.
    curl_in checkout http://inventory/; pause
    # 3. IPv6 single-stack Service: A is empty, AAAA is the ClusterIP.
    curl_in checkout http://catalog/; pause
    # 4. Pod IP, IPv6 literal.
    curl_in checkout -g 'http://[fd00:10:244::2:10]/'; pause
    # 5. Service FQDN without trailing dot: 4 dots < ndots 5, so the search
    #    list is walked first (3 wasted suffixes).
    curl_in checkout http://cart.shop.svc.corp.internal/; pause
    # 6. Namespaced name, DNS over TCP (glibc `options use-vc`).
    CURL_ENV=RES_OPTIONS=use-vc curl_in checkout http://cart.shop/; pause
    # 7. External name through the search list, then 8. with a trailing dot.
    curl_in checkout http://api.example.com/; pause
    curl_in checkout http://api.example.com./; pause
    # 9. A name nobody knows: every suffix and the bare name NXDOMAIN.
    curl_in checkout http://nosuch/; pause
    # 10. Refused: a pod port with no listener answers the SYN with RST.
    curl_in checkout http://10.244.2.10:81/; pause
    #     ... and through a Service whose targetPort has no listener: the RST
    #     comes back from the ClusterIP.
    curl_in checkout http://legacy:8080/; pause
    # 11. Timeout: the node drops the SYNs.
    curl_in checkout --connect-timeout 2 http://$BLACKHOLE_IP/; pause
    # 12. UDP that is not DNS: one statsd datagram to cart (nothing listens;
    #     cart answers with ICMP port unreachable).
    in_ns "${P}checkout" bash -c 'printf "checkout.orders:1|c" >/dev/udp/10.244.2.10/8125' || true
    log "[checkout] udp 10.244.2.10:8125 statsd datagram"; pause
    # 13. Inbound: cart calls checkout through its ClusterIP.
    curl_in cart http://10.96.200.20/
}

# ---------------------------------------------------------------- record

TCPDUMP_PIDS=()

# `ip netns exec` execs tcpdump, so $! is tcpdump itself; tcpdump installs its
# own SIGINT handler (background jobs of a script start with SIGINT ignored).
start_tcpdump() { # start_tcpdump NETNS FILE TCPDUMP-ARGS...
    local ns=$1 file=$2; shift 2
    ip netns exec "$ns" tcpdump -Z root -s 0 -U -w "$file" "$@" 2>"$file.log" &
    TCPDUMP_PIDS+=($!)
}

stop_tcpdumps() {
    local pid
    sleep 1 # let FINs and ICMP settle into the capture
    for pid in "${TCPDUMP_PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${TCPDUMP_PIDS[@]}"; do wait "$pid" || true; done
    TCPDUMP_PIDS=()
}

wait_tcpdumps_ready() { # wait_tcpdumps_ready FILE...
    local f _
    for f in "$@"; do
        for _ in $(seq 1 50); do
            grep -q 'listening on' "$f.log" 2>/dev/null && break
            sleep 0.1
        done
    done
    sleep 0.5
}

lab_record() {
    need_root
    local out=${1:-$(cd "$(dirname "$0")/.." && pwd)/tests/captures}
    mkdir -p "$out"
    lab_up
    # Link-up MLD reports and similar settle before recording starts.
    sleep 3
    local seed_files=("$out/seed-any.pcap" "$out/seed-any-sll1.pcap" "$out/seed-eth0.pcap")
    start_tcpdump "${P}demo-app-2" "${seed_files[0]}" -i any -y LINUX_SLL2
    start_tcpdump "${P}demo-app-2" "${seed_files[1]}" -i any -y LINUX_SLL
    start_tcpdump "${P}demo-app-2" "${seed_files[2]}" -i eth0
    wait_tcpdumps_ready "${seed_files[@]}"
    lab_seed
    stop_tcpdumps
    local rich_files=("$out/rich-any.pcap")
    start_tcpdump "${P}checkout" "${rich_files[0]}" -i any -y LINUX_SLL2
    wait_tcpdumps_ready "${rich_files[@]}"
    lab_rich
    stop_tcpdumps
    for f in "${seed_files[@]}" "${rich_files[@]}"; do
        cat "$f.log" >&2; rm -f "$f.log"
    done
    lab_down
    log "captures in $out"
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        up) lab_up ;;
        down) lab_down; log "down" ;;
        status) lab_status ;;
        exec)
            [[ $# -ge 2 ]] || die "usage: lab.sh exec POD CMD..."
            local ns; ns=$(ns_of "$1"); shift
            exec ip netns exec "$ns" "$@" ;;
        seed) lab_seed ;;
        rich) lab_rich ;;
        record) lab_record "$@" ;;
        *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; [[ $cmd == help || $cmd == -h ]] || exit 2 ;;
    esac
}

main "$@"
