#!/usr/bin/env python3
"""Generates podpath's Grafana dashboards (grafana/*.json).

The JSON files are committed and are what users import; this script is their
source, so panels share one label selector and one style.
    python3 grafana/generate.py          rewrite the JSON files
    python3 grafana/generate.py --check  fail if a JSON file is out of date

Labels the queries use (attached by deploy/monitoring's scrape configs):
namespace, workload, pod, container (the scraped pod) and dst_namespace
(podpath's own `namespace` label, the destination's namespace).
Standard library only.
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'namespace=~"$namespace", workload=~"$workload", pod=~"$pod"'
RI = "$__rate_interval"


def variables():
    def query_var(name, label, query):
        return {
            "type": "query",
            "name": name,
            "label": label,
            "datasource": DS,
            "definition": query,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
            "hide": 0,
            "regex": "",
            "options": [],
        }

    return {
        "list": [
            {
                "type": "datasource",
                "name": "datasource",
                "label": "Data source",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1,
                "regex": "",
                "options": [],
                "includeAll": False,
                "multi": False,
            },
            query_var("namespace", "Namespace", "label_values(podpath_build_info, namespace)"),
            query_var(
                "workload",
                "Workload",
                'label_values(podpath_build_info{namespace=~"$namespace"}, workload)',
            ),
            query_var(
                "pod",
                "Pod",
                'label_values(podpath_build_info{namespace=~"$namespace", workload=~"$workload"}, pod)',
            ),
        ]
    }


class Layout:
    """Places panels left to right, 24 grid units per row."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1
        self.panels = []

    def add(self, panel, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self.x, self.y, self.row_h = 0, self.y + 1, 0


def target(expr, legend="", ref="A", instant=False, table=False):
    t = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if instant:
        t.update({"instant": True, "range": False})
    else:
        t.update({"instant": False, "range": True})
    if table:
        t["format"] = "table"
    return t


def timeseries(title, targets, unit="short", description="", stack=False):
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 20 if stack else 0,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                    "showPoints": "never",
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def table(title, targets, rename, description="", unit="short"):
    """An instant-query table; `rename` maps label names to column titles
    (and fixes their order); Time is hidden."""
    order = {name: i for i, name in enumerate(list(rename) + ["Value"])}
    titles = dict(rename)
    exclude = {"Time": True}
    transformations = []
    if len(targets) > 1:
        transformations.append({"id": "merge", "options": {}})
        for t in targets:
            titles[f"Value #{t['refId']}"] = t["legendFormat"]
            order[f"Value #{t['refId']}"] = len(order)
    else:
        titles["Value"] = targets[0]["legendFormat"]
    transformations.append(
        {
            "id": "organize",
            "options": {"excludeByName": exclude, "indexByName": order, "renameByName": titles},
        }
    )
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "transformations": transformations,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    }


def stat(title, targets, unit="short", description="", thresholds=None):
    steps = thresholds or [{"color": "green", "value": None}]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        },
    }


def dashboard(uid, title, description, layout):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["podpath"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": variables(),
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["podpath"],
                "asDropdown": True,
                "title": "podpath",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": layout.panels,
    }


ADVICE = HERE.parent / "src" / "report" / "advice.txt"


def advice():
    """kind -> (cost, template), from the one source of the advice wording
    (src/report/advice.txt, read by `podpath analyze` and the alerts too)."""
    out = {}
    for line in ADVICE.read_text().splitlines():
        if line.startswith("#") or ": " not in line:
            continue
        head, text = line.split(": ", 1)
        kind, cost = head.split(" ")
        out[kind] = (int(cost), text)
    return out


