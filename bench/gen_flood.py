#!/usr/bin/env python3
"""Write a deterministic flood capture (pcap, LINUX_SLL2) for the memory
benchmarks, seen from the pod 10.244.1.20:

  flows N   N TCP SYNs, each a distinct flow: the pod to N distinct
            (address in 198.18.0.0/15, port) pairs, no answer (connect timeouts)
  names N   N DNS lookups of distinct names through kube-dns, each one query
            (<random>.default.svc.cluster.local A) and its NXDOMAIN answer
  series N  N distinct DNS names of Services (svc-<i>.default.svc.cluster.local,
            each answered with its own ClusterIP), then 30 refused TCP connects to
            each name's address on 30 ports: every (name, port) is a label set,
            to fill the label-capped metric families to their series caps
  hellos N  N distinct TCP connections (SYN, then the first 1 000 bytes of a
            1 800-byte TLS ClientHello, the rest never sent): every flow holds
            a TLS reassembly buffer until it is evicted
  split-hellos N  the same with a 16 000-byte ClientHello sent in 1 000-byte
            segments, the last never sent: each flow would hold 15 000 bytes
  answers N N DNS lookups of distinct names, each answered NOERROR with 64
            distinct A records (the most an answer set keeps): fills the
            address -> name table and the latest-answer table to their caps

Packets are 10 µs apart. Usage: gen_flood.py flows|names|answers|series|hellos|split-hellos N OUT.pcap (OUT "-" = stdout)
"""
import random
import struct
import sys

POD = bytes([10, 244, 1, 20])
KUBE_DNS = bytes([10, 96, 0, 10])
OUTGOING, HOST = 4, 0  # SLL2 packet types


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64, proto, 0, src, dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def sll2(pkttype, ip):
    # protocol, reserved, ifindex, hatype (Ethernet), pkttype, addr len, addr
    return struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, pkttype, 6, b"\x0a\x58\x0a\xf4\x01\x14\0\0") + ip


def tcp_syn(src, dst, sport, dport, seq):
    # Checksums of L4 are left zero: podpath, like the kernel's capture, does not verify them.
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)


def dns_name(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def main():
    kind, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(5)
    t = 1_700_000_000 * 1_000_000
    with (open(out, "wb") if out != "-" else sys.stdout.buffer) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 276))

        def write(pkt):
            nonlocal t
            t += 10
            f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(pkt), len(pkt)))
            f.write(pkt)

        if kind == "flows":
            for i in range(n):
                dst = bytes([198, 18 + (i >> 24 & 1), i >> 16 & 0xFF, i >> 8 & 0xFF])
                dport = 1024 + (i & 0xFF) * 200 + rng.randrange(200)
                sport = 32768 + rng.randrange(28000)
                write(sll2(OUTGOING, ipv4(POD, dst, 6, tcp_syn(POD, dst, sport, dport, rng.getrandbits(32)), i)))
        elif kind in ("names", "answers"):
            for i in range(n):
                label = "%08x" % rng.getrandbits(32) + "-%d" % i
                qname = dns_name(label + ".default.svc.cluster.local")
                qid = rng.getrandbits(16)
                sport = 32768 + rng.randrange(28000)
                question = qname + struct.pack("!HH", 1, 1)
                query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
                # NXDOMAIN with the SOA of the zone, as CoreDNS answers.
                soa_rdata = dns_name("ns.dns.cluster.local") + dns_name("hostmaster.cluster.local") + struct.pack("!IIIII", 1, 7200, 1800, 86400, 5)
                soa = dns_name("cluster.local") + struct.pack("!HHIH", 6, 1, 5, len(soa_rdata)) + soa_rdata
                if kind == "names":
                    resp = struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 1, 0) + question + soa
                else:
                    # 64 A records in 100.64.0.0/10, distinct across the whole flood;
                    # each owner name a compression pointer to the question (offset 12).
                    records = b"".join(
                        struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + struct.pack("!I", 0x64400000 + (i * 64 + k) % (1 << 22))
                        for k in range(64)
                    )
                    resp = struct.pack("!HHHHHH", qid, 0x8180, 1, 64, 0, 0) + question + records
                write(sll2(OUTGOING, ipv4(POD, KUBE_DNS, 17, udp(sport, 53, query), 2 * i)))
                write(sll2(HOST, ipv4(KUBE_DNS, POD, 17, udp(53, sport, resp), 2 * i + 1)))
        elif kind in ("hellos", "split-hellos"):
            # A ClientHello whose first extension is padding: the first
            # segments parse as the start of a hello, the rest (padding,
            # then SNI) never comes.
            padding = 1700 if kind == "hellos" else 15900
            pad = struct.pack("!HH", 0x0015, padding) + bytes(padding)
            body = b"\x03\x03" + bytes(32) + b"\x20" + bytes(32) + b"\x00\x02\x13\x01" + b"\x01\x00" + struct.pack("!H", len(pad)) + pad
            record = bytes([1]) + len(body).to_bytes(3, "big") + body
            full = bytes([22, 3, 1]) + struct.pack("!H", len(record)) + record
            segments = [full[:1000]] if kind == "hellos" else [full[k:k + 1000] for k in range(0, 15000, 1000)]
            for i in range(n):
                dst = bytes([198, 18 + (i >> 24 & 1), i >> 16 & 0xFF, i >> 8 & 0xFF])
                dport = 443
                sport = 1024 + (i & 0xFF) * 250 + rng.randrange(250)
                seq = rng.getrandbits(32)
                write(sll2(OUTGOING, ipv4(POD, dst, 6, tcp_syn(POD, dst, sport, dport, seq), i)))
                for k, part in enumerate(segments):
                    data = struct.pack("!HHIIBBHHH", sport, dport, (seq + 1 + 1000 * k) & 0xFFFFFFFF, 1, 5 << 4, 0x18, 64240, 0, 0) + part
                    write(sll2(OUTGOING, ipv4(POD, dst, 6, data, i)))
        elif kind == "series":
            for i in range(n):
                qname = dns_name("svc-%d.default.svc.cluster.local" % i)
                qid = rng.getrandbits(16)
                sport = 32768 + rng.randrange(28000)
                question = qname + struct.pack("!HH", 1, 1)
                query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
                addr = 0x0A600000 + 0x100 + i  # 10.96.1.0 + i
                answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 3600, 4) + struct.pack("!I", addr)
                resp = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer
                write(sll2(OUTGOING, ipv4(POD, KUBE_DNS, 17, udp(sport, 53, query), 2 * i)))
                write(sll2(HOST, ipv4(KUBE_DNS, POD, 17, udp(53, sport, resp), 2 * i + 1)))
            for i in range(n):
                dst = struct.pack("!I", 0x0A600000 + 0x100 + i)
                for port in range(30):
                    sport = 32768 + rng.randrange(28000)
                    dport = 8000 + port
                    seq = rng.getrandbits(32)
                    write(sll2(OUTGOING, ipv4(POD, dst, 6, tcp_syn(POD, dst, sport, dport, seq), port)))
                    # RST+ACK: refused.
                    rst = struct.pack("!HHIIBBHHH", dport, sport, 0, (seq + 1) & 0xFFFFFFFF, 5 << 4, 0x14, 0, 0, 0)
                    write(sll2(HOST, ipv4(dst, POD, 6, rst, port)))
        else:
            raise SystemExit("usage: gen_flood.py flows|names|answers|series|hellos|split-hellos N OUT.pcap")


if __name__ == "__main__":
    main()
