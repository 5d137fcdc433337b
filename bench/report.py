#!/usr/bin/env python3
"""The results of one bench/run.sh run, as Markdown.

    report.py RESULTS.TSV TITLE          > bench/results/<date>.md
    report.py --splice BENCHMARKS.md MD  (replace the results section with MD)
    report.py --self-test

RESULTS.TSV has one row per measured value, `profile<TAB>key<TAB>value`
(profile `-` for values that belong to no profile), as bench/lib.sh's `put`
writes them; keys ending in `hyperfine` or named `criterion` hold file paths,
keys ending in `.stages` hold bench/perf_stages.py's JSON.

A goal is met when it holds on every profile of the run; each cell that
misses is in bold, and a list under the table says by how much and which
stages dominate that profile's perf profile.
"""

import json
import sys

OFFLINE_RATIO_GOAL = 1.5  # analyze wall time / tcpdump -r -w /dev/null
TSHARK_GOAL = 20.0  # tshark wall time / analyze wall time
LIVE_CPU_GOAL = 1.0  # podpath CPU / tcpdump CPU, same traffic, same time
RSS_STEADY_KIB = 32 * 1024
RSS_FLOOD_KIB = 64 * 1024

def load(path):
    results, profiles = {}, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            profile, key, value = (line.split("\t", 2) + ["", ""])[:3]
            if profile != "-" and profile not in profiles:
                profiles.append(profile)
            results.setdefault(profile, {})[key] = value
    return results, profiles


def num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def grouped(n):
    return f"{int(n):,}".replace(",", " ")


def mib(kib):
    return f"{float(kib) / 1024:.1f} MiB"


def bold(text, ok):
    return text if ok else f"**{text}**"


def hyperfine(r):
    """{command: result} of the profile's hyperfine JSON, or {}."""
    try:
        with open(r["offline.hyperfine"]) as f:
            return {x["command"]: x for x in json.load(f)["results"]}
    except (KeyError, OSError, ValueError):
        return {}


def stages(r, key):
    try:
        return json.loads(r[key + ".stages"])
    except (KeyError, ValueError):
        return None


def stage_packets(r, key):
    """Packets the perf recording KEY covered."""
    if key == "analyze_perf":
        return (num(r.get("offline.packets")) or 0) * (num(r.get("analyze_perf.runs")) or 0)
    return num(r.get(key + ".packets")) or 0


def top_stages(r, key, n=3):
    s = stages(r, key)
    if not s or not s["total_ns"]:
        return "no profile"
    ranked = sorted(s["stages_ns"].items(), key=lambda kv: -kv[1])[:n]
    pk = stage_packets(r, key)
    parts = []
    for name, ns in ranked:
        per = f" ({ns / pk:.0f} ns/packet)" if pk else ""
        parts.append(f"{name} {100 * ns / s['total_ns']:.0f} %{per}")
    return ", ".join(parts)


class Goals:
    """Rows of the goal table: per-profile cells and whether each is met."""

    def __init__(self, profiles):
        self.profiles = profiles
        self.rows = []  # (goal, {profile: (text, ok)}, all-cell or None)
        self.missed = []  # lines for the list under the table

    def row(self, goal, cells, why=None):
        """why(profile) says, for a missed cell, by how much and what dominates."""
        self.rows.append((goal, cells, None))
        misses = [p for p in self.profiles if cells.get(p, ("", None))[1] is False]
        if misses:
            self.missed.append(f"- {goal}:")
            for p in misses:
                note = f"; {why(p)}" if why else ""
                self.missed.append(f"  - **{p}**: {cells[p][0]}{note}")

    def single(self, goal, text, ok):
        self.rows.append((goal, {}, (text, ok)))
    def markdown(self):
        out = ["| goal | " + " | ".join(self.profiles) + " | met (on every profile) |",
               "| --- |" + " --- |" * (len(self.profiles) + 1)]
        for goal, cells, single in self.rows:
            if single:
                text, ok = single
                verdict = ("yes" if ok else "**no**") + f" ({text})"
                out.append(f"| {goal} | " + " | ".join("–" for _ in self.profiles) + f" | {verdict} |")
                continue
            shown, oks = [], []
            for p in self.profiles:
                text, ok = cells.get(p, ("not measured", None))
                shown.append(bold(text, ok is not False))
                oks.append(ok)
            if any(ok is None for ok in oks):
                verdict = "not measured on every profile"
            elif all(oks):
                verdict = "yes"
            else:
                verdict = "**no** (" + ", ".join(p for p, ok in zip(self.profiles, oks) if not ok) + ")"
            out.append(f"| {goal} | " + " | ".join(shown) + f" | {verdict} |")
        return "\n".join(out)


