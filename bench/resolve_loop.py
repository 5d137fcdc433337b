#!/usr/bin/env python3
"""Resolve names through glibc at a fixed rate: the dns profile's resolver loop.

    resolve_loop.py PER_SECOND SECONDS NAME...

Each lookup is one getaddrinfo() (A and AAAA together, the pod's resolv.conf
search list and ndots:5 applied by glibc), cycling through NAMEs, paced so
that lookup n starts no earlier than n / PER_SECOND seconds in; a slow
resolver lowers the rate rather than queueing lookups. Prints one summary
line at the end.
"""

import socket
import sys
import time


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rate, secs, names = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    if rate <= 0 or secs <= 0:
        sys.exit("resolve_loop: PER_SECOND and SECONDS must be positive")
    t0 = time.monotonic()
    n = resolved = 0
    while True:
        now = time.monotonic()
        if now - t0 >= secs:
            break
        ahead = t0 + n / rate - now
        if ahead > 0:
            time.sleep(ahead)
        try:
            socket.getaddrinfo(names[n % len(names)], 80, type=socket.SOCK_STREAM)
            resolved += 1
        except OSError:
            pass  # NXDOMAIN after the whole walk is part of the load
        n += 1
    took = time.monotonic() - t0
    print(f"Lookups: {n} ({resolved} resolved) in {took:.1f} s, {n / took:.0f}/s")


if __name__ == "__main__":
    main()
