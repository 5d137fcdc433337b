#!/bin/sh
# Generates prometheusrule.yaml (Prometheus Operator) from podpath-rules.yml,
# the single source of truth for podpath's alerts.
#   deploy/monitoring/gen-prometheusrule.sh          rewrite prometheusrule.yaml
#   deploy/monitoring/gen-prometheusrule.sh --check  fail if it is out of date
#   deploy/monitoring/gen-prometheusrule.sh --stdout the PrometheusRule, to stdout
#   deploy/monitoring/gen-prometheusrule.sh --rules  the plain rule file, to stdout
# CLUSTER_LABEL=<name> (with --stdout or --rules): the label that tells
# clusters apart in a global view, when it is not `cluster`; every
# aggregation keeps it (docs/alerts.md, "Several clusters").
# The rule groups are copied as text, indented under `spec:`, so comments and
# layout survive; only the file's leading comment block is replaced.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
src="$dir/podpath-rules.yml"
out="$dir/prometheusrule.yaml"

cluster_label=${CLUSTER_LABEL:-cluster}
case $cluster_label in
    [a-zA-Z_]*) ;;
    *) echo "CLUSTER_LABEL must be a Prometheus label name" >&2; exit 2 ;;
esac
if [ -n "$(printf '%s' "$cluster_label" | tr -d 'a-zA-Z0-9_')" ]; then
    echo "CLUSTER_LABEL must be a Prometheus label name" >&2
    exit 2
fi

# The rules with the cluster label renamed (the source writes `cluster` first
# in every `by (...)` and `on (...)`, and as `cluster="%s"` / `$labels.cluster`
# in the annotation queries).
rules() {
    sed -e "s/by (cluster, /by ($cluster_label, /g" -e "s/on (cluster, /on ($cluster_label, /g" \
        -e "s/cluster=\"%s\"/$cluster_label=\"%s\"/g" -e "s/\\\$labels\.cluster /\$labels.$cluster_label /g" "$src"
}

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
    rules | awk 'started || !/^(#|$)/ { started = 1; if ($0 == "") print ""; else print "  " $0 }'
}

if [ "$cluster_label" != cluster ] && [ "${1:-}" != --stdout ] && [ "${1:-}" != --rules ]; then
    echo "CLUSTER_LABEL applies to --stdout and --rules: the committed files keep \`cluster\`" >&2
    exit 2
fi
if [ "${1:-}" = "--stdout" ]; then
    generate
elif [ "${1:-}" = "--rules" ]; then
    rules
elif [ "${1:-}" = "--check" ]; then
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
