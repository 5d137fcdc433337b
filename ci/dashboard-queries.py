#!/usr/bin/env python3
"""Runs every query of podpath's Grafana dashboards against a Prometheus.

    PROMETHEUS_URL=http://127.0.0.1:9090 ci/dashboard-queries.py [grafana/*.json]
        Runs each panel query (and each label_values() variable query) through
        the HTTP API. Fails on any query error; reports how many returned data;
        fails when fewer than MIN_DATA_RATIO (0..1, default 0) of the panel
        queries returned data.
    ci/dashboard-queries.py --list [files]
        Prints every query after variable substitution.
    ci/dashboard-queries.py --rules-file OUT [files]
        Writes the queries as recording rules, so `promtool check rules OUT`
        parses each one without a server.
    ci/dashboard-queries.py --check-names FILE...
        Fails if FILE (dashboard JSON or rule YAML) names a podpath_* metric that
        podpath does not export (a typo would otherwise only show as no data).

Substitutions: template variables ($namespace, ${pod}, ...) -> `.*` (every
dashboard variable is a multi-value regex), $__rate_interval and $__interval ->
RATE_INTERVAL (default 1m), $__range -> RANGE (default 1h).
Standard library only.
"""

import json
import os
import pathlib
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The metrics contract: names podpath exports (histograms by base name).
COUNTERS_AND_GAUGES = {
    "podpath_connections_total",
    "podpath_literal_connections_total",
    "podpath_destination_info",
    "podpath_inbound_connections_total",
    "podpath_tcp_connect_failures_total",
    "podpath_connection_bytes_total",
    "podpath_http_requests_total",
    "podpath_inbound_http_requests_total",
    "podpath_dns_queries_total",
    "podpath_dns_lookups_total",
    "podpath_dns_lookup_queries_total",
    "podpath_dns_lookup_wasted_queries_total",
    "podpath_label_overflow_total",
    "podpath_capture_packets_total",
    "podpath_capture_drops_total",
    "podpath_decode_skipped_total",
    "podpath_table_evictions_total",
    "podpath_capture_up",
    "podpath_table_capacity",
    "podpath_memory_limit_bytes",
    "podpath_memory_budget_bytes",
    "podpath_capture_error_info",
    "podpath_build_info",
    "podpath_tls_connections_total",
    "podpath_tls_sni_confirms_dns_total",
    "podpath_tls_sni_mismatches_dns_total",
    "podpath_grpc_requests_total",
    "podpath_h2_streams_unread_total",
    "podpath_dns_stale_connections_total",
    "podpath_rewritten_connections_total",
    "podpath_destination_rewrite_detected",
    "podpath_udp_port_unreachable_total",
    "podpath_dns_malformed_total",
    "podpath_dns_retransmissions_total",
    "podpath_dns_late_answers_total",
}
HISTOGRAMS = {
    "podpath_tcp_connect_duration_seconds",
    "podpath_http_request_duration_seconds",
    "podpath_inbound_http_request_duration_seconds",
    "podpath_dns_response_duration_seconds",
}
KNOWN = COUNTERS_AND_GAUGES | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}


def dashboard_files(args):
    return [pathlib.Path(a) for a in args] or sorted((ROOT / "grafana").glob("*.json"))


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def substitute(expr):
    rate = os.environ.get("RATE_INTERVAL", "1m")
    rng = os.environ.get("RANGE", "1h")
    expr = expr.replace("$__rate_interval", rate).replace("${__rate_interval}", rate)
    expr = expr.replace("$__interval", rate).replace("${__interval}", rate)
    expr = expr.replace("$__range", rng).replace("${__range}", rng)
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", ".*", expr)


def collect(files):
    """(file, panel title, refId, expr) for every panel target, and
    (file, variable name, label_values query) for every query variable."""
    queries, variables = [], []
    for f in files:
        board = json.loads(f.read_text())
        for p in panels(board.get("panels", [])):
            for t in p.get("targets", []):
                if t.get("expr"):
                    queries.append((f.name, p.get("title", ""), t.get("refId", ""), substitute(t["expr"])))
        for v in board.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v.get("query")
                q = q.get("query", "") if isinstance(q, dict) else (q or "")
                variables.append((f.name, v.get("name", ""), q))
    return queries, variables


