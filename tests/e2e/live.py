#!/usr/bin/env python3
"""Live sidecar end-to-end test in the namespace lab (run as root).

For each scenario (the seed walkthrough from demo-app-2, the richer one from
shop/checkout): `podpath run` inside the client pod's namespace while tcpdump
records the same namespace; the scenario runs; /metrics is scraped from the
node namespace (as Prometheus would) and compared, family by family, with
`podpath analyze` of the tcpdump capture, less podpath's own PTR queries
(its socket's port, from the log; the raw capture must hold them, the live
DNS metrics none, and their count must equal podpath_ptr_queries_total: the
seed's count is printed). In the seed the literal pod IP and ClusterIP must
be named Service default/demo-app, in the rich scenario an IPv4 and an IPv6
pod IP their Services; the recvmsg run has PTR lookups off and must send
none. Then SIGTERM must end podpath with
exit 0 within a second. Finally: without CAP_NET_RAW podpath must stay up
and ready, export podpath_capture_up 0 with the reason and log it once naming
the capability; with only CAP_NET_RAW (file capability, non-root user) it
must capture.
"""
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "lab", "lab.sh")
BIN = os.environ.get("PODPATH_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "podpath")
PORT = 9809
# The pod that plays Prometheus.
SCRAPER = "pp-demo-app"
CIDRS = ["--service-cidr", "10.96.0.0/12", "--service-cidr", "fd00:10:96::/112",
         "--pod-cidr", "10.244.0.0/16", "--pod-cidr", "fd00:10:244::/64"]
# Families compared exactly between the live scrape and analyze of the capture.
COMPARED = [
    "podpath_connections_total", "podpath_inbound_connections_total",
    "podpath_tcp_connect_failures_total", "podpath_udp_port_unreachable_total",
    "podpath_http_requests_total", "podpath_inbound_http_requests_total",
    "podpath_dns_queries_total", "podpath_dns_lookups_total",
    "podpath_dns_lookup_queries_total", "podpath_dns_lookup_wasted_queries_total",
    "podpath_literal_connections_total",
]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, **kw)


def in_ns(ns, *args):
    return ["ip", "netns", "exec", ns, *args]


def fetch(ns_ip, path, timeout=2.0):
    # From another pod, as a Prometheus pod scrapes over the pod network.
    out = subprocess.run(in_ns(SCRAPER, "curl", "-s", "-m", str(timeout), "-o", "-",
                               "-w", "\n%{http_code}", f"http://{ns_ip}:{PORT}{path}"),
                         capture_output=True, text=True)
    body, _, code = out.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), body