# Each finding kind from the series its alert reads, over the dashboard's
# time range: the labels that name the subject, and the expression.
FIX_QUERIES = {
    "literal_pod_ip": f'sum by (namespace, workload, service, dst_namespace) (increase(podpath_connections_total{{{SEL}, path="pod_ip"}}[$__range]))',
    "literal_cluster_ip": f'sum by (namespace, workload, service, dst_namespace) (increase(podpath_connections_total{{{SEL}, path="cluster_ip"}}[$__range]))',
    "search_walk_waste": f"sum by (namespace, workload, dns_name) (increase(podpath_dns_lookup_wasted_queries_total{{{SEL}}}[$__range]))",
    "failing_lookup": f'(sum by (namespace, workload, dns_name) (increase(podpath_dns_lookups_total{{{SEL}, result!="NOERROR"}}[$__range])) '
    f'unless on (namespace, workload, dns_name) sum by (namespace, workload, dns_name) (increase(podpath_dns_lookups_total{{{SEL}, result="NOERROR"}}[$__range])) > 0)',
    "stale_answer": f"sum by (namespace, workload, dns_name) (increase(podpath_dns_stale_connections_total{{{SEL}}}[$__range]))",
    "connect_failures": f"sum by (namespace, workload, path) (increase(podpath_tcp_connect_failures_total{{{SEL}}}[$__range]))",
    "rewritten_destination": f"sum by (namespace, workload, dns_name) (increase(podpath_rewritten_connections_total{{{SEL}}}[$__range]))",
}
# A dashboard row has no per-row template: the columns name the subject.
FIX_PLACEHOLDERS = {"{dial}": "<service>[.<namespace>]", "{dns_name}": "<name>"}


def what_to_fix():
    """The findings of `podpath analyze`, from the metrics: one row per
    kind and subject, impact = occurrences x the kind's cost, with the
    advice."""
    adv = advice()
    if set(adv) != set(FIX_QUERIES):
        sys.exit(f"advice.txt kinds {sorted(adv)} != dashboard kinds {sorted(FIX_QUERIES)}")
    parts = []
    for kind, expr in FIX_QUERIES.items():
        cost, text = adv[kind]
        for key, value in FIX_PLACEHOLDERS.items():
            text = text.replace(key, value)
        text = text.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(
            f'label_replace(label_replace(({expr} > 0) * {cost}, "kind", "{kind}", "", ""), "fix", "{text}", "", "")'
        )
    return table(
        "What to fix (impact = occurrences × cost, time range)",
        [target("sort_desc(" + "\n or ".join(parts) + ")", "Impact", instant=True, table=True)],
        {
            "kind": "Kind",
            "namespace": "Caller namespace",
            "workload": "Caller",
            "service": "Service",
            "dst_namespace": "Service namespace",
            "dns_name": "Name",
            "path": "Path",
            "fix": "Fix",
        },
        description="The findings podpath analyze reports, from the same series as the alerts; "
        "the advice is src/report/advice.txt, as in analyze and the alerts' fix annotation. "
        "Costs per occurrence: docs/findings.md.",
    )


