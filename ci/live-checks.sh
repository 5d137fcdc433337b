#!/usr/bin/env bash
# Checks that need a running podpath: run while `podpath run` serves metrics
# and traffic flows (the seed walkthrough loop).
#
#   PODPATH_METRICS_URL=http://127.0.0.1:9809/metrics ci/live-checks.sh
#
# 1. `promtool check metrics` on a real scrape.
# 2. A Prometheus (Debian package `prometheus`) scrapes that URL every 5 s,
#    attaching the labels the Kubernetes scrape configs attach (namespace,
#    pod, container, workload; podpath's own `namespace` renamed dst_namespace
#    by the metric_relabel_configs copied from deploy/monitoring/prometheus-scrape.yml)
#    and evaluating deploy/monitoring/podpath-rules.yml.
# 3. After SCRAPE_WAIT seconds (default 45): every rule group evaluated without
#    error, and every dashboard query runs without error
#    (ci/dashboard-queries.py; MIN_DATA_RATIO, default 0.5, of them must
#    return data).
# Prometheus listens on 127.0.0.1:${PROMETHEUS_PORT:-19090} and is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
url=${PODPATH_METRICS_URL:?set PODPATH_METRICS_URL, e.g. http://127.0.0.1:9809/metrics}
port=${PROMETHEUS_PORT:-19090}
wait_s=${SCRAPE_WAIT:-45}
export MIN_DATA_RATIO=${MIN_DATA_RATIO:-0.5}

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    apt-get install -y --no-install-recommends prometheus >/dev/null
fi

work=$(mktemp -d)
prom_pid=""
cleanup() {
    if [ -n "$prom_pid" ]; then
        kill "$prom_pid" 2>/dev/null || true
        wait "$prom_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== promtool check metrics ($url)"
# Ask for the classic text format, which promtool's linter parses.
curl -fsS -H 'Accept: text/plain;version=0.0.4' "$url" > "$work/scrape.txt"
promtool check metrics < "$work/scrape.txt"
echo "ok: $(grep -c '^podpath_' "$work/scrape.txt") podpath samples"

# URL -> scheme, host:port, path for a static target.
scheme=${url%%://*}
rest=${url#*://}
hostport=${rest%%/*}
path=/${rest#*/}
[ "$rest" = "$hostport" ] && path=/metrics

cp "$root/deploy/monitoring/podpath-rules.yml" "$work/"
{
    cat <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
- podpath-rules.yml
scrape_configs:
- job_name: podpath
  honor_labels: false
  scheme: $scheme
  metrics_path: $path
  static_configs:
  - targets: ['$hostport']
    labels:
      namespace: ${LAB_NAMESPACE:-podpath-lab}
      pod: ${LAB_POD:-demo-app-2-lab}
      container: podpath
      workload: ${LAB_WORKLOAD:-demo-app-2}
EOF
    # The production metric relabelling, verbatim (it is the file's last block).
    awk '/^  metric_relabel_configs:/ { p = 1 } p' "$root/deploy/monitoring/prometheus-scrape.yml"
} > "$work/prometheus.yml"
promtool check config "$work/prometheus.yml"

echo "== Prometheus on 127.0.0.1:$port, scraping for ${wait_s}s"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn > "$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
    sleep 0.2
done
sleep "$wait_s"

export PROMETHEUS_URL="http://127.0.0.1:$port"
echo "== scrape target health"
curl -fsS "$PROMETHEUS_URL/api/v1/targets" | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
bad = [t for t in targets if t["health"] != "up"]
for t in targets:
    print(t["scrapeUrl"], t["health"], t.get("lastError", ""))
sys.exit(1 if bad or not targets else 0)'

echo "== rule evaluation health"
curl -fsS "$PROMETHEUS_URL/api/v1/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
bad = 0
for g in groups:
    for r in g["rules"]:
        ok = r.get("health") == "ok"
        bad += not ok
        print("%s/%s: %s %s %s" % (g["name"], r["name"], r.get("health"), r.get("state", ""), r.get("lastError", "")))
sys.exit(1 if bad or not groups else 0)'

echo "== exported_namespace renamed to dst_namespace"
curl -fsS "$PROMETHEUS_URL/api/v1/series" --data-urlencode 'match[]={__name__=~"podpath_.+", exported_namespace!=""}' \
    | python3 -c 'import json, sys; n = len(json.load(sys.stdin)["data"]); print(n, "series still carry exported_namespace"); sys.exit(1 if n else 0)'

echo "== exported_pod renamed to dst_pod"
curl -fsS "$PROMETHEUS_URL/api/v1/series" --data-urlencode 'match[]={__name__=~"podpath_.+", exported_pod!=""}' \
    | python3 -c 'import json, sys; n = len(json.load(sys.stdin)["data"]); print(n, "series still carry exported_pod"); sys.exit(1 if n else 0)'

if [ -n "${EXPECT_NAMED:-}" ]; then
    # docs/naming.md's join: every literal destination listed in
    # EXPECT_NAMED ("address=service/namespace ...") comes out named.
    echo "== literal destinations joined with podpath_destination_info"
    curl -fsS "$PROMETHEUS_URL/api/v1/query" --data-urlencode 'query=sum by (path, address, service, dst_namespace) (podpath_literal_connections_total * on (address) group_left (service, dst_namespace) max by (address, service, dst_namespace) (podpath_destination_info))' \
        | EXPECT_NAMED="$EXPECT_NAMED" python3 -c '
import json, os, sys
rows = json.load(sys.stdin)["data"]["result"]
got = {r["metric"]["address"]: "%s/%s" % (r["metric"].get("service", ""), r["metric"].get("dst_namespace", "")) for r in rows}
for r in rows:
    m = r["metric"]
    print("  %s %s -> Service %s/%s: %s connections" % (m["path"], m["address"], m.get("dst_namespace", ""), m.get("service", ""), r["value"][1]))
bad = 0
for item in os.environ["EXPECT_NAMED"].split():
    addr, want = item.split("=")
    svc, ns = want.split("/")
    if got.get(addr) != "%s/%s" % (svc, ns):
        print("missing or wrong: %s named %s/%s, got %s" % (addr, ns, svc, got.get(addr)))
        bad += 1
sys.exit(1 if bad else 0)'
fi

echo "== dashboard queries"
python3 "$root/ci/dashboard-queries.py"