def live_modes(results, profiles):
    modes = []
    for p in profiles:
        for key in results[p]:
            if key.startswith("live.") and key.endswith(".cpu"):
                mode = key[len("live."):-len(".cpu")]
                if mode not in modes:
                    modes.append(mode)
    return modes


def goal_table(results, profiles, modes):
    g = Goals(profiles)
    off, tsh, ratio, speedup = {}, {}, {}, {}
    for p in profiles:
        h = hyperfine(results[p])
        try:
            a, t, s = (h[k]["median"] for k in ("podpath analyze", "tcpdump -r -w /dev/null", "tshark -z dns,tree"))
        except KeyError:
            continue
        ratio[p], speedup[p] = a / t, s / a
        off[p] = (f"{a / t:.2f}× ({a:.3f} / {t:.3f} s)", a / t <= OFFLINE_RATIO_GOAL)
        tsh[p] = (f"{s / a:.1f}× ({s:.2f} s)", s / a >= TSHARK_GOAL)
    g.row(f"`analyze` ≤ {OFFLINE_RATIO_GOAL}× `tcpdump -r X -w /dev/null` (median wall times)", off,
          lambda p: f"{ratio[p] / OFFLINE_RATIO_GOAL:.2f}× over the goal; analyze: "
                    f"{top_stages(results[p], 'analyze_perf')}")
    g.row(f"`analyze` ≥ {TSHARK_GOAL:.0f}× faster than `tshark -n -r X -q -z dns,tree`", tsh,
          lambda p: f"{TSHARK_GOAL / speedup[p]:.2f}× short of the goal; analyze: "
                    f"{top_stages(results[p], 'analyze_perf')}")
    for mode in modes:
        cpu, drops, conns, rss, cpu_ratio = {}, {}, {}, {}, {}
        for p in profiles:
            r = results[p]
            k = f"live.{mode}."
            pc, tc = num(r.get(k + "cpu")), num(r.get(k + "tcpdump_cpu"))
            if pc is not None and tc:
                cpu_ratio[p] = pc / tc
                cpu[p] = (f"{pc / tc:.2f}× ({pc:.3f} / {tc:.3f} s)", pc / tc <= LIVE_CPU_GOAL)
            if r.get(k + "drops", "") != "":
                d = int(num(r[k + "drops"]) or 0)
                drops[p] = (f"{d} (tcpdump {r.get(k + 'tcpdump_drops') or '?'})", d == 0)
            if r.get(k + "conns", "") != "" and r.get(k + "tcpdump_conns", "") != "":
                c, tcn = r[k + "conns"], r[k + "tcpdump_conns"]
                conns[p] = (f"{grouped(c)} = {grouped(tcn)}" if c == tcn else f"{grouped(c)} ≠ {grouped(tcn)}",
                            c == tcn)
            if num(r.get(k + "hwm_kib")) is not None:
                rss[p] = (mib(r[k + "hwm_kib"]), num(r[k + "hwm_kib"]) <= RSS_STEADY_KIB)
        g.row(f"live CPU ≤ tcpdump's, same traffic at the same time ({mode}; podpath / tcpdump)", cpu,
              lambda p, c=cpu_ratio: f"{c[p] / LIVE_CPU_GOAL:.2f}× over the goal; `podpath run`: "
                                     f"{top_stages(results[p], 'live_perf')}")
        g.row(f"0 drops ({mode})", drops)
        g.row(f"exact outbound TCP connection count ({mode}; podpath = SYNs in tcpdump's file)", conns)
        g.row(f"RSS ≤ 32 MiB at steady load ({mode}, VmHWM of `podpath run`)", rss)
    flood = results.get("-", {})
    for kind, what in (("flows", "distinct flows"), ("names", "distinct DNS names")):
        e, a = num(flood.get(f"flood.{kind}_engine_kib")), num(flood.get(f"flood.{kind}_analyze_kib"))
        if e is None:
            continue
        n = grouped(flood.get(f"flood.{kind}", 0))
        text = f"engine + metrics {mib(e)}, `analyze --format prometheus` {mib(a) if a else '?'}; a generated flood"
        g.single(f"RSS ≤ 64 MiB under {n} {what}", text, e <= RSS_FLOOD_KIB)
    return g


