#!/usr/bin/env python3
"""Write tests/captures/<name>.expected.json: the ground truth of each lab scenario.

The numbers come from what `lab.sh seed` and `lab.sh rich` do (one entry per step
below), not from any analyser; only the packet count is read from the capture file.
`lab/check-captures.py` then recomputes with tshark everything visible on the wire
and fails on any difference.

usage: expected.py [DIR]   (default: tests/captures of this repository)
"""

import collections
import json
import pathlib
import subprocess
import sys

POD_CIDR = ["10.244.0.0/16", "fd00:10:244::/64"]
SERVICE_CIDR = ["10.96.0.0/12", "fd00:10:96::/112"]


def config(pod, ips, namespace, domain):
    return {
        "pod_cidr": POD_CIDR,
        "service_cidr": SERVICE_CIDR,
        "cluster_domain": domain,
        "namespace": namespace,
        "pod": pod,
        "pod_ip": ips,
        "nameserver": "10.96.0.10",
        "search": [f"{namespace}.svc.{domain}", f"svc.{domain}", domain],
        "ndots": 5,
    }


def conn(path, dst, port=80, target="", dns_name="", service="", namespace="", protocol="tcp",
         outcome="established", **extra):
    c = {"path": path, "dns_name": dns_name, "target": target, "service": service,
         "namespace": namespace, "dst": dst, "port": port, "protocol": protocol,
         "outcome": outcome, "count": 1}
    c.update(extra)
    return c


def req(c, code="200", method="GET"):
    return {"path": c["path"], "dns_name": c["dns_name"], "service": c["service"],
            "dst": c["dst"], "method": method, "code": code, "count": 1}


def lookup(name, form, result, candidates, transport="udp", addresses=(), **extra):
    """candidates: the names queried (A and AAAA each), in order; the last one ended the lookup."""
    lk = {"name": name, "form": form, "result": result,
          "queries": 2 * len(candidates), "wasted": 2 * (len(candidates) - 1),
          "queried": candidates, "addresses": list(addresses), "transport": transport}
    lk.update(extra)
    return lk


def dns_counts(lookups):
    """Every candidate but the last answered NXDOMAIN; the last answered `result` (A and AAAA)."""
    counts = collections.Counter()
    for lk in lookups:
        for i, _ in enumerate(lk["queried"]):
            rcode = lk["result"] if i == len(lk["queried"]) - 1 else "NXDOMAIN"
            counts[("A", rcode)] += 1
            counts[("AAAA", rcode)] += 1
    order = {"NOERROR": 0, "NXDOMAIN": 1}
    return [{"qtype": q, "rcode": r, "count": n}
            for (q, r), n in sorted(counts.items(), key=lambda kv: (order.get(kv[0][1], 9), kv[0][0]))]


def seed(link_any=True):
    cfg = config("demo-app-2", ["10.244.1.20", "fd00:10:244::1:20"], "default", "cluster.local")
    sfx = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    conns = [
        conn("loopback", "127.0.0.1"),
        conn("pod_ip", "10.244.1.10"),
        conn("cluster_ip", "10.96.100.10"),
        conn("dns", "10.96.100.10", target="cluster_ip", dns_name="demo-app", service="demo-app",
             namespace="default"),
        conn("dns", "10.96.100.10", target="cluster_ip", dns_name="demo-app.default",
             service="demo-app", namespace="default"),
    ]
    if not link_any:
        conns = [c for c in conns if c["path"] != "loopback"]
    lookups = [
        lookup("demo-app", "short", "NOERROR", [f"demo-app.{sfx[0]}"], addresses=["10.96.100.10"]),
        lookup("demo-app.default", "namespaced", "NOERROR",
               [f"demo-app.default.{sfx[0]}", f"demo-app.default.{sfx[1]}"], addresses=["10.96.100.10"]),
    ]
    return {
        "scenario": "seed",
        "recorded_in": "pp-demo-app-2",
        "steps": [
            "curl http://localhost/", "curl http://10.244.1.10/", "curl http://10.96.100.10/",
            "curl http://demo-app/", "curl http://demo-app.default/",
        ],
        "config": cfg,
        "connections": conns,
        "connect_failures": [],
        "inbound_connections": [],
        "lookups": lookups,
        "http_requests": [req(c) for c in conns],
        "inbound_http_requests": [],
        "notes": [
            "Attribution is causal: an answer counts only for connections opened after it. The literal "
            "ClusterIP call (step 3) precedes every answer naming 10.96.100.10, so it carries no service.",
            "curl resolves localhost itself (no DNS) and connected to 127.0.0.1. libpcap drops the "
            "outgoing copy on lo, so each loopback packet appears once in the -i any captures.",
        ],
    }


