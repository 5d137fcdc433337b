#!/usr/bin/env python3
"""Send N TCP SYNs to distinct (address, port) pairs out of INTERFACE from a
raw packet socket, as bench/gen_flood.py's `flows` capture holds them: a
capture on INTERFACE sees them as the pod's outgoing connection attempts.

  ci/send-syn-flood.py INTERFACE N      (root, in the namespace of INTERFACE)
"""
import pathlib
import random
import socket
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "bench"))
import gen_flood as g  # noqa: E402

iface, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
rng = random.Random(5)
# Ethernet: destination, source (locally administered), IPv4.
eth = bytes.fromhex("020000000002" "020000000001" "0800")
for i in range(n):
    dst = bytes([198, 18 + (i >> 24 & 1), i >> 16 & 0xFF, i >> 8 & 0xFF])
    dport = 1024 + (i & 0xFF) * 200 + rng.randrange(200)
    sport = 32768 + rng.randrange(28000)
    s.send(eth + g.ipv4(g.POD, dst, 6, g.tcp_syn(g.POD, dst, sport, dport, rng.getrandbits(32)), i))
