#!/usr/bin/env python3
"""Count outbound TCP connection attempts in a pcap: distinct SYNs (no ACK)
sent by the given source addresses or on loopback.

A retransmitted SYN has the same 4-tuple and initial sequence number, so it
counts once, as podpath counts a connection at its first SYN; a port reused
later gets a new ISN and counts again. Loopback SYNs appear twice with
`tcpdump -i any` (outgoing and incoming copy) and count once.

Reads pcap (either byte order, us or ns) with link types Ethernet (1), raw
(101), Linux SLL (113) and SLL2 (276). Prints the count.
"""
import argparse
import ipaddress
import struct
import sys


def ip_payload(linktype, data):
    """(ethertype, offset of the network header) or None."""
    if linktype == 276:  # SLL2: protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) addrlen(1) addr(8)
        if len(data) < 20:
            return None
        return struct.unpack_from("!H", data, 0)[0], 20
    if linktype == 113:  # SLL: pkttype(2) hatype(2) addrlen(2) addr(8) protocol(2)
        if len(data) < 16:
            return None
        return struct.unpack_from("!H", data, 14)[0], 16
    if linktype == 1:
        if len(data) < 14:
            return None
        et, off = struct.unpack_from("!H", data, 12)[0], 14
        while et == 0x8100 and len(data) >= off + 4:
            et, off = struct.unpack_from("!H", data, off + 2)[0], off + 4
        return et, off
    if linktype == 101:
        if not data:
            return None
        return (0x0800 if data[0] >> 4 == 4 else 0x86DD), 0
    raise SystemExit(f"count_syns: link type {linktype} not supported")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", action="append", default=[], help="pod address (repeatable)")
    ap.add_argument("--exclude-port", action="append", type=int, default=[])
    ap.add_argument("pcap")
    args = ap.parse_args()
    srcs = {ipaddress.ip_address(s).packed for s in args.src}
    excluded = set(args.exclude_port)
    seen = set()
    with open(args.pcap, "rb") as f:
        hdr = f.read(24)
        if len(hdr) < 24:
            raise SystemExit("count_syns: short file")
        magic = hdr[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            e = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            e = ">"
        else:
            raise SystemExit("count_syns: not a pcap file (pcapng is not read here)")
        linktype = struct.unpack(e + "I", hdr[20:24])[0] & 0x0FFFFFFF
        rec = struct.Struct(e + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            _, _, incl, _ = rec.unpack(h)
            data = f.read(incl)
            if len(data) < incl:
                break
            r = ip_payload(linktype, data)
            if r is None:
                continue
            et, off = r
            if et == 0x0800 and len(data) >= off + 20 and data[off] >> 4 == 4:
                ihl = (data[off] & 0x0F) * 4
                if data[off + 9] != 6:
                    continue
                src, dst = data[off + 12:off + 16], data[off + 16:off + 20]
                loop = data[off] and src[0] == 127
                t = off + ihl
            elif et == 0x86DD and len(data) >= off + 40:
                if data[off + 6] != 6:
                    continue
                src, dst = data[off + 8:off + 24], data[off + 24:off + 40]
                loop = src == b"\x00" * 15 + b"\x01"
                t = off + 40
            else:
                continue
            if len(data) < t + 14:
                continue
            sport, dport, seq = struct.unpack_from("!HHI", data, t)
            flags = data[t + 13]
            if flags & 0x02 == 0 or flags & 0x10:
                continue
            if sport in excluded or dport in excluded:
                continue
            if src in srcs or loop:
                seen.add((src, sport, dst, dport, seq))
    print(len(seen))


if __name__ == "__main__":
    sys.exit(main())