def api(base, path, params):
    url = f"{base.rstrip('/')}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except ValueError:
            return None, f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return None, str(e)
    if body.get("status") != "success":
        return None, f"{body.get('errorType', '')}: {body.get('error', body)}"
    return body.get("data"), None


def label_values_call(query):
    """label_values(selector, label) or label_values(label) -> (selector, label)."""
    m = re.fullmatch(r"\s*label_values\(\s*(?:(.*\S)\s*,\s*)?(\w+)\s*\)\s*", query)
    if not m:
        return None
    return (substitute(m.group(1)) if m.group(1) else None), m.group(2)


def run_live(files):
    base = os.environ.get("PROMETHEUS_URL")
    if not base:
        print("PROMETHEUS_URL is not set", file=sys.stderr)
        return 2
    queries, variables = collect(files)
    errors, with_data = 0, 0
    for board, title, ref, expr in queries:
        data, err = api(base, "/api/v1/query", {"query": expr})
        if err:
            errors += 1
            print(f"ERROR  {board} / {title} [{ref}]: {err}\n       {expr}")
            continue
        n = len(data.get("result", [])) if isinstance(data, dict) else 0
        if n:
            with_data += 1
        print(f"{'data ' if n else 'empty'}  {board} / {title} [{ref}]: {n} series")
    for board, name, query in variables:
        call = label_values_call(query)
        if call is None:
            errors += 1
            print(f"ERROR  {board} / variable {name}: not a label_values() query: {query}")
            continue
        selector, label = call
        params = {"match[]": [selector]} if selector else {}
        data, err = api(base, f"/api/v1/label/{label}/values", params)
        if err:
            errors += 1
            print(f"ERROR  {board} / variable {name}: {err}")
        else:
            print(f"{'data ' if data else 'empty'}  {board} / variable {name}: {len(data or [])} values")
    total = len(queries)
    print(f"{total} panel queries: {errors} errors, {with_data} returned data, {total - with_data - errors} empty")
    ratio = with_data / total if total else 0.0
    min_ratio = float(os.environ.get("MIN_DATA_RATIO", "0"))
    if ratio < min_ratio:
        print(f"only {ratio:.0%} of the panel queries returned data (MIN_DATA_RATIO {min_ratio:.0%})")
        return 1
    return 1 if errors else 0


def write_rules(out, files):
    queries, _ = collect(files)
    lines = ["# Generated by ci/dashboard-queries.py: one recording rule per dashboard query.", "groups:"]
    lines += ["- name: dashboard-queries", "  rules:"]
    for i, (board, title, ref, expr) in enumerate(queries):
        lines.append(f"  # {board} / {title} [{ref}]")
        lines.append(f"  - record: dashboard:query_{i}")
        lines.append(f"    expr: {json.dumps(expr)}")
    pathlib.Path(out).write_text("\n".join(lines) + "\n")
    print(f"{len(queries)} queries written to {out}")
    return 0


def check_names(files):
    bad = 0
    for f in files:
        for name in sorted(set(re.findall(r"\bpodpath_[a-z_]+", pathlib.Path(f).read_text()))):
            if name not in KNOWN and name != "podpath_" and not name.startswith("podpath_metrics"):
                print(f"{f}: unknown metric {name}")
                bad += 1
    print(f"metric names checked in {len(files)} files: {bad} unknown")
    return 1 if bad else 0


def main(argv):
    if argv[:1] == ["--list"]:
        queries, variables = collect(dashboard_files(argv[1:]))
        for board, title, ref, expr in queries:
            print(f"{board} / {title} [{ref}]: {expr}")
        for board, name, query in variables:
            print(f"{board} / variable {name}: {query}")
        return 0
    if argv[:1] == ["--rules-file"] and len(argv) >= 2:
        return write_rules(argv[1], dashboard_files(argv[2:]))
    if argv[:1] == ["--check-names"]:
        return check_names(argv[1:])
    return run_live(dashboard_files(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
