#!/usr/bin/env python3
"""Writes a promtool unit test (JSON, which promtool reads as YAML) for the
Paths dashboard's "What to fix" table: its query, as generated, over series
for three finding kinds, must give one row per kind and subject with
impact = occurrences x cost and the advice from src/report/advice.txt.
    python3 grafana/what-to-fix-test.py OUT && promtool test rules OUT
Standard library only.
"""

import importlib.util
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("generate", HERE / "generate.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


def main(out):
    dash = json.loads((HERE / "podpath-paths.json").read_text())
    panel = next(p for p in dash["panels"] if p["type"] == "table" and p["title"].startswith("What to fix"))
    expr = panel["targets"][0]["expr"].replace("$__range", "10m")
    for var in ("$namespace", "$workload", "$pod"):
        expr = expr.replace(var, ".*")
    adv = gen.advice()

    def fix(kind):
        text = adv[kind][1]
        for key, value in gen.FIX_PLACEHOLDERS.items():
            text = text.replace(key, value)
        return text

    base = 'namespace="shop", workload="web", pod="web-1"'
    series = [
        # 1 literal pod-IP call a minute: 10 in 10 min, cost 10.
        (f'podpath_connections_total{{{base}, path="pod_ip", service="", dst_namespace=""}}', "0+1x20"),
        # 6 wasted queries a minute: 60, cost 1.
        (f'podpath_dns_lookup_wasted_queries_total{{{base}, dns_name="api.example.com"}}', "0+6x20"),
        # A name that never resolves: 10 lookups, cost 5.
        (f'podpath_dns_lookups_total{{{base}, dns_name="nosuch", result="NXDOMAIN"}}', "0+1x20"),
        # A name that fails sometimes but resolves: not a failing lookup.
        (f'podpath_dns_lookups_total{{{base}, dns_name="db", result="NXDOMAIN"}}', "0+1x20"),
        (f'podpath_dns_lookups_total{{{base}, dns_name="db", result="NOERROR"}}', "0+1x20"),
    ]
    samples = [
        (f'{{kind="literal_pod_ip", namespace="shop", workload="web", fix={json.dumps(fix("literal_pod_ip"))}}}', 100),
        (f'{{kind="search_walk_waste", namespace="shop", workload="web", dns_name="api.example.com", fix={json.dumps(fix("search_walk_waste"))}}}', 60),
        (f'{{kind="failing_lookup", namespace="shop", workload="web", dns_name="nosuch", fix={json.dumps(fix("failing_lookup"))}}}', 50),
    ]
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "15m",
                        "exp_samples": [{"labels": l, "value": v} for l, v in samples],
                    }
                ],
            }
        ],
    }
    pathlib.Path(out).write_text(json.dumps(test, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