def samples(text, families):
    """Sample lines of the given families, as {line-without-value: value}.
    podpath's own PTR answers name addresses only in podpath_destination_info
    (not compared), so every compared series must match the capture's."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = re.split(r"[{ ]", line, 1)[0]
        if name in families:
            key, _, value = line.rpartition(" ")
            v = float(value)
            if v != 0:
                out[key] = out.get(key, 0) + v
    return out


def value(text, prefix):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith(prefix))


def pcap_count(pcap, bpf):
    """Packets of `pcap` matching the tcpdump filter `bpf`."""
    out = subprocess.run(["tcpdump", "-n", "-r", pcap, bpf], capture_output=True, text=True)
    return len([l for l in out.stdout.splitlines() if l.strip()])


def own_ptr_port(log_text):
    m = re.search(r"naming literal destinations by PTR.*source_port=(\d+)", log_text)
    return int(m.group(1)) if m else None


def scenario(name, pod, pod_ip, k8s_ns, domain, lab_cmd, extra_flags, expect, mode="ring", names=(),
             after=(), run_flags=()):
    """`mode`: the capture mode asked of `podpath run` (ring, the default, or recvmsg).
    `names`: (address, service, namespace, source or None) the scrape must name.
    `after`: commands run in the pod after the lab scenario (not in the recorded captures).
    `run_flags`: flags for `podpath run` only."""
    print(f"\n--- scenario {name}: podpath run in {pod}, capture mode {mode}", flush=True)
    pcap = f"/tmp/podpath-e2e-{name}.pcap"
    flags = CIDRS + ["--cluster-domain", domain] + extra_flags
    tcpdump = subprocess.Popen(in_ns(f"pp-{pod}", "tcpdump", "-Z", "root", "-s", "0", "-U",
                                     "-i", "any", "-y", "LINUX_SLL2", "-w", pcap),
                               stderr=subprocess.PIPE, text=True)
    env = dict(os.environ, POD_NAMESPACE=k8s_ns, POD_NAME=pod, POD_IP=pod_ip)
    log = open(f"/tmp/podpath-e2e-{name}.log", "w")
    proc = subprocess.Popen(in_ns(f"pp-{pod}", BIN, "run", "--listen", f"0.0.0.0:{PORT}",
                                  "--capture-mode", mode, *flags, *run_flags),
                            env=env, stdout=log, stderr=log)
    up = [f'podpath_capture_up{{interface="{i}"}} 1' for i in ("lo", "eth0")]
    deadline = time.time() + 10
    ready, capturing = 0, False
    while time.time() < deadline and not (ready == 200 and capturing):
        time.sleep(0.2)
        ready, _ = fetch(pod_ip, "/readyz")
        _, scrape = fetch(pod_ip, "/metrics")
        capturing = all(u in scrape.splitlines() for u in up)
    check(ready == 200, f"{name}: /readyz answers 200")
    check(capturing, f"{name}: podpath_capture_up is 1 on lo and eth0")
    health, _ = fetch(pod_ip, "/healthz")
    check(health == 200, f"{name}: /healthz answers 200")
    time.sleep(1.0)  # tcpdump is listening too
    sh(LAB, lab_cmd)
    for cmd in after:
        subprocess.run(in_ns(f"pp-{pod}", *cmd), stdout=subprocess.DEVNULL)
    # Let lookups linger out and connect timeouts fire on packet time, then scrape.
    time.sleep(6.0)
    code, live = fetch(pod_ip, "/metrics")
    check(code == 200, f"{name}: /metrics answers 200")
    # A second scrape: our own scrapes must not show up as the app's traffic.
    code, live = fetch(pod_ip, "/metrics")
    time.sleep(1.0)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(timeout=10)

    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = None
    elapsed = time.monotonic() - t0
    check(rc == 0 and elapsed < 1.0, f"{name}: SIGTERM -> exit {rc} after {elapsed:.2f} s (want 0 within 1 s)")
    log.close()
    started = open(log.name).read()
    check(f"capture_mode={mode.capitalize()}" in started,
          f"{name}: the log says it captured in {mode} mode")
    check("\x1b[" not in started, f"{name}: the log (not a terminal) has no colour codes")

    if "--resolve-literals" in run_flags:
        # Off: no socket, no query (any PTR in the capture would be the app's), no metrics.
        check(own_ptr_port(started) is None and "podpath_ptr_" not in live
              and pcap_count(pcap, "udp port 53 and (udp[10] & 0x80 = 0)") == 6,
              f"{name}: with --resolve-literals off podpath sends no query and exports no podpath_ptr_*")
        port = None
    else:
        # podpath's own PTR queries: in the raw capture, in no app metric.
        port = own_ptr_port(started)
        check(port is not None, f"{name}: the log names the PTR socket's source port ({port})")
    if port is not None:
        own_queries = pcap_count(pcap, f"udp src port {port} and udp dst port 53") if port else -1
        own_answers = pcap_count(pcap, f"udp dst port {port} and udp src port 53") if port else -1
        sent = value(live, "podpath_ptr_queries_total")
        print(f"     podpath's own PTR queries on the wire: {own_queries} (answers {own_answers}); "
              f"podpath_ptr_queries_total {sent:g}", flush=True)
        check(own_queries > 0 and own_queries == sent,
              f"{name}: podpath's PTR queries in the capture ({own_queries}) = podpath_ptr_queries_total ({sent:g})")
        check('qtype="PTR"' not in "\n".join(l for l in live.splitlines() if l.startswith("podpath_dns_")),
              f"{name}: no PTR query in the app's DNS metrics")
    app_pcap = f"/tmp/podpath-e2e-{name}-app.pcap"
    sh("tcpdump", "-r", pcap, "-w", app_pcap, f"not (udp port {port or 0})",
       stderr=subprocess.DEVNULL)
    check(pcap_count(app_pcap, f"udp port {port or 0}") == 0, f"{name}: the app-only capture holds none of them")
    if names:
        print("     scrape excerpt:")
        for l in live.splitlines():
            if (l.startswith(("podpath_destination_info", "podpath_literal_connections_total",
                              "podpath_ptr_queries_total")) and not l.endswith(" 0")):
                print(f"       {l}")
    for addr, svc, ns, source in names:
        line = [l for l in live.splitlines()
                if l.startswith("podpath_destination_info{") and f'address="{addr}"' in l]
        ok = len(line) == 1 and f'service="{svc}"' in line[0] and f'namespace="{ns}"' in line[0] \
            and (source is None or f'source="{source}"' in line[0])
        check(ok, f"{name}: {addr} is named Service {ns}/{svc}"
                  f"{' by ' + source if source else ''}: {line[0] if line else '(no series)'}")

    offline = subprocess.run([BIN, "analyze", "--format", "prometheus", "--exclude-port", str(PORT),
                              "--pod-ip", pod_ip, "--namespace", k8s_ns, *flags, app_pcap],
                             capture_output=True, text=True)
    check(offline.returncode == 0, f"{name}: analyze of the tcpdump capture exits 0 ({offline.stderr.strip()[:200]})")
    a, b = samples(live, COMPARED), samples(offline.stdout, COMPARED)
    only_live = {k: v for k, v in a.items() if b.get(k) != v}
    only_file = {k: v for k, v in b.items() if a.get(k) != v}
    check(not only_live and not only_file,
          f"{name}: live /metrics equals analyze of the same traffic ({len(a)} series)")
    for k, v in sorted(only_live.items()):
        print(f"     live only: {k} {v}")
    for k, v in sorted(only_file.items()):
        print(f"     file only: {k} {v}")
    drops = [l for l in live.splitlines() if l.startswith("podpath_capture_drops_total{")]
    check(len(drops) >= 2 and all(l.endswith(" 0") for l in drops),
          f"{name}: podpath_capture_drops_total present for every interface and 0 ({len(drops)} series)")
    check(value(live, "podpath_capture_packets_total") > 0, f"{name}: capture packets counted")
    check(f'port="{PORT}"' not in live, f"{name}: podpath's own port appears in no app metric")
    for prefix, want in expect:
        got = value(live, prefix)
        check(got == want, f"{name}: {prefix} = {got:g} (want {want:g})")
    return live


def capability_tests():
    print("\n--- capabilities", flush=True)
    env = dict(os.environ)
    # Without the capability podpath stays up, ready and says why: an
    # observer that cannot observe must not take the app's pod down.
    nocap = subprocess.Popen(in_ns("pp-demo-app-2", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   "--inh-caps=-all", "--bounding-set=-all", BIN, "run", "--listen", "127.0.0.1:9811"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)

    def local(path):
        out = subprocess.run(in_ns("pp-demo-app-2", "curl", "-s", "-m", "2", "-o", "-", "-w", "\n%{http_code}",
                                   f"http://127.0.0.1:9811{path}"), capture_output=True, text=True)
        body, _, code = out.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body

    deadline = time.time() + 10
    health = 0
    while time.time() < deadline and health != 200 and nocap.poll() is None:
        time.sleep(0.2)
        health, _ = local("/healthz")
    time.sleep(2.5)  # two retries, 1 s and 2 s after the first attempt
    ready, _ = local("/readyz")
    _, scrape = local("/metrics")
    running = nocap.poll() is None
    nocap.send_signal(signal.SIGTERM)
    try:
        rc = nocap.wait(timeout=5)
    except subprocess.TimeoutExpired:
        nocap.kill()
        rc = None
    log = nocap.stderr.read()
    check(running and health == 200 and ready == 200,
          f"without CAP_NET_RAW: still running ({running}), /healthz {health}, /readyz {ready}")
    lines = scrape.splitlines()
    check(all(f'podpath_capture_up{{interface="{i}"}} 0' in lines
              and f'podpath_capture_error_info{{interface="{i}",reason="permission_denied"}} 1' in lines
              for i in ("lo", "eth0")),
          "without CAP_NET_RAW: podpath_capture_up 0 and reason permission_denied on lo and eth0")
    warned = [l for l in log.splitlines() if "WARN" in l and 'interface=lo' in l]
    check(len(warned) == 1 and "CAP_NET_RAW" in warned[0],
          f"without CAP_NET_RAW: logged once for lo, naming it: {warned[:1]}")
    check(rc == 0, f"without CAP_NET_RAW: SIGTERM -> exit {rc}")
    capbin = "/tmp/podpath-netraw"
    sh("cp", BIN, capbin)
    sh("chmod", "0755", capbin)
    # As the image ships it: permitted only; podpath raises it to effective.
    sh("setcap", "cap_net_raw+p", capbin)
    proc = subprocess.Popen(in_ns("pp-demo-app-2", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                  capbin, "run", "--listen", "0.0.0.0:9809"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready = False
    deadline = time.time() + 10
    while time.time() < deadline and not ready:
        time.sleep(0.2)
        _, scrape = fetch("10.244.1.20", "/metrics")
        ready = all(f'podpath_capture_up{{interface="{i}"}} 1' in scrape.splitlines() for i in ("lo", "eth0"))
    caps = ""
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            status = f.read()
        uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
        caps = re.search(r"^CapEff:\s+(\w+)", status, re.M).group(1)
    except (OSError, AttributeError):
        uid = "?"
    check(ready, "as uid 65534 with only cap_net_raw (file capability): podpath captures on lo and eth0")
    check(uid == "65534" and int(caps or "0", 16) == 1 << 13,
          f"its process is uid {uid} with effective capabilities {caps} (CAP_NET_RAW only = 0x2000)")
    proc.send_signal(signal.SIGTERM)
    check(proc.wait(timeout=5) == 0, "and exits 0 on SIGTERM")


def main():
    if os.geteuid() != 0:
        sys.exit("live.py needs root (network namespaces)")
    if not os.environ.get("PODPATH_BIN"):
        sh("cargo", "build", "--release", "--quiet", cwd=ROOT)
    sh(LAB, "up")
    try:
        scenario("seed", "demo-app-2", "10.244.1.20", "default", "cluster.local", "seed", [], [
            ('podpath_connections_total{path="loopback"', 1),
            ('podpath_connections_total{path="pod_ip"', 1),
            ('podpath_connections_total{path="cluster_ip"', 1),
            ('podpath_connections_total{path="dns",target="cluster_ip",protocol="tcp",dns_name="demo-app",', 1),
            ('podpath_connections_total{path="dns",target="cluster_ip",protocol="tcp",dns_name="demo-app.default",', 1),
            ('podpath_connections_total{path="external"', 0),
            ("podpath_dns_queries_total", 6),
            ('podpath_dns_queries_total{qtype="A",rcode="NOERROR"}', 2),
            ('podpath_dns_queries_total{qtype="AAAA",rcode="NOERROR"}', 2),
            ('podpath_dns_queries_total{qtype="A",rcode="NXDOMAIN"}', 1),
            ('podpath_dns_queries_total{qtype="AAAA",rcode="NXDOMAIN"}', 1),
            ('podpath_http_requests_total{path="loopback"', 1),
            ('podpath_http_requests_total{path="pod_ip"', 1),
            ('podpath_http_requests_total{path="cluster_ip"', 1),
            ('podpath_http_requests_total{path="dns"', 2),
            ("podpath_inbound_connections_total", 0),
            # The literal calls by address; the ClusterIP named by the answer
            # for demo-app that came after it (docs/naming.md).
            ('podpath_literal_connections_total{path="pod_ip",address="10.244.1.10",port="80"}', 1),
            ('podpath_literal_connections_total{path="cluster_ip",address="10.96.100.10",port="80"}', 1),
            ('podpath_destination_info{address="10.96.100.10",service="demo-app",namespace="default",', 1),
        ], names=[("10.244.1.10", "demo-app", "default", "ptr"),
                  ("10.96.100.10", "demo-app", "default", None)])
        # The same walkthrough through the fallback path: one recvmsg per frame.
        # ... and with PTR lookups off.
        scenario("seed-recvmsg", "demo-app-2", "10.244.1.20", "default", "cluster.local", "seed", [], [
            ('podpath_connections_total{path="loopback"', 1),
            ('podpath_connections_total{path="pod_ip"', 1),
            ('podpath_connections_total{path="cluster_ip"', 1),
            ('podpath_connections_total{path="dns"', 2),
            ("podpath_dns_queries_total", 6),
            ('podpath_http_requests_total{path="dns"', 2),
        ], mode="recvmsg", run_flags=["--resolve-literals", "off"])
        scenario("rich", "checkout", "10.244.2.20", "shop", "corp.internal", "rich", [], [
            ('podpath_tcp_connect_failures_total{path="pod_ip",reason="refused"}', 1),
            ('podpath_tcp_connect_failures_total{path="pod_ip",reason="timeout"}', 1),
            ('podpath_connections_total{path="dns",target="pod_ip"', 1),
            ('podpath_inbound_connections_total{protocol="tcp",port="80"}', 1),
        ], names=[("10.244.2.10", "cart", "shop", "ptr"),
                  # IPv6: an ip6.arpa question, the endpoint's dashed-address name.
                  ("fd00:10:244::2:40", "catalog", "shop", "ptr")],
           after=[["curl", "-s", "-o", "/dev/null", "-g", "http://[fd00:10:244::2:40]/"]])
        capability_tests()
    finally:
        subprocess.run([LAB, "down"])
    print(f"\nlive e2e: {len(failures)} failed")
    for f in failures:
        print("  failed:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
