#!/usr/bin/env python3
"""The checks of ci/webhook-e2e.sh against a running `podpath webhook`.

Prints one "ok"/"FAIL" line per check and exits non-zero on any failure.
Needs PyYAML, jsonpatch and kubernetes-validate (the ci/packaging.sh venv).
"""

import argparse
import base64
import copy
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jsonpatch
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "tests/webhook/workloads.yaml"
failures = []


def check(name, ok, detail=""):
    print(f"{'ok   ' if ok else 'FAIL '} {name}" + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(name)


def pod_of(obj):
    """The pod a workload's controller creates (as src/webhook/tests.rs)."""
    if obj["kind"] == "Pod":
        return copy.deepcopy(obj)
    name = obj["metadata"]["name"]
    template = obj["spec"]["template"]
    meta = copy.deepcopy(template.get("metadata") or {})
    meta["namespace"] = obj["metadata"].get("namespace")
    if obj["kind"] == "StatefulSet":
        meta["name"] = f"{name}-0"
    elif obj["kind"] == "Deployment":
        meta["generateName"] = f"{name}-{meta.get('labels', {}).get('pod-template-hash', '7c5b9d')}-"
    else:
        meta["generateName"] = f"{name}-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template["spec"])}


def review(pod, uid):
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": pod["metadata"].get("namespace"),
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": False,
        },
    }


class Client:
    def __init__(self, args):
        self.args = args
        self.ctx = ssl.create_default_context(cafile=str(Path(args.work) / "ca.crt"))

    def curl(self, body_file, extra=()):
        """POSTs a file with curl, checking the certificate against the CA
        under the Service's DNS name; returns (status, body)."""
        url = f"https://{self.args.service}:{self.args.port}/inject"
        r = subprocess.run(
            ["curl", "-sS", "--cacert", str(Path(self.args.work) / "ca.crt"),
             "--resolve", f"{self.args.service}:{self.args.port}:127.0.0.1",
             "-H", "Content-Type: application/json", "--data-binary", f"@{body_file}",
             "-o", "-", "-w", "\n%{http_code}", *extra, url],
            capture_output=True, text=True,
        )
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body

    def connection(self):
        conn = http.client.HTTPSConnection("127.0.0.1", self.args.port, context=self.ctx, timeout=10)
        conn.connect()
        return conn