def detail_table(results, profiles, modes):
    rows = []

    def row(label, fn):
        cells = []
        for p in profiles:
            try:
                cells.append(fn(results[p]))
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                cells.append("–")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    for mode in modes:
        k = f"live.{mode}."
        row(f"live ({mode}): packets/s", lambda r: grouped(float(r[k + "packets"]) / float(r[k + "seconds"])))
        row(f"live ({mode}): CPU µs/packet, podpath / tcpdump",
            lambda r: f"{1e6 * float(r[k + 'cpu']) / float(r[k + 'packets']):.2f} / "
                      f"{1e6 * float(r[k + 'tcpdump_cpu']) / float(r[k + 'tcpdump_packets']):.2f}")
        row(f"live ({mode}): packets, podpath / tcpdump",
            lambda r: f"{grouped(r[k + 'packets'])} / {grouped(r[k + 'tcpdump_packets'])}")
        row(f"live ({mode}): VmHWM, podpath / tcpdump",
            lambda r: f"{mib(r[k + 'hwm_kib'])} / {mib(r[k + 'tcpdump_hwm_kib'])}")
    row("offline capture: packets, MiB, recorded in", lambda r: f"{grouped(r['offline.packets'])}, "
        f"{float(r['offline.bytes']) / 2**20:.0f} MiB, {r['offline.seconds']} s")

    def per_packet(r, cmd):
        h = hyperfine(r)[cmd]
        return f"{1e9 * h['median'] / float(r['offline.packets']):.0f}"
    row("offline: wall ns/packet, analyze / tcpdump -r / tshark",
        lambda r: " / ".join(per_packet(r, c) for c in ("podpath analyze", "tcpdump -r -w /dev/null",
                                                        "tshark -z dns,tree")))
    def cpu_per_packet(r, cmd):
        h = hyperfine(r)[cmd]
        return f"{1e9 * (h['user'] + h['system']) / float(r['offline.packets']):.0f}"
    # On a busy machine wall time includes waiting for a core; user + sys does not.
    row("offline: CPU ns/packet (user + sys, mean), analyze / tcpdump -r / tshark",
        lambda r: " / ".join(cpu_per_packet(r, c) for c in ("podpath analyze", "tcpdump -r -w /dev/null",
                                                            "tshark -z dns,tree")))
    row("offline: peak RSS, analyze / tcpdump -r / tshark",
        lambda r: " / ".join(mib(r[f"offline.{t}_rss_kib"]) for t in ("analyze", "tcpdump", "tshark")))
    head = ["| | " + " | ".join(profiles) + " |", "| --- |" + " --- |" * len(profiles)]
    return "\n".join(head + rows)


