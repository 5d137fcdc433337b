#!/usr/bin/env bash
# The live sidecar end-to-end test in the namespace lab; see live.py.
set -euo pipefail
exec python3 "$(dirname "$0")/live.py" "$@"
