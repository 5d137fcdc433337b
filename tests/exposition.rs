//! The whole exposition `podpath analyze` prints, compared with goldens in
//! tests/golden/exposition/: every family's HELP and TYPE line, every
//! series' label set and its value. Lines are compared sorted, since series
//! within a family come out in hash order; the values of `process_*`
//! (read from /proc) and the version in `podpath_build_info` are masked.
//!
//! A change to a metric's name, help, labels or counts shows here as a diff.
//! When one is meant, rewrite the goldens with
//! `PODPATH_BLESS=1 cargo test --test exposition` and review them.

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use podpath::decode::build::{FrameBuilder, PcapWriter};

const CAPTURES: &[&str] = &[
    "seed-any.pcap",
    "seed-any-sll1.pcap",
    "seed-eth0.pcap",
    "rich-any.pcap",
    "proto.pcap",
    "dnsretx.pcap",
];

const CIDRS: &[&str] = &[
    "--service-cidr",
    "10.96.0.0/12",
    "--pod-cidr",
    "10.244.0.0/16",
];

/// The exposition as compared: masked, sorted lines.
fn normalise(text: &str) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('#') || !l.starts_with("process_"))
        .map(|l| {
            if l.starts_with("podpath_build_info{") {
                "podpath_build_info{version=\"VERSION\"} 1".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    lines.sort();
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/exposition")
        .join(format!("{name}.txt"))
}

/// Compares `text` with the golden `name` (or writes it, with `PODPATH_BLESS`).
fn check(name: &str, text: &str) {
    let got = normalise(text);
    let path = golden_path(name);
    if std::env::var_os("PODPATH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with PODPATH_BLESS=1)", path.display()));
    if got != want {
        let missing: Vec<&str> = want.lines().filter(|l| !got.contains(l)).collect();
        let extra: Vec<&str> = got.lines().filter(|l| !want.contains(l)).collect();
        panic!(
            "exposition {name} differs from {}\nmissing:\n{}\nunexpected:\n{}",
            path.display(),
            missing.join("\n"),
            extra.join("\n")
        );
    }
}

fn analyze(format: &str, flags: &[&str], files: &[String]) -> String {
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(files.iter().map(String::as_str));
    let (last, rest) = args.split_last().expect("a file");
    common::analyze(format, rest, Some(last))
}

fn captures() -> Vec<String> {
    CAPTURES.iter().map(|c| common::capture(c)).collect()
}

#[test]
fn every_committed_capture_prometheus_text() {
    check("captures.prom", &analyze("prometheus", CIDRS, &captures()));
}

#[test]
fn every_committed_capture_openmetrics() {
    check(
        "captures.openmetrics",
        &analyze("openmetrics", CIDRS, &captures()),
    );
}

/// Small caps: label values and whole series fold into `~other`.
#[test]
fn label_and_series_caps_fold() {
    let mut flags = CIDRS.to_vec();
    flags.extend(["--max-label-values", "2", "--max-series", "3"]);
    let files = ["rich-any.pcap", "proto.pcap", "dnsretx.pcap"].map(common::capture);
    check("caps.prom", &analyze("prometheus", &flags, &files));
}

/// `--dns-names hash`: every name label is redacted the same way.
#[test]
fn hashed_names() {
    let mut flags = CIDRS.to_vec();
    flags.extend(["--dns-names", "hash", "--dns-name-salt", "golden"]);
    let files = ["proto.pcap", "rich-any.pcap"].map(common::capture);
    check("hashed.prom", &analyze("prometheus", &flags, &files));
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("podpath-exposition-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_str(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// Every kind of skip and eviction a file can produce: frames that are not
/// IP, cut, fragments incomplete, overlapping and duplicated, malformed DNS,
/// a flow table too small, a record cut at the end of the file, and a file
/// of a link type podpath cannot decode.
#[test]
fn skips_and_evictions() {
    let pod = ip("10.244.1.20");
    let dns = ip("10.96.0.10");
    let mut w = PcapWriter::new(1, 65535);
    let mut t = 1_700_000_000_000_000u64;
    let mut rec = |w: &mut PcapWriter, frame: &[u8]| {
        t += 1000;
        w.record(t, frame);
    };
    // More outbound connections than the flow table holds.
    for i in 0..12u8 {
        let syn = FrameBuilder::new(pod, ip(&format!("10.244.2.{i}")))
            .tcp(40000 + u16::from(i), 8000 + u16::from(i % 5))
            .flags(0x02)
            .build();
        rec(&mut w, &syn);
    }
    // A lookup, then a DNS message too short to parse.
    let q = FrameBuilder::new(pod, dns)
        .udp(50000, 53)
        .payload(&query(7, "golden.example."))
        .build();
    rec(&mut w, &q);
    let bad = FrameBuilder::new(dns, pod)
        .udp(53, 50000)
        .payload(&[0, 7, 0x81])
        .build();
    rec(&mut w, &bad);
    // Not IP (ARP), and an IPv4 frame cut inside its header.
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    rec(&mut w, &arp);
    let cut = FrameBuilder::new(pod, dns).udp(50001, 53).build();
    rec(&mut w, &cut[..20]);
    // A first fragment that never completes, one duplicated, and two
    // overlapping ones.
    let frags = FrameBuilder::new(dns, pod)
        .udp(53, 50002)
        .payload(&[1u8; 64])
        .build_fragments(32);
    rec(&mut w, &frags[0]);
    // Fragments are keyed by addresses, protocol and IP id: a source each.
    let dup = FrameBuilder::new(ip("10.96.0.11"), pod)
        .udp(53, 50003)
        .payload(&[1u8; 64])
        .build_fragments(32);
    rec(&mut w, &dup[0]);
    rec(&mut w, &dup[0]);
    let other = FrameBuilder::new(ip("10.96.0.12"), pod)
        .udp(53, 50004)
        .payload(&[2u8; 64])
        .build_fragments(32);
    let mut overlap = other[1].clone();
    let n = overlap.len();
    overlap[n - 1] ^= 0xff;
    rec(&mut w, &other[1]);
    rec(&mut w, &overlap);
    let mut bytes = w.bytes().to_vec();
    // A record header promising more than the file holds.
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 64, 0, 0, 0, 1, 2, 3]);
    let file = TempFile::new("skips.pcap", &bytes);

    let mut other_link = PcapWriter::new(147, 65535);
    other_link.record(1_700_000_000_000_000, &[0u8; 40]);
    other_link.record(1_700_000_000_001_000, &[0u8; 40]);
    let unsupported = TempFile::new("user0.pcap", other_link.bytes());

    let mut flags = CIDRS.to_vec();
    flags.extend(["--max-flows", "4", "--max-label-values", "3"]);
    let files = [
        file.0.display().to_string(),
        unsupported.0.display().to_string(),
    ];
    let text = analyze("prometheus", &flags, &files);
    for reason in [
        "not_ip",
        "truncated",
        "fragment",
        "fragment_duplicate",
        "fragment_overlap",
        "truncated_record",
        "unsupported_link_type",
    ] {
        assert!(
            text.contains(&format!(
                "podpath_decode_skipped_total{{reason=\"{reason}\"}}"
            )),
            "no {reason} skip in\n{text}"
        );
    }
    assert!(
        text.contains("podpath_dns_malformed_total{reason="),
        "{text}"
    );
    assert!(
        text.contains("podpath_table_evictions_total{table=\"flows\"}"),
        "{text}"
    );
    check("skips.prom", &text);

    // The report counts the same skips and evictions, and says where the
    // pod's addresses came from.
    let mut with_pod = flags.clone();
    with_pod.extend(["--pod-ip", "10.244.1.20"]);
    let table = analyze("table", &with_pod, &files);
    let sections = format!(
        "{}{}",
        common::section(&table, "Not counted"),
        common::section(&table, "Pod and cluster")
    );
    let json: serde_json::Value =
        serde_json::from_str(&analyze("json", &flags, &files)).expect("JSON");
    let kept: serde_json::Map<String, serde_json::Value> = [
        "skipped",
        "evictions",
        "dns_malformed",
        "stats",
        "local_addresses",
        "inferred",
    ]
    .iter()
    .map(|k| (k.to_string(), json[*k].clone()))
    .collect();
    let report = format!("{sections}{}", serde_json::to_string_pretty(&kept).unwrap());
    check_exact("skips.report", &report);
}

/// Compares `text` with the golden `name` as is (or writes it, with `PODPATH_BLESS`).
fn check_exact(name: &str, text: &str) {
    let path = golden_path(name);
    if std::env::var_os("PODPATH_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with PODPATH_BLESS=1)", path.display()));
    assert_eq!(text, want, "{} differs", path.display());
}
