#!/bin/sh
# Generates prometheusrule.yaml (Prometheus Operator) from podpath-rules.yml,
# the single source of truth for podpath's alerts.
#   deploy/monitoring/gen-prometheusrule.sh          rewrite prometheusrule.yaml
#   deploy/monitoring/gen-prometheusrule.sh --check  fail if it is out of date
# The rule groups are copied as text, indented under `spec:`, so comments and
# layout survive; only the file's leading comment block is replaced.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
src="$dir/podpath-rules.yml"
out="$dir/prometheusrule.yaml"

generate() {
    cat <<'HEADER'
# GENERATED from podpath-rules.yml by gen-prometheusrule.sh; edit that file
# and rerun the script. Runbooks: docs/alerts.md.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: podpath
  labels:
    app.kubernetes.io/name: podpath
    app.kubernetes.io/component: alerting
spec:
HEADER
    # Drop the leading comment block, indent the rest by two spaces (blank
    # lines stay empty).
    awk 'started || !/^(#|$)/ { started = 1; if ($0 == "") print ""; else print "  " $0 }' "$src"
}

if [ "${1:-}" = "--check" ]; then
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    generate > "$tmp"
    if ! diff -u "$out" "$tmp"; then
        echo "prometheusrule.yaml is out of date: run deploy/monitoring/gen-prometheusrule.sh" >&2
        exit 1
    fi
else
    generate > "$out"
fi
