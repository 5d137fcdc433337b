#!/usr/bin/env python3
"""Cross-check each tests/captures/<name>.expected.json against its capture with tshark.

Recomputes what tshark sees on the wire, independently of podpath: DNS queries by
type and response code (UDP and TCP), TCP connection attempts per destination (first
SYNs; retransmissions are not new attempts) and how they ended (established, refused by RST, timed out), inbound connections, non-DNS UDP
flows, and HTTP requests with their status codes. Attribution (path, dns_name, target,
service) is not recomputed: it is the scenario's ground truth. Exit status 1 on any
mismatch.

usage: check-captures.py [DIR]   (default: tests/captures of this repository)
"""

import collections
import ipaddress
import json
import pathlib
import subprocess
import sys

FIELDS = [
    "frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
    "tcp.srcport", "tcp.dstport", "tcp.stream", "tcp.flags.syn", "tcp.flags.ack",
    "tcp.flags.reset", "tcp.analysis.retransmission",
    "udp.srcport", "udp.dstport", "icmp.type", "icmpv6.type",
    "dns.id", "dns.flags.response", "dns.qry.type", "dns.flags.rcode",
    "http.request.method", "http.response.code", "frame.protocols",
]
QTYPES = {"1": "A", "28": "AAAA", "5": "CNAME", "33": "SRV", "12": "PTR", "16": "TXT"}
RCODES = {"0": "NOERROR", "1": "FORMERR", "2": "SERVFAIL", "3": "NXDOMAIN", "4": "NOTIMP", "5": "REFUSED"}


def packets(path):
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "json"] + [a for f in FIELDS for a in ("-e", f)],
        check=True, capture_output=True, text=True).stdout
    for pkt in json.loads(out):
        yield pkt["_source"]["layers"]


def first(layers, key):
    vals = layers.get(key)
    return vals[0] if vals else None


def src_dst(layers):
    # An ICMP error quotes the offending packet: the first address is the outer header.
    src = first(layers, "ip.src") or first(layers, "ipv6.src")
    dst = first(layers, "ip.dst") or first(layers, "ipv6.dst")
    return src, dst


def is_loopback(addr):
    return ipaddress.ip_address(addr).is_loopback


def analyse(path, pod_ips):
    dns_q = {}  # (client, id, qtype) -> transport
    dns_r = {}  # (client, id, qtype) -> rcode
    syns = {}  # stream -> (src, dst, dport)
    synack, rst = set(), set()
    syn_packets = 0
    http_req = collections.defaultdict(list)
    http_resp = collections.defaultdict(list)
    udp_flows = set()
    icmp_unreach = 0
    for lay in packets(path):
        src, dst = src_dst(lay)
        if src is None:
            continue
        stream = first(lay, "tcp.stream")
        if "dns.id" in lay:
            tcp = "tcp.stream" in lay
            ids, resp, qtypes = lay["dns.id"], lay.get("dns.flags.response", []), lay.get("dns.qry.type", [])
            rcodes = iter(lay.get("dns.flags.rcode", []))
            for i, msg_id in enumerate(ids):
                qtype = QTYPES.get(qtypes[i], qtypes[i]) if i < len(qtypes) else "?"
                if i < len(resp) and resp[i] in ("1", "True", "true"):
                    dns_r[(dst, msg_id, qtype)] = RCODES.get(next(rcodes, "?"), "?")
                else:
                    dns_q[(src, msg_id, qtype)] = "tcp" if tcp else "udp"
        if stream is not None:
            sport, dport = first(lay, "tcp.srcport"), first(lay, "tcp.dstport")
            syn = first(lay, "tcp.flags.syn") in ("1", "True")
            ack = first(lay, "tcp.flags.ack") in ("1", "True")
            if syn and not ack:
                syn_packets += 1
                if "tcp.analysis.retransmission" not in lay:
                    syns.setdefault(stream, (src, dst, int(dport)))
            elif syn and ack:
                synack.add(stream)
            if first(lay, "tcp.flags.reset") in ("1", "True") and stream not in synack:
                rst.add(stream)
            for m in lay.get("http.request.method", []):
                http_req[stream].append(m)
            for c in lay.get("http.response.code", []):
                http_resp[stream].append(c)
        elif "udp.srcport" in lay and "icmp.type" not in lay and "icmpv6.type" not in lay:
            sport, dport = int(first(lay, "udp.srcport")), int(first(lay, "udp.dstport"))
            if 53 not in (sport, dport) and src in pod_ips:
                udp_flows.add((src, sport, dst, dport))
        if first(lay, "icmp.type") == "3" or first(lay, "icmpv6.type") == "1":
            icmp_unreach += 1

    res = {"dns": collections.Counter(), "dns_tcp": 0, "unanswered_dns": 0,
           "out": collections.Counter(), "refused": collections.Counter(),
           "timeout": collections.Counter(), "inbound": collections.Counter(),
           "http": collections.Counter(), "inbound_http": collections.Counter(),
           "syn_packets": syn_packets, "icmp_unreachable": icmp_unreach}
    for key, transport in dns_q.items():
        rcode = dns_r.get(key, "TIMEOUT")
        res["dns"][(key[2], rcode)] += 1
        res["dns_tcp"] += transport == "tcp"
        res["unanswered_dns"] += rcode == "TIMEOUT"
    for stream, (src, dst, dport) in syns.items():
        if dport == 53:
            continue
        outbound = src in pod_ips or is_loopback(src)
        if not outbound:
            res["inbound"][(dport, "tcp")] += 1
            for i, method in enumerate(http_req.get(stream, [])):
                resps = http_resp.get(stream, [])
                res["inbound_http"][(method, resps[i] if i < len(resps) else "none")] += 1
            continue
        res["out"][(dst, dport, "tcp")] += 1
        if stream in synack:
            reqs, resps = http_req.get(stream, []), http_resp.get(stream, [])
            for i, method in enumerate(reqs):
                res["http"][(dst, method, resps[i] if i < len(resps) else "none")] += 1
        elif stream in rst:
            res["refused"][(dst, dport)] += 1
        else:
            res["timeout"][(dst, dport)] += 1
    for (_, _, dst, dport) in udp_flows:
        res["out"][(dst, dport, "udp")] += 1
    return res


