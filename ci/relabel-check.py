#!/usr/bin/env python3
"""The target relabelling of deploy/monitoring, run by a real Prometheus.

Kubernetes service discovery is replaced by file_sd targets that carry the
same __meta_kubernetes_* labels the pod role would give (Debian's Prometheus
has no Kubernetes discovery; file_sd passes __meta_ labels through to
relabelling), and the labels Prometheus attaches to each target are
compared with what the workload should be: Deployment pods their
Deployment, CronJob pods their CronJob (not each Job), plain Jobs their Job,
StatefulSets their set, bare pods their name. The PodMonitor's relabelings,
converted to Prometheus's form, must equal the scrape config's.

  ci/relabel-check.py            (prometheus and promtool on PATH)
"""
import json
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRAPE = ROOT / "deploy/monitoring/prometheus-scrape.yml"
PODMONITOR = ROOT / "deploy/monitoring/podmonitor.yaml"

# (pod name, controller kind, controller name, expected workload)
PODS = [
    ("web-7d9c4f8b6-x2x7q", "ReplicaSet", "web-7d9c4f8b6", "web"),
    ("backup-29345678-abcde", "Job", "backup-29345678", "backup"),
    ("nightly-report-29400000-k8s2q", "Job", "nightly-report-29400000", "nightly-report"),
    ("migrate-v2-zt5kq", "Job", "migrate-v2", "migrate-v2"),
    ("db-0", "StatefulSet", "db", "db"),
    ("agent-4kq9z", "DaemonSet", "agent", "agent"),
    ("debug", "", "", "debug"),
]


def snake(key):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    bad = 0
    scrape = yaml.safe_load(SCRAPE.read_text())
    job = scrape["scrape_configs"][0]
    monitor = yaml.safe_load(PODMONITOR.read_text())
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    # The operator adds namespace, pod and container itself; the workload
    # rules, in order, must be the scrape config's.
    def workload_rules(rules):
        return [r for r in rules if r.get("target_label") == "workload"]

    ours = workload_rules([{snake(k): v for k, v in r.items()} for r in endpoint.get("relabelings", [])])
    theirs = workload_rules(job["relabel_configs"])
    if theirs != ours or not ours:
        print("podmonitor.yaml's workload relabelings differ from prometheus-scrape.yml's:")
        print(" podmonitor:", ours)
        print(" scrape:    ", theirs)
        bad += 1

    work = pathlib.Path(tempfile.mkdtemp())
    prom = None
    try:
        targets = []
        for i, (pod, kind, owner, _) in enumerate(PODS):
            labels = {
                "__meta_kubernetes_namespace": "shop",
                "__meta_kubernetes_pod_name": pod,
                "__meta_kubernetes_pod_container_name": "podpath",
                "__meta_kubernetes_pod_container_port_name": "podpath-metrics",
                "__meta_kubernetes_pod_phase": "Running",
                "__meta_kubernetes_pod_node_name": "node-1",
            }
            if kind:
                labels["__meta_kubernetes_pod_controller_kind"] = kind
                labels["__meta_kubernetes_pod_controller_name"] = owner
            targets.append({"targets": [f"127.0.0.1:{40000 + i}"], "labels": labels})
        (work / "targets.json").write_text(json.dumps(targets))
        del job["kubernetes_sd_configs"]
        job["file_sd_configs"] = [{"files": [str(work / "targets.json")]}]
        job["scrape_interval"] = "1h"
        scrape["rule_files"] = []
        (work / "prometheus.yml").write_text(yaml.safe_dump(scrape, sort_keys=False))
        port = free_port()
        prom = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(work / "prometheus.log", "w"),
        )
        active = []
        deadline = time.time() + 30
        while time.time() < deadline and len(active) < len(PODS):
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets?state=active", timeout=2) as r:
                    active = json.load(r)["data"]["activeTargets"]
            except OSError:
                continue
        got = {t["labels"].get("pod"): t["labels"].get("workload") for t in active}
        for pod, kind, owner, want in PODS:
            have = got.get(pod)
            ok = have == want
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {kind or 'bare pod':11} {owner or pod:26} -> workload {have!r}"
                  + ("" if ok else f", expected {want!r}"))
        if not active:
            print((work / "prometheus.log").read_text()[-2000:])
    finally:
        if prom:
            prom.terminate()
            prom.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
