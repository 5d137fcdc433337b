#!/usr/bin/env python3
"""Consistency of the webhook's kustomize output (deploy/webhook and
deploy/webhook/manual), beyond what schema validation sees.

    ci/webhook-manifests.py CERT_MANAGER.yaml MANUAL.yaml CA.crt

Checks that the names line up across objects (Service -> pods -> ports,
webhook configuration -> Service, Secret volume -> Certificate or generated
Secret, cert-manager annotation -> Certificate, DNS names -> Service), the
admission settings the issue asks for, and that the manual overlay's caBundle
is the CA given.
"""

import base64
import sys
from pathlib import Path

import yaml

errors = []


def expect(cond, msg):
    if not cond:
        errors.append(msg)


def by_kind(path):
    objs = {}
    for d in yaml.safe_load_all(Path(path).read_text()):
        if d:
            objs.setdefault(d["kind"], []).append(d)
    return objs


def common(objs, label):
    dep = objs["Deployment"][0]
    svc = objs["Service"][0]
    mwc = objs["MutatingWebhookConfiguration"][0]
    pdb = objs["PodDisruptionBudget"][0]
    ns = dep["metadata"]["namespace"]
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    c = spec["containers"][0]
    labels = pod["metadata"]["labels"]
    expect(dep["spec"]["replicas"] == 2, f"{label}: 2 replicas")
    expect(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), f"{label}: Service selects the pods")
    expect(all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()), f"{label}: PDB selects the pods")
    expect(labels.get("podpath.io/inject") == "disabled" and labels.get("app.kubernetes.io/name") == "podpath-webhook",
           f"{label}: the webhook's pods opt out and carry the name the webhook checks")
    anti = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    expect(anti["topologyKey"] == "kubernetes.io/hostname", f"{label}: anti-affinity per node")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    expect(svc["spec"]["ports"][0]["targetPort"] in ports, f"{label}: Service targets a named container port")
    sc = c["securityContext"]
    expect(sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
           and sc["runAsNonRoot"], f"{label}: no capabilities, read-only, no privilege escalation, non-root")
    expect(not spec.get("automountServiceAccountToken", True), f"{label}: no API token mounted")
    expect(c["args"] == ["webhook"], f"{label}: runs `podpath webhook`")
    env = {e["name"]: e.get("value") for e in c["env"]}
    mount = c["volumeMounts"][0]["mountPath"]
    expect(env["PODPATH_TLS_CERT_FILE"] == f"{mount}/tls.crt" and env["PODPATH_TLS_PRIVATE_KEY_FILE"] == f"{mount}/tls.key",
           f"{label}: certificate files are in the Secret volume")
    probes = [c["readinessProbe"]["httpGet"]["port"], c["livenessProbe"]["httpGet"]["port"]]
    expect(all(p in ports and p != svc["spec"]["ports"][0]["targetPort"] for p in probes),
           f"{label}: probes on the plain-HTTP health port, not the TLS one")
    expect(len(mwc["webhooks"]) == 1, f"{label}: one webhook")
    w = mwc["webhooks"][0]
    ref = w["clientConfig"]["service"]
    expect(ref["name"] == svc["metadata"]["name"] and ref["namespace"] == ns and ref["path"] == "/inject"
           and ref["port"] == svc["spec"]["ports"][0]["port"], f"{label}: clientConfig points at the Service and /inject")
    expect(w["failurePolicy"] == "Ignore" and w["sideEffects"] == "None" and w["timeoutSeconds"] <= 5
           and w["reinvocationPolicy"] == "IfNeeded" and w["admissionReviewVersions"] == ["v1"],
           f"{label}: fail-open, no side effects, short timeout, reinvoked if needed, v1 reviews")
    expect(w["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                           "scope": "Namespaced"}], f"{label}: Pod CREATE only")
    nsel = {e["key"]: e for e in w["namespaceSelector"]["matchExpressions"]}
    expect(nsel["podpath.io/inject"]["operator"] == "In" and nsel["podpath.io/inject"]["values"] == ["enabled"],
           f"{label}: namespaces opt in with podpath.io/inject=enabled")
    excluded = nsel["kubernetes.io/metadata.name"]
    expect(excluded["operator"] == "NotIn" and {"kube-system", ns} <= set(excluded["values"]),
           f"{label}: kube-system and {ns} excluded")
    pss = nsel.get("pod-security.kubernetes.io/enforce", {})
    expect(pss.get("operator") == "NotIn" and set(pss.get("values", [])) == {"baseline", "restricted"},
           f"{label}: namespaces enforcing baseline or restricted are not injected (PodSecurity would reject the pod)")
    osel = w["objectSelector"]["matchExpressions"]
    expect(osel == [{"key": "podpath.io/inject", "operator": "NotIn", "values": ["disabled"]}],
           f"{label}: pods opt out with podpath.io/inject=disabled")
    secret = spec["volumes"][0]["secret"]["secretName"]
    return ns, svc["metadata"]["name"], secret, w


def main(cm_path, manual_path, ca_path):
    cm = by_kind(cm_path)
    ns, svc, secret, w = common(cm, "cert-manager")
    certs = {c["metadata"]["name"]: c for c in cm["Certificate"]}
    issuers = {i["metadata"]["name"]: i for i in cm["Issuer"]}
    annotation = cm["MutatingWebhookConfiguration"][0]["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    cert_ns, _, cert_name = annotation.partition("/")
    serving = certs.get(cert_name)
    expect(serving is not None and cert_ns == ns, f"inject-ca-from {annotation} names a Certificate in {ns}")
    if serving:
        expect(serving["spec"]["secretName"] == secret, "the serving Certificate writes the Secret the pods mount")
        expect(f"{svc}.{ns}.svc" in serving["spec"]["dnsNames"], f"the certificate covers {svc}.{ns}.svc")
        issuer = issuers.get(serving["spec"]["issuerRef"]["name"], {})
        ca = certs.get((issuer.get("spec", {}).get("ca") or {}).get("secretName", ""), {})
        # Renewing the serving certificate must not change caBundle.
        expect(bool(ca) and ca["spec"].get("isCA") is True, "the serving certificate is signed by a CA Certificate")
        for c in certs.values():
            expect(c["spec"]["issuerRef"]["name"] in issuers, f"{c['metadata']['name']}: its Issuer exists")
    expect("caBundle" not in w["clientConfig"], "cert-manager fills caBundle; none is written")

    manual = by_kind(manual_path)
    _, _, secret, w = common(manual, "manual")
    generated = {s["metadata"]["name"]: s for s in manual.get("Secret", [])}
    expect(secret in generated and generated[secret]["type"] == "kubernetes.io/tls",
           "manual: the pods mount the generated TLS Secret")
    bundle = base64.b64decode(w["clientConfig"].get("caBundle", ""))
    expect(bundle == Path(ca_path).read_bytes(), "manual: caBundle is the CA certificate")
    expect("cert-manager.io/inject-ca-from" not in (manual["MutatingWebhookConfiguration"][0]["metadata"].get("annotations") or {}),
           "manual: no cert-manager annotation")
    for e in errors:
        print(f"FAIL: {e}")
    print(f"webhook manifests: {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
