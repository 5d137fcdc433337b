#!/usr/bin/env bash
# Seeds fuzz/corpus/{decode,dns_udp} from capture files (default: the
# repository's tests/captures and, when present, /work/shared/corpus).
# decode: one file per frame, first byte = index into podpath::decode::LinkType::ALL.
# dns_udp: one file per UDP port-53 payload (tshark).
# The structured targets (dns_tcp, http1, engine, engine_metrics) take
# `arbitrary` input, which raw captures do not map onto: they start empty.
# Corpora are not committed (.gitignore); at most MAX frames per capture.
# Usage: fuzz/scripts/seed.sh [DIR...]
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(../tests/captures /work/shared/corpus)
command -v editcap >/dev/null && command -v tshark >/dev/null ||
    { echo "needs editcap and tshark (apt-get install tshark)"; exit 1; }
mkdir -p corpus/decode corpus/dns_udp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
MAX=${MAX:-200}
find "${dirs[@]}" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) 2>/dev/null | sort |
while read -r f; do
    editcap -F pcap -r "$f" "$tmp/x.pcap" 1-"$MAX" 2>/dev/null || continue
    python3 - "$tmp/x.pcap" corpus/decode <<'PY'
import hashlib, os, struct, sys
path, out = sys.argv[1], sys.argv[2]
links = {0: 0, 1: 1, 12: 2, 14: 2, 101: 2, 108: 3, 113: 4, 228: 5, 229: 6, 276: 7}
data = open(path, "rb").read()
if len(data) < 24:
    sys.exit(0)
magic = data[:4]
endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0fffffff
if linktype not in links:
    sys.exit(0)
at = 24
while at + 16 <= len(data):
    incl = struct.unpack(endian + "I", data[at + 8:at + 12])[0]
    frame = data[at + 16:at + 16 + incl]
    at += 16 + incl
    seed = bytes([links[linktype]]) + frame
    name = hashlib.sha1(seed).hexdigest()
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(seed)
PY
    tshark -n -r "$tmp/x.pcap" -Y 'udp.port == 53' -T fields -e udp.payload 2>/dev/null |
        python3 -c '
import hashlib, sys
for line in sys.stdin:
    line = line.strip().replace(":", "")
    if not line:
        continue
    b = bytes.fromhex(line)
    open("corpus/dns_udp/" + hashlib.sha1(b).hexdigest(), "wb").write(b)
'
done
echo "decode: $(ls corpus/decode | wc -l) seeds, dns_udp: $(ls corpus/dns_udp | wc -l) seeds"