def paths_dashboard():
    l = Layout()
    l.row("What to fix")
    l.add(what_to_fix(), 24, 8)
    l.row("Traffic by path")
    l.add(
        timeseries(
            "Outbound connections by path",
            [target(f"sum by (path) (rate(podpath_connections_total{{{SEL}}}[{RI}]))", "{{path}}")],
            unit="cps",
            stack=True,
            description="TCP connection attempts and UDP flows per second, by how the app "
            "addressed the destination: loopback, literal pod IP, literal ClusterIP, a DNS "
            "name, or an external address.",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "Connections by workload and path",
            [
                target(
                    f"sum by (namespace, workload, path) (rate(podpath_connections_total{{{SEL}}}[{RI}]))",
                    "{{namespace}}/{{workload}} {{path}}",
                )
            ],
            unit="cps",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "Bytes by path and direction",
            [
                target(
                    f"sum by (path, direction) (rate(podpath_connection_bytes_total{{{SEL}}}[{RI}]))",
                    "{{path}} {{direction}}",
                )
            ],
            unit="Bps",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "Inbound connections by port",
            [
                target(
                    f"sum by (protocol, port) (rate(podpath_inbound_connections_total{{{SEL}}}[{RI}]))",
                    "{{protocol}}/{{port}}",
                )
            ],
            unit="cps",
        ),
        12,
        8,
    )
    l.add(
        table(
            "Path mix per workload (time range)",
            [
                target(
                    f"sum by (namespace, workload, path) (increase(podpath_connections_total{{{SEL}}}[$__range]))",
                    "Connections",
                    instant=True,
                    table=True,
                )
            ],
            {"namespace": "Namespace", "workload": "Workload", "path": "Path"},
        ),
        24,
        8,
    )
    l.row("Fragile addressing")
    literal = f"increase(podpath_literal_connections_total{{{SEL}}}[$__range])"
    l.add(
        table(
            "Who calls what by literal pod IP or ClusterIP (time range)",
            [
                target(
                    # docs/naming.md: the counts by address, joined with what
                    # each address is; addresses without a name yet are kept.
                    "sum by (namespace, workload, path, address, port, service, dst_namespace) ("
                    f"{literal} * on (address) group_left (service, dst_namespace) "
                    "max by (address, service, dst_namespace) (podpath_destination_info) "
                    f"or on (namespace, pod, path, address, port) {literal}) > 0",
                    "Connections",
                    instant=True,
                    table=True,
                )
            ],
            {
                "namespace": "Caller namespace",
                "workload": "Caller",
                "path": "Addressed by",
                "address": "Address",
                "port": "Port",
                "service": "Service",
                "dst_namespace": "Service namespace",
            },
            description="Connections made to a literal pod IP (changes on every pod restart) or "
            "a literal ClusterIP (changes when the Service is recreated) rather than a DNS name, "
            "with the Service the address belongs to: named from A/AAAA answers the pods "
            "received, PTR answers the apps asked for, or podpath's own PTR lookups "
            "(podpath_destination_info). Service is empty while no name is known. "
            "Runbook: docs/alerts.md; the query: docs/naming.md.",
        ),
        24,
        9,
    )
    l.add(
        table(
            "What each literal address is (podpath_destination_info)",
            [
                target(
                    "max by (address, service, dst_namespace, dst_pod, name, source) "
                    f"(podpath_destination_info{{{SEL}}})",
                    "Known",
                    instant=True,
                    table=True,
                )
            ],
            {
                "address": "Address",
                "service": "Service",
                "dst_namespace": "Service namespace",
                "dst_pod": "Pod (endpoint hostname)",
                "name": "DNS name",
                "source": "Learned from",
            },
            description="The cluster DNS name each literal destination has: dns_answer (an "
            "A/AAAA answer the pod received), app_ptr (a PTR answer the app asked for), ptr "
            "(podpath's own PTR lookup). One name per address per pod.",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "Literal-address connections",
            [
                target(
                    "sum by (namespace, workload, path) "
                    f'(rate(podpath_connections_total{{{SEL}, path=~"pod_ip|cluster_ip"}}[{RI}]))',
                    "{{namespace}}/{{workload}} {{path}}",
                )
            ],
            unit="cps",
        ),
        12,
        8,
    )
    l.add(
        table(
            "Names in use (path=dns, time range)",
            [
                target(
                    "sum by (namespace, workload, dns_name, target, service, dst_namespace) "
                    f'(increase(podpath_connections_total{{{SEL}, path="dns"}}[$__range])) > 0',
                    "Connections",
                    instant=True,
                    table=True,
                )
            ],
            {
                "namespace": "Caller namespace",
                "workload": "Caller",
                "dns_name": "Name as written",
                "target": "Resolved to",
                "service": "Service",
                "dst_namespace": "Service namespace",
            },
        ),
        12,
        8,
    )
    return dashboard(
        "podpath-paths",
        "podpath / Paths",
        "How each workload addresses what it calls: loopback, pod IP, ClusterIP, DNS name, external.",
        l,
    )