def post(conn, body):
    conn.request("POST", "/inject", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def fingerprint(path):
    der = subprocess.run(["openssl", "x509", "-in", str(path), "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def served_fingerprint(client):
    conn = client.connection()
    der = conn.sock.getpeercert(binary_form=True)
    conn.close()
    return hashlib.sha256(der).hexdigest()


def metrics(args):
    conn = http.client.HTTPConnection("127.0.0.1", args.health_port, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("podpath_webhook_"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def admission_checks(args, client, work):
    docs = [d for d in yaml.safe_load_all(WORKLOADS.read_text()) if d]
    pods_out, counts = [], {}
    for i, obj in enumerate(docs):
        expect = obj["metadata"]["annotations"]["podpath.test/expect"]
        counts[expect] = counts.get(expect, 0) + 1
        pod = pod_of(obj)
        path = work / f"review-{i}.json"
        path.write_text(json.dumps(review(pod, f"uid-{i}")))
        status, body = client.curl(path)
        label = f"{obj['kind']} {obj['metadata'].get('name') or obj['metadata']['generateName']} ({expect})"
        if status != 200:
            check(label, False, f"HTTP {status}: {body}")
            continue
        resp = json.loads(body)["response"]
        ok = resp.get("uid") == f"uid-{i}" and resp.get("allowed") is True
        patch = resp.get("patch")
        if expect == "injected":
            ok = ok and resp.get("patchType") == "JSONPatch" and bool(patch)
        else:
            ok = ok and patch is None
        admitted = pod
        if patch:
            ops = json.loads(base64.b64decode(patch))
            admitted = jsonpatch.apply_patch(pod, ops)
        names = [c["name"] for c in admitted["spec"].get("initContainers") or []] + \
                [c["name"] for c in admitted["spec"]["containers"]]
        want = 0 if expect in ("host_network", "opted_out", "own_pod") else 1
        ok = ok and names.count("podpath") == want
        # The same pod as `podpath inject` writes it (opt-out and the
        # webhook's own pod are admission-time decisions).
        if expect not in ("opted_out", "own_pod"):
            r = subprocess.run([args.bin, "inject", "--image", "registry.example/podpath:0.1.0", "-"],
                               input=yaml.safe_dump(obj), capture_output=True, text=True)
            injected = yaml.safe_load(r.stdout) if r.returncode == 0 else None
            same = injected is not None and pod_of(injected)["spec"] == admitted["spec"]
            ok = ok and same
            if not same:
                print(f"      differs from podpath inject: {r.stderr.strip()}")
        check(f"admitted with curl and patched: {label}", ok, body[:300])
        # The API server names a generateName pod after mutating admission;
        # kubernetes-validate wants the name, so add one as it would.
        named = copy.deepcopy(admitted)
        if not named["metadata"].get("name"):
            named["metadata"]["name"] = named["metadata"]["generateName"] + "x7k2p"
        pods_out.append(named)
    pods_file = work / "admitted-pods.yaml"
    pods_file.write_text(yaml.safe_dump_all(pods_out, sort_keys=False))
    for v in args.k8s_versions.split():
        r = subprocess.run([sys.executable, str(ROOT / "ci/validate-manifests.py"), str(pods_file), v],
                           capture_output=True, text=True)
        check(f"{len(pods_out)} admitted pods validate (kubernetes-validate --strict, {v})",
              r.returncode == 0, r.stdout + r.stderr)
    return counts


def bad_request_checks(args, client, work):
    cases = [
        ("not JSON", b"{not json", 400),
        ("JSON but not an AdmissionReview", b'{"kind":"Pod"}', 400),
        ("v1beta1 review", json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                                       "request": {"uid": "x"}}).encode(), 400),
        ("no request uid", b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}', 400),
        ("2 MiB body", b"{" + b" " * (2 * 1024 * 1024) + b"}", 413),
    ]
    for name, body, want in cases:
        path = work / "bad.json"
        path.write_bytes(body)
        status, text = client.curl(path)
        check(f"bad request answered {want}: {name}", status == want, f"HTTP {status}: {text[:200]}")
    conn = client.connection()
    conn.request("GET", "/inject")
    resp = conn.getresponse()
    resp.read()
    check("GET /inject is 405", resp.status == 405, str(resp.status))
    # A client that is not TLS at all, and one that sends half a body and
    # hangs up: the server lives on (the health check and the load below).
    with socket.create_connection(("127.0.0.1", args.port), timeout=5) as raw:
        raw.sendall(b"GET /inject HTTP/1.1\r\nHost: x\r\n\r\n")
    conn = client.connection()
    conn.putrequest("POST", "/inject")
    conn.putheader("Content-Length", "1000")
    conn.endheaders(b'{"apiVersion":')
    conn.close()
    # A chunked body (no length declared) past the limit: the server stops
    # reading at 1 MiB and answers 413; the client may see the 413 or, still
    # uploading, a reset. Either way it is refused and counted.
    conn = client.connection()
    status = None
    try:
        conn.request("POST", "/inject", body=iter([b" " * 65536] * 32), encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        status = conn.getresponse().status
    except OSError:
        pass
    conn.close()
    check("chunked 2 MiB body refused (413 or reset)", status in (413, None), str(status))
    # Those two count as bad requests too, once the server sees them.
    want = len(cases) + 2
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and \
            metrics(args).get('podpath_webhook_reviews_total{outcome="bad_request"}', 0) < want:
        time.sleep(0.1)
    health = http.client.HTTPConnection("127.0.0.1", args.health_port, timeout=5)
    health.request("GET", "/healthz")
    check("healthz still 200 after the bad requests", health.getresponse().status == 200)
    return len(cases) + 2


class Load:
    """Reviews posted from several threads until stopped: half keep one
    connection open throughout (it must survive every rotation), half open a
    new connection (a new TLS handshake) for every request."""

    def __init__(self, client, body, threads=4):
        self.client, self.body = client, body
        self.stop = threading.Event()
        self.ok = 0
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i % 2 == 0,)) for i in range(threads)]

    def run(self, keep_alive):
        conn = self.client.connection() if keep_alive else None
        sock = conn.sock if conn else None
        while not self.stop.is_set():
            try:
                c = conn or self.client.connection()
                status, body = post(c, self.body)
                if status != 200 or b'"allowed":true' not in body:
                    raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
                if conn is None:
                    c.close()
                elif conn.sock is not sock:
                    raise RuntimeError("the keep-alive connection was reopened")
                with self.lock:
                    self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                with self.lock:
                    self.errors.append(f"{'keep-alive' if keep_alive else 'new'}: {e!r}")
                if keep_alive:
                    return
        if conn:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def wait_for(client, want, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if served_fingerprint(client) == want:
            return True
        time.sleep(0.1)
    return False


def rotation_checks(args, client, work):
    certs = Path(args.certs)
    fp = {n: fingerprint(work / f"leaf{n}.crt") for n in (1, 2, 3)}
    check("serving leaf 1 at start", served_fingerprint(client) == fp[1])
    body = json.dumps(review(pod_of(next(yaml.safe_load_all(WORKLOADS.read_text()))), "load")).encode()
    with Load(client, body) as load:
        time.sleep(1)
        # The kubelet's update of a Secret volume: new files in a new
        # directory, then `..data` swapped with one rename.
        (certs / "..v2").mkdir()
        for name in ("crt", "key"):
            shutil.copy(work / f"leaf2.{name}", certs / f"..v2/tls.{name}")
            # The server may run as another user (ci/webhook-e2e.sh).
            os.chmod(certs / f"..v2/tls.{name}", 0o644)
        os.symlink("..v2", certs / "..data_tmp")
        os.replace(certs / "..data_tmp", certs / "..data")
        swapped = wait_for(client, fp[2])
        time.sleep(1)
        # An in-place rewrite, certificate first and the key a moment later:
        # between the two the files do not match, and the server must keep
        # serving leaf 2 until the key arrives.
        (certs / "..v2/tls.crt").write_bytes((work / "leaf3.crt").read_bytes())
        time.sleep(0.8)
        held = served_fingerprint(client) == fp[2]
        (certs / "..v2/tls.key").write_bytes((work / "leaf3.key").read_bytes())
        rewritten = wait_for(client, fp[3])
        time.sleep(1)
    check("..data symlink swap: new connections get leaf 2", swapped)
    check("half-rewritten pair refused: leaf 2 still served", held)
    check("in-place rewrite: new connections get leaf 3", rewritten)
    check(f"no failed request under load during both rotations ({load.ok} answered)",
          not load.errors and load.ok > 50, "; ".join(load.errors[:5]))
    m = metrics(args)
    check("tls reload metrics: 2 ok, at least 1 refused",
          m.get('podpath_webhook_tls_reloads_total{result="ok"}') == 2
          and m.get('podpath_webhook_tls_reloads_total{result="error"}', 0) >= 1, json.dumps(m))
    return load.ok


def main():
    p = argparse.ArgumentParser()
    for flag in ("--bin", "--work", "--certs", "--service", "--log", "--k8s-versions"):
        p.add_argument(flag, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--health-port", type=int, required=True)
    args = p.parse_args()
    work = Path(args.work)
    client = Client(args)
    with tempfile.TemporaryDirectory() as tmp:
        counts = admission_checks(args, client, Path(tmp))
        bad = bad_request_checks(args, client, Path(tmp))
    m = metrics(args)
    for outcome, n in counts.items():
        key = f'podpath_webhook_reviews_total{{outcome="{outcome}"}}'
        check(f"metric {key} = {n}", m.get(key) == n, str(m.get(key)))
    key = 'podpath_webhook_reviews_total{outcome="bad_request"}'
    check(f"metric {key} = {bad}", m.get(key) == bad, str(m.get(key)))
    rotation_checks(args, client, work)
    log = Path(args.log).read_text()
    check("log has one line per skipped pod with its reason",
          log.count('"outcome":"host_network"') == counts.get("host_network")
          and log.count('"outcome":"opted_out"') == counts.get("opted_out"), log[-500:])
    print(f"webhook e2e: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