def stage_table(results, profiles, key):
    have = [p for p in profiles if (stages(results[p], key) or {}).get("samples")]
    if not have:
        return None
    head = ["| stage | " + " | ".join(have) + " |", "| --- |" + " ---: |" * len(have)]
    rows = []
    # perf_stages.py writes the stages in pipeline order.
    order = list(dict.fromkeys(name for p in have for name in stages(results[p], key)["stages_ns"]))
    for name in order:
        cells, any_ns = [], False
        for p in have:
            s, pk = stages(results[p], key), stage_packets(results[p], key)
            ns = s["stages_ns"].get(name, 0)
            any_ns |= ns > 0
            share = 100 * ns / s["total_ns"] if s["total_ns"] else 0
            cells.append(f"{ns / pk:.0f} ({share:.0f} %)" if pk else f"({share:.0f} %)")
        if any_ns:
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    totals, samples = [], []
    for p in have:
        s, pk = stages(results[p], key), stage_packets(results[p], key)
        totals.append(f"**{s['total_ns'] / pk:.0f}**" if pk else "?")
        samples.append(grouped(s["samples"]))
    rows.append("| total ns/packet | " + " | ".join(totals) + " |")
    if key == "live_perf":
        # The pass's CPU from schedstat, perf's own cost included: a check on the sampled total.
        measured = []
        for p in have:
            cpu, pk = num(results[p].get("live_perf.cpu")), stage_packets(results[p], key)
            measured.append(f"{1e9 * cpu / pk:.0f}" if cpu is not None and pk else "?")
        rows.append("| CPU ns/packet of the pass (schedstat) | " + " | ".join(measured) + " |")
    rows.append("| samples | " + " | ".join(samples) + " |")
    return "\n".join(head + rows)