def dns_dashboard():
    l = Layout()
    l.row("Queries on the wire")
    l.add(
        timeseries(
            "DNS queries by rcode",
            [target(f"sum by (rcode) (rate(podpath_dns_queries_total{{{SEL}}}[{RI}]))", "{{rcode}}")],
            unit="reqps",
            stack=True,
            description="Every query the pod sent, by response code (TIMEOUT: no answer). "
            "NXDOMAIN here includes the search-list candidates the resolver expects to fail.",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "DNS queries by type",
            [target(f"sum by (qtype) (rate(podpath_dns_queries_total{{{SEL}}}[{RI}]))", "{{qtype}}")],
            unit="reqps",
            stack=True,
        ),
        12,
        8,
    )
    l.row("Lookups (after search-list collapse)")
    l.add(
        timeseries(
            "Lookups by result",
            [target(f"sum by (result) (rate(podpath_dns_lookups_total{{{SEL}}}[{RI}]))", "{{result}}")],
            unit="reqps",
            stack=True,
            description="Logical lookups: a name as the app wrote it, counted once however many "
            "search-list candidates the resolver tried; the result is the final candidate's.",
        ),
        8,
        8,
    )
    l.add(
        timeseries(
            "Lookups by name form",
            [target(f"sum by (form) (rate(podpath_dns_lookups_total{{{SEL}}}[{RI}]))", "{{form}}")],
            unit="reqps",
            stack=True,
        ),
        8,
        8,
    )
    l.add(
        stat(
            "Queries wasted on search-list misses",
            [
                target(
                    f"sum(rate(podpath_dns_lookup_wasted_queries_total{{{SEL}}}[{RI}])) "
                    f"/ sum(rate(podpath_dns_lookup_queries_total{{{SEL}}}[{RI}]))",
                    "wasted",
                )
            ],
            unit="percentunit",
            thresholds=[
                {"color": "green", "value": None},
                {"color": "orange", "value": 0.5},
                {"color": "red", "value": 0.75},
            ],
        ),
        8,
        8,
    )
    l.add(
        table(
            "Lookups with the most wasted queries (time range)",
            [
                target(
                    "topk(20, sum by (namespace, workload, dns_name, form) "
                    f"(increase(podpath_dns_lookup_wasted_queries_total{{{SEL}}}[$__range])))",
                    "Wasted queries",
                    ref="A",
                    instant=True,
                    table=True,
                ),
                target(
                    "sum by (namespace, workload, dns_name, form) "
                    f"(increase(podpath_dns_lookup_queries_total{{{SEL}}}[$__range]))",
                    "All queries",
                    ref="B",
                    instant=True,
                    table=True,
                ),
            ],
            {"namespace": "Namespace", "workload": "Workload", "dns_name": "Name", "form": "Form"},
            description="Queries spent on search-list candidates that failed before the one that "
            "answered. A trailing dot (api.example.com.) or a lower ndots removes them.",
        ),
        12,
        9,
    )
    l.add(
        table(
            "Failing lookups (time range)",
            [
                target(
                    "sum by (namespace, workload, dns_name, result) "
                    f'(increase(podpath_dns_lookups_total{{{SEL}, result!="NOERROR"}}[$__range])) > 0',
                    "Lookups",
                    instant=True,
                    table=True,
                )
            ],
            {"namespace": "Namespace", "workload": "Workload", "dns_name": "Name", "result": "Result"},
        ),
        12,
        9,
    )
    l.row("Latency")
    l.add(
        timeseries(
            "DNS response time",
            [
                target(
                    f"histogram_quantile({q}, sum by (le) (rate(podpath_dns_response_duration_seconds_bucket{{{SEL}}}[{RI}])))",
                    f"p{int(q * 100)}",
                    ref=ref,
                )
                for q, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))
            ],
            unit="s",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "DNS p99 by workload",
            [
                target(
                    "histogram_quantile(0.99, sum by (namespace, workload, le) "
                    f"(rate(podpath_dns_response_duration_seconds_bucket{{{SEL}}}[{RI}])))",
                    "{{namespace}}/{{workload}}",
                )
            ],
            unit="s",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "Retransmitted queries and late answers",
            [
                target(
                    f"sum by (qtype) (rate(podpath_dns_retransmissions_total{{{SEL}}}[{RI}]))",
                    "retransmitted {{qtype}}",
                    ref="A",
                ),
                target(
                    f"sum by (rcode) (rate(podpath_dns_late_answers_total{{{SEL}}}[{RI}]))",
                    "late {{rcode}}",
                    ref="B",
                ),
            ],
            unit="reqps",
            description="Queries the resolver sent again with the same id because no answer came "
            "in time (they are in the query counts too), and answers that came after the query had "
            "timed out (counted as TIMEOUT), by their rcode. Runbook: "
            "docs/alerts.md#podpathdnsretransmissions.",
        ),
        24,
        8,
    )
    l.row("Stale answers and rewritten destinations")
    l.add(
        timeseries(
            "Connections following stale DNS answers",
            [
                target(
                    f"sum by (namespace, workload, dns_name, reason) (rate(podpath_dns_stale_connections_total{{{SEL}}}[{RI}]))",
                    "{{workload}} → {{dns_name}} ({{reason}})",
                )
            ],
            unit="cps",
            description="Connections to an address the latest answer for the name no longer holds "
            "(not_in_latest_answer) or resolved longer ago than its TTL (past_ttl): clients caching "
            "DNS past the TTL. Runbook: docs/alerts.md#podpathstaledns.",
        ),
        16,
        8,
    )
    l.add(
        stat(
            "Destination rewriting detected",
            [target(f"max(podpath_destination_rewrite_detected{{{SEL}}})", "rewritten")],
            description="1 when lookups answering a ClusterIP are repeatedly followed by connections "
            "to pod IPs (socket-level load balancing or a mesh sidecar): such connections are "
            "attributed to the looked-up name (podpath_rewritten_connections_total).",
            thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
        ),
        8,
        8,
    )
    return dashboard(
        "podpath-dns",
        "podpath / DNS",
        "DNS as each pod sees it: queries by rcode, lookups after search-list collapse, waste, latency.",
        l,
    )


