#!/usr/bin/env bash
# Runs `podpath analyze` over every capture in a corpus directory:
# - it must never crash: exit 0, or exit 1 with a one-line error;
# - DNS query and response counts must agree with tshark's (messages on the
#   wire; DNS quoted inside ICMP errors is not a message), and so must the
#   retransmitted queries (same id and question sent again), with tshark's
#   retransmission window set to podpath's: an earlier copy sent at most
#   65 s before (5 s query timeout + 60 s late-answer window).
# Usage: scripts/corpus-check.sh DIR
set -euo pipefail
dir=$(realpath "${1:?usage: corpus-check.sh DIR}")
cd "$(dirname "$0")/.."
# PODPATH_BIN: a podpath binary to use (CI passes the debug build it has);
# default: build the release binary.
if [ -n "${PODPATH_BIN:-}" ]; then
  bin=$PODPATH_BIN
else
  cargo build --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/podpath"
fi
command -v tshark >/dev/null || { echo "tshark missing (apt-get install tshark)"; exit 1; }
python3 - "$bin" "$dir" <<'PY'
import json, os, subprocess, sys
binary, root = sys.argv[1], sys.argv[2]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
               if f.endswith((".pcap", ".pcapng", ".cap")))
bad = 0
rows = []
for path in files:
    p = subprocess.run([binary, "analyze", "--format", "json", path], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        lines = p.stderr.strip().splitlines()
        crashed = p.returncode not in (0, 1) or "panicked" in p.stderr or len(lines) != 1
        status = "CRASH" if crashed else "error"
        if crashed:
            bad += 1
        rows.append((path, status, p.stderr.strip()[:200]))
        continue
    report = json.loads(p.stdout)
    dns = report.get("dns", {})
    ours = (dns.get("queries_seen", 0), dns.get("responses_seen", 0))
    def tcount(flt, field="dns.id"):
        t = subprocess.run(["tshark", "-n", "-o", "dns.retransmission_timer:65", "-r", path,
                            "-Y", flt, "-T", "fields", "-e", field],
                           capture_output=True, text=True, timeout=120)
        # One line per frame; a TCP frame may carry several messages (ids comma-separated).
        return sum(len(l.split(",")) for l in t.stdout.splitlines() if l.strip())
    theirs = (tcount("dns && dns.flags.response == 0 && !mdns && !llmnr && !icmp && !icmpv6"),
              tcount("dns && dns.flags.response == 1 && !mdns && !llmnr && !icmp && !icmpv6"))
    ours_retx = dns.get("retransmitted_queries", 0)
    theirs_retx = tcount("dns.retransmission && dns.flags.response == 0 && !mdns && !llmnr && !icmp && !icmpv6",
                         "dns.retransmission")
    status = "ok" if ours == theirs and ours_retx == theirs_retx else "MISMATCH"
    if status != "ok":
        bad += 1
    rows.append((path, status, f"podpath q/r/retx={ours + (ours_retx,)} tshark q/r/retx={theirs + (theirs_retx,)}"))
for r in rows:
    print(f"{r[1]:9} {os.path.relpath(r[0], root)}: {r[2]}")
print(f"corpus: {len(files)} files, {bad} failing")
sys.exit(1 if bad else 0)
PY
