#!/usr/bin/env python3
"""Attribute a perf profile of podpath to its pipeline stages.

Reads `perf script -F period,ip,sym,dso` output of a recording made with
`-e cpu-clock --call-graph dwarf` (so every sample's period is CPU time in
nanoseconds) and prints JSON: CPU nanoseconds per stage, the sample count and
the total.

Each sample goes to one stage, found by walking its call chain from the leaf
towards the root:
- an allocator frame (malloc/free family, Rust's __rust_alloc, RawVec growth)
  makes the sample "allocation", whoever called it;
- a frame whose owner is one of podpath's modules or the crates they are built
  on decides the stage by that module (STAGES below);
- anything else (core/alloc/std/hashbrown generics, memcpy/memcmp, kernel
  frames, [unknown]) is not owned by a stage, so the walk goes on to its
  caller: a read(2) under FileReader::fill counts as file reading, a memcmp
  under the DNS name table as DNS.
A sample with no deciding frame is "unattributed" (start-up, exit, kernel
work outside podpath's code), or, when its leaf is one of libc's mem*/str*
routines (the unwinder often stops there), "memcmp/memcpy, caller not
unwound".

The owner of a Rust symbol is its module path: for `<A as B>::f` the path of
A (the type whose code runs), generics stripped. `podpath_core::x` counts as
`podpath::x` (the pure modules' crate).

    perf script -i FILE -F period,ip,sym,dso [--comms podpath] | perf_stages.py
    perf_stages.py --self-test
"""

import json
import re
import sys

# (stage, owner-path prefixes) in pipeline order; first match wins, so a
# prefix comes before any shorter one it nests in.
STAGES = [
    ("file read/parse", ["podpath::capture::file", "pcap_parser::"]),
    ("capture (ring/socket)", ["podpath::capture", "podpath_afpacket::", "pnet_datalink::"]),
    ("decode", ["podpath::decode", "podpath::defrag"]),
    ("flow/engine", ["podpath::engine", "podpath::flow", "podpath::attribution", "podpath::hash",
                     "podpath::time", "foldhash::"]),
    ("DNS", ["podpath::dns", "hickory_proto::"]),
    ("HTTP", ["podpath::http", "podpath::h2", "httparse::", "loona_hpack::"]),
    ("TLS", ["podpath::tls"]),
    ("metrics/report sink", ["podpath::metrics", "podpath::report", "prometheus_client::", "serde_json::"]),
    ("runtime/other podpath", ["podpath::", "tokio::", "hyper::", "axum::", "tracing::",
                               "tracing_core::", "tracing_subscriber::"]),
]
# libc's string routines whose callers the DWARF unwinder often cannot find
# (a one-frame chain): their own bucket rather than "unattributed".
UNWOUND = "memcmp/memcpy, caller not unwound"
STAGE_NAMES = [name for name, _ in STAGES] + ["allocation", UNWOUND, "unattributed"]

ALLOC_EXACT = {
    "malloc", "free", "realloc", "calloc", "cfree", "_int_malloc", "_int_free", "_int_realloc",
    "malloc_consolidate", "sysmalloc", "unlink_chunk", "__libc_malloc", "__libc_free",
    "__libc_calloc", "__libc_realloc", "__rust_alloc", "__rust_dealloc", "__rust_realloc",
    "__rust_alloc_zeroed", "__rdl_alloc", "__rdl_dealloc", "__rdl_realloc", "__rdl_alloc_zeroed",
    "alloc::alloc::exchange_malloc", "alloc::raw_vec::finish_grow",
}
ALLOC_RE = re.compile(r"^(_int_free_|tcache_|unlink_chunk|alloc::raw_vec::RawVec(Inner)?<.*>::(grow|reserve)"
                      r"|<alloc::raw_vec::RawVec(Inner)?<.*>>::(grow|reserve))")


def strip_generics(path):
    """`a::B<c::D>::f` -> `a::B::f` (nested angle brackets included)."""
    out, depth = [], 0
    for ch in path:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def owner(sym):
    """The module path that owns a (demangled) symbol's code."""
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym.strip())
    if sym.startswith("<"):
        # `<A as B>::f`: the first top-level " as " splits A from B.
        depth = 0
        for i, ch in enumerate(sym):
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth -= 1
                if depth == 0:
                    inner = sym[1:i]
                    break
            elif depth == 1 and sym.startswith(" as ", i):
                inner = sym[1:i]
                break
        else:
            inner = sym[1:]
        inner = re.sub(r"^(&mut |&|\*const |\*mut |dyn )+", "", inner.strip())
        sym = inner
    sym = strip_generics(sym)
    return re.sub(r"^podpath_core::", "podpath::", sym)


def bare(sym):
    """A symbol without its offset and ELF version (`cfree@GLIBC_2.2.5`)."""
    return re.sub(r"(@[\w.]+)?(\+0x[0-9a-f]+)?$", "", sym.strip())


def is_alloc(sym):
    bare_sym = bare(sym)
    return bare_sym in ALLOC_EXACT or bool(ALLOC_RE.match(bare_sym))