def expected_counts(exp):
    e = {"dns": collections.Counter(), "out": collections.Counter(), "refused": collections.Counter(),
         "timeout": collections.Counter(), "inbound": collections.Counter(), "http": collections.Counter(),
         "inbound_http": collections.Counter()}
    for q in exp["dns_queries"]:
        e["dns"][(q["qtype"], q["rcode"])] += q["count"]
    for c in exp["connections"]:
        e["out"][(c["dst"], c["port"], c["protocol"])] += c["count"]
    for f in exp["connect_failures"]:
        e[f["reason"]][(f["dst"], f["port"])] += f["count"]
    for c in exp["inbound_connections"]:
        e["inbound"][(c["port"], c["protocol"])] += c["count"]
    for r in exp["http_requests"]:
        e["http"][(r["dst"], r["method"], r["code"])] += r["count"]
    for r in exp.get("inbound_http_requests", []):
        e["inbound_http"][(r["method"], r["code"])] += r["count"]
    return e


def check(exp_path):
    exp = json.loads(exp_path.read_text())
    cap = exp_path.parent / exp["capture"]
    pod_ips = set(exp["config"]["pod_ip"])
    got = analyse(cap, pod_ips)
    want = expected_counts(exp)
    errors = []
    for key in ("dns", "out", "refused", "timeout", "inbound", "http", "inbound_http"):
        if got[key] != want[key]:
            errors.append(f"{key}: tshark {dict(got[key])} != expected {dict(want[key])}")
    totals = exp.get("totals", {})
    scalar = {
        "dns_queries": sum(got["dns"].values()),
        "dns_over_tcp_queries": got["dns_tcp"],
        "syn_packets": got["syn_packets"],
        "icmp_unreachable": got["icmp_unreachable"],
    }
    for name, value in scalar.items():
        if name in totals and totals[name] != value:
            errors.append(f"totals.{name}: tshark {value} != expected {totals[name]}")
    if got["unanswered_dns"]:
        errors.append(f"{got['unanswered_dns']} DNS queries without a response")
    lookup_queries = sum(lk["queries"] for lk in exp["lookups"])
    if lookup_queries != sum(got["dns"].values()):
        errors.append(f"lookups account for {lookup_queries} queries, tshark saw {sum(got['dns'].values())}")
    status = "FAIL" if errors else "ok"
    print(f"{status} {cap.name}: dns {sum(got['dns'].values())} ({dict(got['dns'])}), "
          f"outbound {sum(got['out'].values())}, refused {sum(got['refused'].values())}, "
          f"timeout {sum(got['timeout'].values())}, inbound {sum(got['inbound'].values())}, "
          f"http {sum(got['http'].values())}")
    for err in errors:
        print("   ", err)
    return not errors


def main():
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
        pathlib.Path(__file__).resolve().parent.parent / "tests" / "captures"
    results = [check(p) for p in sorted(root.glob("*.expected.json"))]
    if not results:
        print(f"no *.expected.json in {root}")
        return 1
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