def hyperfine_table(results, profiles):
    out = ["| profile | command | median | mean ± σ | user + sys | min … max |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for p in profiles:
        for cmd, h in hyperfine(results[p]).items():
            out.append(f"| {p} | {cmd} | {h['median']:.3f} s | {h['mean']:.3f} ± {h['stddev'] or 0:.3f} s | "
                       f"{h['user'] + h['system']:.3f} s | {h['min']:.3f} … {h['max']:.3f} s |")
    return "\n".join(out)


def render(path, title):
    results, profiles = load(path)
    glob = results.get("-", {})
    modes = live_modes(results, profiles)
    out = [f"# {title}", ""]
    for key, label in (("machine", "Machine"), ("versions", "Versions"), ("settings", "Settings")):
        if key in glob:
            out += [f"{label}: {glob[key]}.", ""]
    goals = goal_table(results, profiles, modes)
    out += ["A goal is met only when it holds on every profile; cells that miss are in bold.", "",
            goals.markdown(), ""]
    if goals.missed:
        out += ["Missed goals, by how much, and the three stages that dominate that profile's perf "
                "profile (share of CPU samples, CPU ns per packet):", ""] + goals.missed + [""]
    out += ["Per profile:", "", detail_table(results, profiles, modes), ""]
    for key, text in (
        ("analyze_perf", "CPU ns per packet by stage, `podpath analyze` over each profile's capture "
                         "(perf, cpu-clock, DWARF call chains; share of samples in parentheses)"),
        ("live_perf", "CPU ns per packet by stage, `podpath run` (ring) under each profile's load, in a "
                      "separate pass with perf attached (a per-process perf event costs CPU at every sample "
                      "and context switch, so this pass runs slower than the measured one: compare the "
                      "shares, not the absolute numbers, with the live row of the goal table)"),
    ):
        table = stage_table(results, profiles, key)
        if table:
            out += [f"{text}:", "", table, ""]
    if any(stages(results[p], k) for p in profiles for k in ("analyze_perf", "live_perf")):
        out += ["Stages group symbols by module path (bench/perf_stages.py): a sample counts for the "
                "first frame from the leaf that belongs to a stage; allocator frames count as allocation "
                "whoever called them; generic code (hashbrown, memcpy, the kernel) counts for its caller.",
                ""]
    out += ["Load (generators' own summaries):", ""]
    for p in profiles:
        r = results[p]
        live = "; ".join(f"live ({mode}): " + "; ".join(" ".join(part.split())
                                                         for part in r.get(f"live.{mode}.load", "?").split(";"))
                         for mode in modes)
        out.append(f"- **{p}**: {live}")
    out.append("")
    flows, names = glob.get("flood.flows_engine_line"), glob.get("flood.names_engine_line")
    if flows or names:
        out += [f"Floods (engine_rss): flows: {flows or '?'}; names: {names or '?'}", ""]
    out += ["hyperfine:", "", hyperfine_table(results, profiles), ""]
    if "criterion" in glob:
        try:
            with open(glob["criterion"]) as f:
                lines = f.read().strip()
        except OSError:
            lines = ""
        if lines:
            out += ["criterion (benches/hot_paths.rs, tests/captures/rich-any.pcap):", "", "```", lines, "```", ""]
    return "\n".join(out)


def splice(doc, md_path):
    """Replace BENCHMARKS.md's results section with the run's Markdown."""
    md = open(md_path).read()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    try:
        text = open(doc).read()
    except FileNotFoundError:
        text = f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    body = md.split("\n", 1)[1].lstrip("\n")
    name = md_path.rsplit("/", 1)[-1]
    with open(doc, "w") as f:
        f.write(f"{head}{begin}\n\nLatest run ({name}):\n\n{body}\n{end}{tail}")


def self_test():
    """The verdicts on a two-profile fixture: met only when every profile meets."""
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        hf = os.path.join(tmp, "hf.json")
        runs = [("podpath analyze", 0.030), ("tcpdump -r -w /dev/null", 0.025), ("tshark -z dns,tree", 0.9)]
        with open(hf, "w") as f:
            json.dump({"results": [{"command": c, "median": t, "mean": t, "stddev": 0, "user": t,
                                    "system": 0, "min": t, "max": t} for c, t in runs]}, f)
        stage_json = json.dumps({"stages_ns": {"HTTP": 3000, "decode": 1000}, "samples": 4, "total_ns": 4000})
        rows = []
        for p, conns in (("a", "10"), ("b", "11")):
            rows += [(p, "offline.packets", "100"), (p, "offline.hyperfine", hf),
                     (p, "analyze_perf.runs", "2"), (p, "analyze_perf.stages", stage_json),
                     (p, "offline.seconds", "3.0"),
                     (p, "live.ring.cpu", "0.5" if p == "a" else "2.0"), (p, "live.ring.tcpdump_cpu", "1.0"),
                     (p, "live.ring.drops", "0"), (p, "live.ring.conns", "10"),
                     (p, "live.ring.tcpdump_conns", conns), (p, "live.ring.hwm_kib", "20000")]
        rows += [("-", "flood.flows", "1000"), ("-", "flood.flows_engine_kib", "70000")]
        tsv = os.path.join(tmp, "r.tsv")
        with open(tsv, "w") as f:
            f.writelines("\t".join(r) + "\n" for r in rows)
        md = render(tsv, "t")
    lines = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}

    def verdict(prefix):
        return next(v for k, v in lines.items() if k.startswith("| " + prefix)).rsplit(" | ", 1)[1]
    assert verdict("`analyze` ≤") == "yes |", lines  # 1.2x on both
    assert verdict("`analyze` ≥") == "yes |", lines  # 30x on both
    assert verdict("live CPU").startswith("**no** (b)"), lines  # 0.5x on a, 2x on b
    assert verdict("exact outbound").startswith("**no** (b)"), lines
    assert verdict("0 drops") == "yes |", lines
    assert verdict("RSS ≤ 64 MiB").startswith("**no**"), lines
    assert "  - **b**: **" not in md and "  - **b**: 2.00× (2.000 / 1.000 s); 2.00× over the goal" in md, md
    assert "| HTTP | 15 (75 %) | 15 (75 %) |" in md, md  # 3000 ns over 2 runs x 100 packets
    print("report self-test: ok")


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        self_test()
    elif len(args) == 3 and args[0] == "--splice":
        splice(args[1], args[2])
    elif len(args) == 2:
        sys.stdout.write(render(args[0], args[1]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
