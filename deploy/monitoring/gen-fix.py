#!/usr/bin/env python3
"""Writes the `fix` annotation of each finding kind's alert in
podpath-rules.yml from src/report/advice.txt, the one source of the advice
wording (`podpath analyze` reads the same file). Placeholders become the
alert's labels.
    deploy/monitoring/gen-fix.py          rewrite podpath-rules.yml
    deploy/monitoring/gen-fix.py --check  fail if it is out of date
Run deploy/monitoring/gen-prometheusrule.sh afterwards. Standard library only.
"""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ADVICE = HERE.parent.parent / "src" / "report" / "advice.txt"
RULES = HERE / "podpath-rules.yml"

# The Service's DNS name from the caller's namespace (`namespace` is the
# scraped pod's, `dst_namespace` the destination's).
DIAL = (
    "{{ if $labels.service }}{{ if eq $labels.namespace $labels.dst_namespace }}"
    "{{ $labels.service }}{{ else }}{{ $labels.service }}.{{ $labels.dst_namespace }}{{ end }}"
    "{{ else }}<service>{{ end }}"
)
PLACEHOLDERS = {"{dial}": DIAL, "{dns_name}": "{{ $labels.dns_name }}"}

# kind -> the alert that carries its advice.
ALERTS = {
    "literal_pod_ip": "PodpathLiteralPodIPUse",
    "literal_cluster_ip": "PodpathLiteralClusterIPUse",
    "search_walk_waste": "PodpathDNSSearchExpansionWaste",
    "failing_lookup": "PodpathDNSLookupsFailing",
    "stale_answer": "PodpathStaleDNS",
    "connect_failures": "PodpathTCPConnectFailures",
    "rewritten_destination": "PodpathDestinationRewritten",
}


def templates():
    out = {}
    for line in ADVICE.read_text().splitlines():
        if line.startswith("#") or ": " not in line:
            continue
        head, text = line.split(": ", 1)
        out[head.split(" ")[0]] = text
    return out


def render(text):
    for key, value in PLACEHOLDERS.items():
        text = text.replace(key, value)
    if "{" in text.replace("{{", "").replace("}}", ""):
        sys.exit(f"gen-fix: unknown placeholder in: {text}")
    return text


def generate(rules):
    advice = templates()
    missing = set(ALERTS) - set(advice)
    if missing:
        sys.exit(f"gen-fix: no advice for {sorted(missing)} in {ADVICE}")
    fix_of = {ALERTS[k]: render(t) for k, t in advice.items() if k in ALERTS}
    out, alert, found = [], None, set()
    lines = rules.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("  - alert: "):
            alert = line.split(": ", 1)[1].strip()
        # An old `fix` annotation: dropped, written again below.
        if alert in fix_of and line == "      fix: >-":
            i += 2
            continue
        if alert in fix_of and line.startswith("      runbook_url: "):
            out.append("      # Generated from src/report/advice.txt by gen-fix.py.")
            out.append("      fix: >-")
            out.append("        " + fix_of[alert])
            found.add(alert)
        if alert in fix_of and line == "      # Generated from src/report/advice.txt by gen-fix.py.":
            i += 1
            continue
        out.append(line)
        i += 1
    if set(fix_of) - found:
        sys.exit(f"gen-fix: no runbook_url line in alerts {sorted(set(fix_of) - found)}")
    return "\n".join(out) + "\n"


def main():
    current = RULES.read_text()
    new = generate(current)
    if sys.argv[1:] == ["--check"]:
        if new != current:
            sys.exit("podpath-rules.yml's fix annotations are out of date: run deploy/monitoring/gen-fix.py")
        return
    RULES.write_text(new)


if __name__ == "__main__":
    main()