def tcp_http_dashboard():
    l = Layout()
    l.row("TCP connect")
    l.add(
        timeseries(
            "TCP connect time by path",
            [
                target(
                    "histogram_quantile(0.5, sum by (path, le) "
                    f"(rate(podpath_tcp_connect_duration_seconds_bucket{{{SEL}}}[{RI}])))",
                    "p50 {{path}}",
                    ref="A",
                ),
                target(
                    "histogram_quantile(0.99, sum by (path, le) "
                    f"(rate(podpath_tcp_connect_duration_seconds_bucket{{{SEL}}}[{RI}])))",
                    "p99 {{path}}",
                    ref="B",
                ),
            ],
            unit="s",
            description="SYN to SYN-ACK as seen in the pod.",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "TCP connect failures by path and reason",
            [
                target(
                    f"sum by (path, reason) (rate(podpath_tcp_connect_failures_total{{{SEL}}}[{RI}]))",
                    "{{path}} {{reason}}",
                )
            ],
            unit="cps",
            description="refused: answered with RST; timeout: no SYN-ACK.",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "TCP connect failure ratio by path",
            [
                target(
                    f"sum by (path) (rate(podpath_tcp_connect_failures_total{{{SEL}}}[{RI}])) "
                    f'/ sum by (path) (rate(podpath_connections_total{{{SEL}, protocol="tcp"}}[{RI}]))',
                    "{{path}}",
                )
            ],
            unit="percentunit",
        ),
        24,
        8,
    )
    l.row("HTTP/1 outbound")
    l.add(
        timeseries(
            "Requests by path and service",
            [
                target(
                    f"sum by (path, service) (rate(podpath_http_requests_total{{{SEL}}}[{RI}]))",
                    "{{path}} {{service}}",
                )
            ],
            unit="reqps",
        ),
        8,
        8,
    )
    l.add(
        timeseries(
            "Error ratio (5xx) by service",
            [
                target(
                    f'sum by (service) (rate(podpath_http_requests_total{{{SEL}, code=~"5.."}}[{RI}])) '
                    f"/ sum by (service) (rate(podpath_http_requests_total{{{SEL}}}[{RI}]))",
                    "{{service}}",
                )
            ],
            unit="percentunit",
        ),
        8,
        8,
    )
    l.add(
        timeseries(
            "p99 latency by path and service",
            [
                target(
                    "histogram_quantile(0.99, sum by (path, service, le) "
                    f"(rate(podpath_http_request_duration_seconds_bucket{{{SEL}}}[{RI}])))",
                    "{{path}} {{service}}",
                )
            ],
            unit="s",
        ),
        8,
        8,
    )
    l.add(
        table(
            "Outbound requests by service and code (time range)",
            [
                target(
                    "sum by (namespace, workload, path, service, method, code) "
                    f"(increase(podpath_http_requests_total{{{SEL}}}[$__range])) > 0",
                    "Requests",
                    instant=True,
                    table=True,
                )
            ],
            {
                "namespace": "Namespace",
                "workload": "Workload",
                "path": "Path",
                "service": "Service",
                "method": "Method",
                "code": "Code",
            },
        ),
        24,
        8,
    )
    l.row("HTTP/1 inbound")
    l.add(
        timeseries(
            "Inbound requests by code",
            [
                target(
                    f"sum by (code) (rate(podpath_inbound_http_requests_total{{{SEL}}}[{RI}]))",
                    "{{code}}",
                )
            ],
            unit="reqps",
            stack=True,
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "Inbound latency",
            [
                target(
                    f"histogram_quantile({q}, sum by (le) (rate(podpath_inbound_http_request_duration_seconds_bucket{{{SEL}}}[{RI}])))",
                    f"p{int(q * 100)}",
                    ref=ref,
                )
                for q, ref in ((0.5, "A"), (0.99, "B"))
            ],
            unit="s",
        ),
        12,
        8,
    )
    l.row("TLS, HTTP/2 and gRPC")
    l.add(
        table(
            "TLS connections by SNI (time range)",
            [
                target(
                    "sum by (namespace, workload, path, sni, alpn) "
                    f"(increase(podpath_tls_connections_total{{{SEL}}}[$__range])) > 0",
                    "Connections",
                    instant=True,
                    table=True,
                )
            ],
            {
                "namespace": "Caller namespace",
                "workload": "Caller",
                "path": "Path",
                "sni": "SNI",
                "alpn": "ALPN",
            },
            description="TLS ClientHellos by server name (~none: no SNI; ~unknown: the hello was cut "
            "before the SNI) and first ALPN protocol offered.",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "Requests by protocol",
            [
                target(
                    f"sum by (protocol) (rate(podpath_http_requests_total{{{SEL}}}[{RI}]))",
                    "{{protocol}}",
                ),
                target(
                    f"sum by (grpc_status) (rate(podpath_grpc_requests_total{{{SEL}}}[{RI}]))",
                    "grpc-status {{grpc_status}}",
                    ref="B",
                ),
            ],
            unit="reqps",
            description="Outbound requests by protocol (http1, h2, grpc) and gRPC calls by grpc-status.",
        ),
        12,
        8,
    )
    return dashboard(
        "podpath-tcp-http",
        "podpath / TCP and HTTP",
        "TCP connect latency and failures, HTTP/1 rate, errors and latency, by path and service.",
        l,
    )


