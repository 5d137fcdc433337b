#!/usr/bin/env bash
# The core crate (crates/core) is the pure engine: no runtime, no server, no
# CLI, no capture and no file or socket I/O. The crate graph already keeps
# the binary's modules out of it; this check keeps the dependencies and the
# standard library's I/O out too, so a later change cannot quietly undo it.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden='^(tokio|axum|hyper|hyper-util|clap|pnet_datalink|pcap-parser|podpath-afpacket|socket2|tracing-subscriber|serde_json|caps|memmap2) '
deps=$(cargo tree -p podpath-core -e normal --prefix none --offline 2>/dev/null || cargo tree -p podpath-core -e normal --prefix none)
bad=$(printf '%s\n' "$deps" | grep -E "$forbidden" | sort -u || true)
if [ -n "$bad" ]; then
  echo "podpath-core depends on I/O or runtime crates:" >&2
  echo "$bad" >&2
  exit 1
fi

# std's I/O, outside test code (tests may read fixtures or spawn threads):
# test files, and each file from its `#[cfg(test)]` module on.
# shellcheck disable=SC2016 # the single quotes hold an awk program ($0 is awk's)
io=$(find crates/core/src -name '*.rs' ! -name tests.rs ! -path '*/tests/*' ! -name build.rs -print0 |
  xargs -0 awk '/^#\[cfg\(test\)\]/ { nextfile }
    /std::(fs|net::(TcpStream|TcpListener|UdpSocket)|process|thread::spawn|time::(SystemTime|Instant))/ {
      print FILENAME ":" FNR ": " $0 }')
if [ -n "$io" ]; then
  echo "podpath-core does I/O or reads the clock (it runs on packet time only):" >&2
  echo "$io" >&2
  exit 1
fi
echo "podpath-core: $(printf '%s\n' "$deps" | sort -u | wc -l) crates, none of them I/O or runtime; no std I/O or clock"
