#!/usr/bin/env python3
"""Serves ci/testdata/sample-scrape.prom as a podpath stand-in whose counters
grow, to exercise ci/live-checks.sh (Prometheus, rules, dashboard queries)
without the podpath binary.

    ci/fake-exporter.py PORT      listens on 127.0.0.1:PORT, path /metrics

Counter and histogram samples are scaled by (1 + seconds since start / 10);
gauges stay as written. Standard library only.
"""

import http.server
import pathlib
import re
import sys
import time

SAMPLE = pathlib.Path(__file__).resolve().parent / "testdata" / "sample-scrape.prom"
START = time.monotonic()


def render():
    factor = 1 + (time.monotonic() - START) / 10
    gauges = set(re.findall(r"^# TYPE (\S+) gauge$", SAMPLE.read_text(), re.M))
    out = []
    for line in SAMPLE.read_text().splitlines():
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if line.startswith("#") or not name or name.group(0) in gauges:
            out.append(line)
            continue
        head, value = line.rsplit(" ", 1)
        out.append(f"{head} {float(value) * factor:.6g}")
    return ("\n".join(out) + "\n").encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = render()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 18809
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