def stage_of_frame(sym):
    if is_alloc(sym):
        return "allocation"
    own = owner(sym)
    for name, prefixes in STAGES:
        for p in prefixes:
            base = p.rstrip(":")
            if own == base or own.startswith(base + "::"):
                return name
    return None


def stage_of_sample(frames):
    for sym in frames:
        stage = stage_of_frame(sym)
        if stage:
            return stage
    if frames and re.match(r"^__(mem|str)\w+$", bare(frames[0])):
        return UNWOUND
    return "unattributed"


def parse(lines):
    """Yields (period, [leaf..root symbols]) per sample of `perf script`."""
    period, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if period is not None:
                yield period, frames
            period, frames = None, []
        elif line[0] in " \t" and period is not None and re.match(r"^\s+[0-9a-f]+ ", line):
            # "\t<ip> <symbol> (<dso>)"; the symbol may hold spaces and parentheses.
            body = line.strip().split(" ", 1)[1] if " " in line.strip() else ""
            m = re.match(r"^(.*) \(([^()]*)\)$", body)
            frames.append(m.group(1) if m else body)
        else:
            # The sample's own line: the period is its last number.
            nums = re.findall(r"\b(\d+)\b", line)
            if period is not None:
                yield period, frames
            period, frames = (int(nums[-1]) if nums else 1), []
    if period is not None:
        yield period, frames


def attribute(lines):
    ns = {name: 0 for name in STAGE_NAMES}
    samples = 0
    for period, frames in parse(lines):
        ns[stage_of_sample(frames)] += period
        samples += 1
    return {"stages_ns": ns, "samples": samples, "total_ns": sum(ns.values())}


SELF_TEST = """\
    250000 
	    55d0a1 httparse::parse_headers_iter_uninit (/x/podpath)
	    55d0b2 podpath::http::Http1::on_response_data (/x/podpath)
	    55d0c3 podpath::engine::Engine::process (/x/podpath)

    250000 
	    7f0001 __memcmp_evex_movbe (/usr/lib/x86_64-linux-gnu/libc.so.6)
	    55d0d4 hashbrown::map::HashMap<K,V,S,A>::get_mut (/x/podpath)
	    55d0e5 podpath_core::dns::names::Names::intern (/x/podpath)
	    55d0c3 podpath::engine::Engine::process (/x/podpath)

    250000 
	    7f0002 _int_malloc (/usr/lib/x86_64-linux-gnu/libc.so.6)
	    7f0003 malloc (/usr/lib/x86_64-linux-gnu/libc.so.6)
	    55d0f6 podpath::dns::wire::parse (/x/podpath)

    250000 
	ffffffff8100 _copy_to_iter ([kernel.kallsyms])
	ffffffff8101 vfs_read ([kernel.kallsyms])
	    7f0004 read (/usr/lib/x86_64-linux-gnu/libc.so.6)
	    55d107 <std::fs::File as std::io::Read>::read (/x/podpath)
	    55d118 podpath::capture::file::FileReader::fill (/x/podpath)

    500000 
	    55d129 <podpath::report::Report as podpath::engine::event::Sink>::on_event (/x/podpath)
	    55d0c3 podpath::engine::Engine::process (/x/podpath)

    125000 
	    55d13a core::ptr::drop_in_place<podpath::tls::hello::Pending> (/x/podpath)
	    55d14b <podpath::tls::Tls as core::ops::Drop>::drop (/x/podpath)

    125000 
	ffffffff8102 clear_page_erms ([kernel.kallsyms])
	    7f0005 _dl_start (/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)

    250000 
	    55d15c podpath_afpacket::ring::Ring::peek (/x/podpath)
	    55d16d podpath::capture::live::LiveSource::next_packet (/x/podpath)

    250000 
	    55d17e podpath::decode::decode_network (/x/podpath)

    100000 
	    7f0006 cfree@GLIBC_2.2.5 (/usr/lib/x86_64-linux-gnu/libc.so.6)

    100000 
	    7f0007 __memcmp_evex_movbe (/usr/lib/x86_64-linux-gnu/libc.so.6)
"""


def self_test():
    got = attribute(SELF_TEST.splitlines(True))
    ns = got["stages_ns"]
    expect = {"HTTP": 250000, "DNS": 250000, "allocation": 350000, "file read/parse": 250000, UNWOUND: 100000,
              "metrics/report sink": 500000, "TLS": 125000, "unattributed": 125000,
              "capture (ring/socket)": 250000, "decode": 250000}
    bad = {k: (ns[k], v) for k, v in expect.items() if ns[k] != v}
    others = {k: v for k, v in ns.items() if k not in expect and v}
    assert not bad and not others, f"stage attribution: wrong {bad}, unexpected {others}"
    assert got["samples"] == 11 and got["total_ns"] == 2450000, got
    assert owner("<&mut podpath::flow::Table<K> as core::fmt::Debug>::fmt") == "podpath::flow::Table"
    assert owner("podpath::cli::analyze::run::{{closure}}") == "podpath::cli::analyze::run::{{closure}}"
    print("perf_stages self-test: ok")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    if sys.argv[1:]:
        sys.exit(__doc__)
    json.dump(attribute(sys.stdin), sys.stdout)
    print()


if __name__ == "__main__":
    main()