def rich():
    cfg = config("checkout", ["10.244.2.20", "fd00:10:244::2:20"], "shop", "corp.internal")
    s0, s1, s2 = "shop.svc.corp.internal", "svc.corp.internal", "corp.internal"

    def dns(dst, name, target, service="", port=80, **kw):
        return conn("dns", dst, port=port, target=target, dns_name=name, service=service,
                    namespace="shop" if service else "", **kw)

    c_cart = dns("10.96.200.10", "cart", "cluster_ip", "cart")
    c_inv = dns("10.244.2.30", "inventory", "pod_ip", "inventory")
    c_cat = dns("fd00:10:96::c8", "catalog", "cluster_ip", "catalog")
    c_pod6 = conn("pod_ip", "fd00:10:244::2:10")
    c_fqdn = dns("10.96.200.10", "cart.shop.svc.corp.internal", "cluster_ip", "cart")
    c_tcpdns = dns("10.96.200.10", "cart.shop", "cluster_ip", "cart")
    c_api = dns("203.0.113.10", "api.example.com", "external")
    c_apidot = dns("203.0.113.10", "api.example.com", "external", written="api.example.com.")
    c_refused = conn("pod_ip", "10.244.2.10", port=81, outcome="refused")
    c_legacy = dns("10.96.200.30", "legacy", "cluster_ip", "legacy", port=8080, outcome="refused")
    c_timeout = conn("pod_ip", "10.244.2.50", outcome="timeout", syn_packets=2)
    c_udp = conn("pod_ip", "10.244.2.10", port=8125, protocol="udp", outcome="icmp_port_unreachable")
    conns = [c_cart, c_inv, c_cat, c_pod6, c_fqdn, c_tcpdns, c_api, c_apidot,
             c_refused, c_legacy, c_timeout, c_udp]
    lookups = [
        lookup("cart", "short", "NOERROR", [f"cart.{s0}"], addresses=["10.96.200.10"]),
        lookup("inventory", "short", "NOERROR", [f"inventory.{s0}"], addresses=["10.244.2.30"],
               headless=True),
        lookup("catalog", "short", "NOERROR", [f"catalog.{s0}"], addresses=["fd00:10:96::c8"]),
        lookup("cart.shop.svc.corp.internal", "service_fqdn", "NOERROR",
               [f"cart.shop.svc.corp.internal.{s}" for s in (s0, s1, s2)] + ["cart.shop.svc.corp.internal"],
               addresses=["10.96.200.10"]),
        lookup("cart.shop", "namespaced", "NOERROR", [f"cart.shop.{s0}", f"cart.shop.{s1}"],
               transport="tcp", addresses=["10.96.200.10"]),
        lookup("api.example.com", "external", "NOERROR",
               [f"api.example.com.{s}" for s in (s0, s1, s2)] + ["api.example.com"],
               addresses=["203.0.113.10"]),
        lookup("api.example.com", "external", "NOERROR", ["api.example.com"],
               addresses=["203.0.113.10"], written="api.example.com."),
        lookup("nosuch", "short", "NXDOMAIN", [f"nosuch.{s}" for s in (s0, s1, s2)] + ["nosuch"]),
        lookup("legacy", "short", "NOERROR", [f"legacy.{s0}"], addresses=["10.96.200.30"]),
    ]
    reqs = [req(c_cart), req(c_cart), req(c_cart, "404"), req(c_inv), req(c_cat), req(c_pod6),
            req(c_fqdn), req(c_tcpdns), req(c_api), req(c_apidot)]
    return {
        "scenario": "rich",
        "recorded_in": "pp-checkout",
        "steps": [
            "curl http://cart/ http://cart/index.html http://cart/missing  (one keep-alive connection)",
            "curl http://inventory/  (headless Service)",
            "curl http://catalog/  (IPv6 single-stack Service)",
            "curl -g http://[fd00:10:244::2:10]/",
            "curl http://cart.shop.svc.corp.internal/",
            "RES_OPTIONS=use-vc curl http://cart.shop/  (DNS over TCP)",
            "curl http://api.example.com/",
            "curl http://api.example.com./",
            "curl http://nosuch/  (exit 6, no connection)",
            "curl http://10.244.2.10:81/  (refused)",
            "curl http://legacy:8080/  (refused through a Service)",
            "curl --connect-timeout 2 http://10.244.2.50/  (timeout)",
            "one UDP datagram to 10.244.2.10:8125 (ICMP port unreachable)",
            "from cart: curl http://10.96.200.20/  (inbound, checkout's ClusterIP)",
        ],
        "config": cfg,
        "connections": conns,
        "connect_failures": [
            {"path": c["path"], "dst": c["dst"], "port": c["port"], "reason": c["outcome"], "count": 1}
            for c in (c_refused, c_legacy, c_timeout)
        ],
        "inbound_connections": [{"src": "10.244.2.10", "dst": "10.244.2.20", "port": 80, "protocol": "tcp",
                                 "count": 1}],
        "lookups": lookups,
        "http_requests": reqs,
        "inbound_http_requests": [{"method": "GET", "code": "200", "count": 1}],
        "notes": [
            "Attribution is causal; when several lookups answered the same address within the TTL "
            "(10.96.200.10 for cart, cart.shop.svc.corp.internal and cart.shop), a connection belongs to "
            "the most recent lookup before it.",
            "No literal-address step uses an address that any DNS answer contains, so the TTL grace "
            "period cannot change a literal call into a dns one.",
            "connections lists every outbound attempt (podpath_connections_total counts attempts); "
            "outcome says how it ended. The timed-out connect sent 2 SYNs (retransmission after 1 s), "
            "one attempt.",
            "The two api.example.com lookups: written without and with a trailing dot; both report the "
            "name api.example.com (form external), so by dns_name the connections metric counts 2.",
            "glibc answers the lookup at the first candidate that returns data: A-only names get AAAA "
            "NOERROR with no answer (NODATA), which ends the walk like an answer does.",
            "DNS over TCP (use-vc): one TCP connection per candidate name, A and AAAA sent in one "
            "segment on it; these port-53 connections are DNS traffic, not connections.",
        ],
    }