def sidecar_dashboard():
    l = Layout()
    l.row("Sidecars")
    l.add(
        stat(
            "Sidecars scraped",
            [target(f'sum(up{{container="podpath", {SEL}}})', "up")],
            description="Scrape targets with container=podpath that answered.",
        ),
        6,
        5,
    )
    l.add(
        stat(
            "Interfaces capturing",
            [target(f"sum(podpath_capture_up{{{SEL}}})", "capturing")],
            description="podpath_capture_up is 1 per interface podpath captures on, 0 per interface it cannot "
            "capture (podpath_capture_error_info gives the reason); it retries and keeps serving meanwhile.",
        ),
        6,
        5,
    )
    l.add(
        stat(
            "Kernel drops (time range)",
            [target(f"sum(increase(podpath_capture_drops_total{{{SEL}}}[$__range]))", "drops")],
            thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
        ),
        6,
        5,
    )
    l.add(
        table(
            "Versions",
            [target(f"sum by (namespace, pod, version) (podpath_build_info{{{SEL}}})", "Pods", instant=True, table=True)],
            {"namespace": "Namespace", "pod": "Pod", "version": "Version"},
        ),
        6,
        5,
    )
    l.row("Capture")
    l.add(
        timeseries(
            "Packets captured by interface",
            [
                target(
                    f"sum by (pod, interface) (rate(podpath_capture_packets_total{{{SEL}}}[{RI}]))",
                    "{{pod}} {{interface}}",
                )
            ],
            unit="pps",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "Kernel drops by interface",
            [
                target(
                    f"sum by (pod, interface) (rate(podpath_capture_drops_total{{{SEL}}}[{RI}]))",
                    "{{pod}} {{interface}}",
                )
            ],
            unit="pps",
            description="PACKET_STATISTICS tp_drops: packets the kernel could not queue to podpath.",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "Packets skipped by decoder",
            [
                target(
                    f"sum by (reason) (rate(podpath_decode_skipped_total{{{SEL}}}[{RI}]))",
                    "{{reason}}",
                )
            ],
            unit="pps",
        ),
        8,
        8,
    )
    l.add(
        timeseries(
            "Table evictions",
            [
                target(
                    f"sum by (table) (rate(podpath_table_evictions_total{{{SEL}}}[{RI}]))",
                    "{{table}}",
                )
            ],
            unit="ops",
        ),
        8,
        8,
    )
    l.add(
        timeseries(
            "Label values folded into ~other",
            [
                target(
                    f"sum by (metric, label) (rate(podpath_label_overflow_total{{{SEL}}}[{RI}]))",
                    "{{metric}} {{label}}",
                )
            ],
            unit="ops",
            description="Values beyond a metric's label cap, counted as ~other to bound cardinality.",
        ),
        8,
        8,
    )
    l.row("Resources")
    l.add(
        timeseries(
            "Resident memory",
            [
                target(
                    f'process_resident_memory_bytes{{container="podpath", {SEL}}}',
                    "{{namespace}}/{{pod}}",
                )
            ],
            unit="bytes",
        ),
        12,
        8,
    )
    l.add(
        timeseries(
            "CPU",
            [
                target(
                    f'rate(process_cpu_seconds_total{{container="podpath", {SEL}}}[{RI}])',
                    "{{namespace}}/{{pod}}",
                )
            ],
            unit="percentunit",
            description="CPU seconds per second (1 = one core).",
        ),
        12,
        8,
    )
    return dashboard(
        "podpath-sidecar",
        "podpath / Sidecar health",
        "Is every podpath sidecar scraped and capturing, what it drops, and what it costs.",
        l,
    )


DASHBOARDS = {
    "podpath-paths.json": paths_dashboard,
    "podpath-dns.json": dns_dashboard,
    "podpath-tcp-http.json": tcp_http_dashboard,
    "podpath-sidecar.json": sidecar_dashboard,
}


def main():
    check = sys.argv[1:] == ["--check"]
    stale = []
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), indent=2) + "\n"
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python3 grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
