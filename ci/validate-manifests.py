#!/usr/bin/env python3
"""Validates the objects `kubectl kustomize` built from one deploy/ directory.

    ci/validate-manifests.py BUILT.yaml KUBERNETES_VERSION

Objects of built-in kinds go through `kubernetes-validate --strict` for
KUBERNETES_VERSION. Prometheus Operator objects, which it has no schema for,
get a structural check here and their embedded Prometheus configuration goes
through promtool:
  PrometheusRule: spec.groups written out as a rule file, `promtool check rules`;
  PodMonitor:     selector and endpoints present, each endpoint's relabelings
                  and metricRelabelings turned into a scrape config,
                  `promtool check config`.
  cert-manager Issuer and Certificate (deploy/webhook): kubernetes-validate
                  has no schema for cert-manager.io/v1 and none is vendored
                  here, so they are checked against the subset of the v1 API
                  that deploy/ uses: required fields present, every field
                  known (strict, like --strict), and the types of the values.
Any other custom kind fails: nothing in deploy/ should need one.
Needs PyYAML (a dependency of kubernetes-validate).
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

OPERATOR_GROUP = "monitoring.coreos.com/"
# Built-in API groups kubernetes-validate knows.
BUILTIN = re.compile(
    r"^(v1|(apps|batch|policy|autoscaling|networking\.k8s\.io|rbac\.authorization\.k8s\.io|"
    r"storage\.k8s\.io|scheduling\.k8s\.io|coordination\.k8s\.io|discovery\.k8s\.io|"
    r"admissionregistration\.k8s\.io|apiextensions\.k8s\.io|node\.k8s\.io)/\w+)$"
)


def fail(msg):
    print(f"FAIL: {msg}")
    return 1


def snake(key):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def relabel_to_prometheus(rules):
    return [{snake(k): v for k, v in r.items()} for r in rules or []]


def check_prometheus_rule(obj, tmp):
    groups = (obj.get("spec") or {}).get("groups")
    if not isinstance(groups, list) or not groups:
        return fail(f"PrometheusRule {obj['metadata'].get('name')}: spec.groups is empty")
    path = Path(tmp) / "prometheusrule-groups.yml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    r = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    print(r.stdout.strip())
    return 0 if r.returncode == 0 else fail(r.stderr.strip() or "promtool check rules failed")


def check_pod_monitor(obj, tmp):
    name = obj["metadata"].get("name")
    spec = obj.get("spec") or {}
    if "selector" not in spec:
        return fail(f"PodMonitor {name}: spec.selector is required")
    endpoints = spec.get("podMetricsEndpoints")
    if not isinstance(endpoints, list) or not endpoints:
        return fail(f"PodMonitor {name}: spec.podMetricsEndpoints is empty")
    bad = 0
    for i, ep in enumerate(endpoints):
        if not ep.get("port"):
            bad += fail(f"PodMonitor {name}: endpoint {i} has no port name")
            continue
        config = {
            "scrape_configs": [
                {
                    "job_name": f"{name}-{i}",
                    "metrics_path": ep.get("path", "/metrics"),
                    "honor_labels": bool(ep.get("honorLabels", False)),
                    "static_configs": [{"targets": ["127.0.0.1:9809"]}],
                    "relabel_configs": relabel_to_prometheus(ep.get("relabelings")),
                    "metric_relabel_configs": relabel_to_prometheus(ep.get("metricRelabelings")),
                }
            ]
        }
        path = Path(tmp) / f"podmonitor-{i}.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        r = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            bad += fail(f"PodMonitor {name} endpoint {i}: {r.stdout.strip()} {r.stderr.strip()}")
        else:
            print(f"PodMonitor {name} endpoint {i} (port {ep['port']}): relabelings valid")
    return 1 if bad else 0


CERT_MANAGER_GROUP = "cert-manager.io/v1"
# The fields of cert-manager.io/v1 that deploy/ uses, from cert-manager's API
# reference (Issuer: selfSigned or ca; Certificate: the fields below). A type,
# or a dict of field -> (required, schema). Unknown fields are errors.
ISSUER_REF = {"name": (True, str), "kind": (False, str), "group": (False, str)}
CERT_MANAGER_SPECS = {
    "Issuer": {
        "selfSigned": (False, {"crlDistributionPoints": (False, list)}),
        "ca": (False, {"secretName": (True, str)}),
    },
    "Certificate": {
        "secretName": (True, str),
        "issuerRef": (True, ISSUER_REF),
        "commonName": (False, str),
        "dnsNames": (False, list),
        "ipAddresses": (False, list),
        "isCA": (False, bool),
        "duration": (False, str),
        "renewBefore": (False, str),
        "usages": (False, list),
        "privateKey": (False, {
            "algorithm": (False, str),
            "size": (False, int),
            "encoding": (False, str),
            "rotationPolicy": (False, str),
        }),
    },
}
CERT_MANAGER_ENUMS = {
    ("Certificate", "privateKey", "algorithm"): {"RSA", "ECDSA", "Ed25519"},
    ("Certificate", "privateKey", "rotationPolicy"): {"Never", "Always"},
}


def check_fields(where, value, schema, path, errors):
    if isinstance(schema, type):
        if not isinstance(value, schema) or (schema is int and isinstance(value, bool)):
            errors.append(f"{where}.{'.'.join(path)}: expected {schema.__name__}, got {value!r}")
        return
    if not isinstance(value, dict):
        errors.append(f"{where}.{'.'.join(path)}: expected an object")
        return
    for key in value:
        if key not in schema:
            errors.append(f"{where}.{'.'.join(path + [key])}: unknown field")
    for key, (required, sub) in schema.items():
        if key in value:
            check_fields(where, value[key], sub, path + [key], errors)
        elif required:
            errors.append(f"{where}.{'.'.join(path + [key])}: required")


def check_cert_manager(obj):
    kind, name = obj["kind"], obj["metadata"].get("name")
    errors = []
    where = f"{kind} {name}: spec"
    check_fields(where, obj.get("spec"), CERT_MANAGER_SPECS[kind], [], errors)
    spec = obj.get("spec") or {}
    if kind == "Issuer" and len([k for k in ("selfSigned", "ca") if k in spec]) != 1:
        errors.append(f"{where}: exactly one of selfSigned and ca")
    for (k, *path), allowed in CERT_MANAGER_ENUMS.items():
        value = spec
        for p in path:
            value = (value or {}).get(p)
        if k == kind and value is not None and value not in allowed:
            errors.append(f"{where}.{'.'.join(path)}: {value!r} not in {sorted(allowed)}")
    if kind == "Certificate" and not (spec.get("dnsNames") or spec.get("commonName")):
        errors.append(f"{where}: needs dnsNames or commonName")
    for e in errors:
        fail(e)
    if not errors:
        print(f"{kind} {name}: fields known and typed (cert-manager.io/v1 subset)")
    return 1 if errors else 0


def main(built, version):
    docs = [d for d in yaml.safe_load_all(Path(built).read_text()) if d]
    if not docs:
        return fail(f"{built}: no objects")
    builtin, status = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for obj in docs:
            api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
            if BUILTIN.match(api):
                builtin.append(obj)
            elif api.startswith(OPERATOR_GROUP) and kind == "PrometheusRule":
                status |= check_prometheus_rule(obj, tmp)
            elif api.startswith(OPERATOR_GROUP) and kind == "PodMonitor":
                status |= check_pod_monitor(obj, tmp)
            elif api == CERT_MANAGER_GROUP and kind in CERT_MANAGER_SPECS:
                status |= check_cert_manager(obj)
            else:
                status |= fail(f"{api} {kind}: no validator for this kind")
        if builtin:
            path = Path(tmp) / "builtin.yaml"
            path.write_text(yaml.safe_dump_all(builtin, sort_keys=False))
            r = subprocess.run(
                ["kubernetes-validate", "--strict", "-k", version, str(path)],
                capture_output=True,
                text=True,
            )
            out = (r.stdout + r.stderr).strip().replace(str(path), Path(built).name)
            print(out)
            if r.returncode != 0:
                status |= fail("kubernetes-validate --strict")
    print(f"{built}: {len(builtin)} built-in objects, {len(docs) - len(builtin)} operator objects")
    return status


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