def capinfo(path):
    out = subprocess.run(["capinfos", "-T", "-m", "-r", "-E", "-c", str(path)],
                         check=True, capture_output=True, text=True).stdout.strip().split(",")
    return out[1], int(out[2])


def finish(doc, cap):
    link, packets = capinfo(cap)
    conns = doc["connections"]
    tcp = [c for c in conns if c["protocol"] == "tcp"]
    lookups = doc["lookups"]
    doc = {"capture": cap.name, "link_type": link, "packets": packets, **doc}
    doc["dns_queries"] = dns_counts(lookups)
    doc["totals"] = {
        "outbound_tcp_attempts": len(tcp),
        "outbound_tcp_established": sum(c["outcome"] == "established" for c in tcp),
        "outbound_udp_flows": len(conns) - len(tcp),
        "inbound_connections": len(doc["inbound_connections"]),
        "http_requests": len(doc["http_requests"]),
        "inbound_http_requests": len(doc["inbound_http_requests"]),
        "dns_queries": sum(lk["queries"] for lk in lookups),
        "dns_over_tcp_queries": sum(lk["queries"] for lk in lookups if lk["transport"] == "tcp"),
        "lookups": len(lookups),
        "wasted_queries": sum(lk["wasted"] for lk in lookups),
    }
    return doc


def main():
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
        pathlib.Path(__file__).resolve().parent.parent / "tests" / "captures"
    docs = {
        "seed-any": seed(),
        "seed-any-sll1": seed(),
        "seed-eth0": seed(link_any=False),
        "rich-any": rich(),
    }
    for name, doc in docs.items():
        cap = root / f"{name}.pcap"
        if not cap.exists():
            print(f"skip {name}: no {cap}")
            continue
        out = root / f"{name}.expected.json"
        out.write_text(json.dumps(finish(doc, cap), indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
