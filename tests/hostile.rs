//! Hostile traffic, generated in the test: floods, oversized and crafted DNS,
//! broken TCP DNS streams, wild timestamps, long IPv6 header chains and IP
//! fragments. Each test asserts that memory, tables and metric series stay
//! bounded and that what was dropped or evicted is counted.
//!
//! The two floods run the `podpath` binary over a generated pcap file (so
//! the whole analyze path, file reader included, is exercised and its peak
//! RSS can be read from /proc); the rest drive the engine in process.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use podpath::capture::RawPacket;
use podpath::config::{Limits, PodConfig};
use podpath::decode::build::{FrameBuilder, Ipv6Ext, PcapWriter};
use podpath::decode::{LinkType, TcpFlags};
use podpath::engine::{Engine, NullSink};
use podpath::metrics::{Metrics, MetricsSink};
use podpath::Timestamp;

const POD: [u8; 4] = [10, 0, 0, 1];
const KUBE_DNS: [u8; 4] = [10, 96, 0, 10];
const T0_SECS: u64 = 1_700_000_000;

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

/// A small deterministic generator (xorshift64*): the floods are random
/// but reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A pcap built in memory, its times counted from `T0_SECS`.
struct Pcap(PcapWriter);

impl Pcap {
    fn new(linktype: u32) -> Pcap {
        Pcap(PcapWriter::new(linktype, 262_144))
    }

    fn push(&mut self, micros: u64, frame: &[u8]) {
        self.0.record(T0_SECS * 1_000_000 + micros, frame);
    }

    fn write(&self, name: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "podpath-hostile-{}-{name}.pcap",
            std::process::id()
        ));
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(self.0.bytes()).unwrap();
        TempFile(path)
    }
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `podpath analyze --format prometheus` over `file`; returns the
/// exposition and the child's peak resident set (VmHWM), sampled from
/// /proc while it runs (VmHWM only grows, so the last sample is the peak
/// up to a few milliseconds before exit).
fn analyze(file: &TempFile, extra: &[&str]) -> (String, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .arg("analyze")
        .args(["--format", "prometheus", "--service-cidr", "10.96.0.0/12"])
        .args(["--pod-ip", "10.0.0.1"])
        .args(extra)
        .arg(&file.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let reader = {
        let mut out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut out, &mut s).unwrap();
            s
        })
    };
    let mut peak_kib = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (reader.join().unwrap(), peak_kib * 1024)
}

/// The value of one series (`name{labels}` exactly as exposed), 0 if absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn series_of(text: &str, family: &str) -> usize {
    let prefix = format!("{family}{{");
    text.lines().filter(|l| l.starts_with(&prefix)).count()
}

fn samples(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

const MIB: u64 = 1024 * 1024;

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

fn response(id: u16, name: &str, records: Vec<Record>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(Name::from_str(name).unwrap(), RecordType::A));
    for r in records {
        m.add_answer(r);
    }
    m.to_vec().unwrap()
}

fn a_record(owner: &str, addr: [u8; 4]) -> Record {
    Record::from_rdata(
        Name::from_str(owner).unwrap(),
        30,
        RData::A(A::from(std::net::Ipv4Addr::from(addr))),
    )
}

fn udp_frame(from_pod: bool, port: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if from_pod {
        (POD, KUBE_DNS, port, 53)
    } else {
        (KUBE_DNS, POD, 53, port)
    };
    FrameBuilder::new(ip(src), ip(dst))
        .udp(sp, dp)
        .payload(payload)
        .build()
}

/// Position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("template bytes present")
}

#[test]
fn dns_flood_of_100k_random_names_keeps_series_capped() {
    const NAMES: u64 = 100_000;
    // Templates built once with hickory-proto; each flood message patches
    // the id, the 12 name characters and the answer address in place
    // (checksums are not verified by podpath).
    let label = b"aaaaaaaaaaaa";
    let name = "aaaaaaaaaaaa.flood.example.";
    let q = udp_frame(true, 40000, &query(0, name, RecordType::A));
    let r = udp_frame(
        false,
        40000,
        &response(0, name, vec![a_record(name, [192, 0, 2, 1])]),
    );
    let (q_name, r_name) = (find(&q, label), find(&r, label));
    let (q_id, r_id) = (q_name - 13, r_name - 13);
    let r_addr = r.len() - 4;
    let mut pcap = Pcap::new(1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut q, mut r) = (q, r);
    // 100k lookups in 4 s of packet time: one in ten is never answered, so
    // pending queries exceed their table (4096) and evictions are counted.
    for i in 0..NAMES {
        let bits = rng.next();
        for (k, c) in q[q_name..q_name + 12].iter_mut().enumerate() {
            *c = b'a' + ((bits >> (k * 5)) % 26) as u8;
        }
        let id = (i as u16).to_be_bytes();
        q[q_id..q_id + 2].copy_from_slice(&id);
        let micros = i * 40;
        pcap.push(micros, &q);
        if i % 10 != 0 {
            r[r_name..r_name + 12].copy_from_slice(&q[q_name..q_name + 12]);
            r[r_id..r_id + 2].copy_from_slice(&id);
            r[r_addr..].copy_from_slice(&(0x0a80_0000u32 + i as u32).to_be_bytes());
            pcap.push(micros + 20, &r);
        }
    }
    let file = pcap.write("dns-flood");
    let (text, peak) = analyze(&file, &[]);

    let lookups = series_of(&text, "podpath_dns_lookups_total");
    assert!(lookups <= 2 * 101, "{lookups} lookup series");
    let overflow = value(
        &text,
        r#"podpath_label_overflow_total{metric="podpath_dns_lookups_total",label="dns_name"}"#,
    );
    assert!(overflow >= (NAMES - 100) as f64, "overflow {overflow}");
    assert!(samples(&text) < 3_000, "{} samples", samples(&text));
    // Once 4 096 unanswered queries are pending, new ones are not tracked
    // (until the oldest time out) but counted: every query is answered,
    // timed out or counted as an eviction of the pending table.
    let answered = value(
        &text,
        r#"podpath_dns_queries_total{qtype="A",rcode="NOERROR"}"#,
    );
    let timed_out = value(
        &text,
        r#"podpath_dns_queries_total{qtype="A",rcode="TIMEOUT"}"#,
    );
    let untracked = value(&text, r#"podpath_table_evictions_total{table="pending"}"#);
    assert_eq!(answered + timed_out + untracked, NAMES as f64);
    assert_eq!(timed_out, 4_096.0);
    assert!(untracked > 4_000.0, "{untracked}");
    assert!(value(&text, r#"podpath_table_evictions_total{table="names"}"#) > 10_000.0);
    assert!(peak < 160 * MIB, "peak RSS {} MiB", peak / MIB);
}

#[test]
fn syn_flood_with_random_ports_and_addresses_keeps_the_flow_table_capped() {
    const SYNS: u64 = 100_000;
    const MAX_FLOWS: u64 = 4_096;
    let mut pcap = Pcap::new(1);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for i in 0..SYNS {
        let bits = rng.next();
        // Distinct 4-tuples: the index picks the source port and the
        // address, the random bits only the destination port.
        let dst = [100, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let frame = FrameBuilder::new(ip(POD), ip(dst))
            .tcp(10_000 + (i % 50_000) as u16, 1_024 + (bits % 60_000) as u16)
            .flags(TcpFlags::SYN)
            .seq(bits as u32)
            .build();
        pcap.push(i * 20, &frame);
    }
    let file = pcap.write("syn-flood");
    let (text, peak) = analyze(&file, &["--max-flows", &MAX_FLOWS.to_string()]);

    assert_eq!(
        value(&text, r#"podpath_table_evictions_total{table="flows"}"#),
        (SYNS - MAX_FLOWS) as f64
    );
    assert!(series_of(&text, "podpath_connections_total") <= 2_000);
    assert!(
        value(
            &text,
            r#"podpath_label_overflow_total{metric="podpath_connections_total",label="port"}"#
        ) > 90_000.0
    );
    assert!(samples(&text) < 3_000, "{} samples", samples(&text));
    assert!(peak < 160 * MIB, "peak RSS {} MiB", peak / MIB);
}

/// In-process engine with the metrics exporter.
struct Harness {
    engine: Engine,
    sink: MetricsSink,
    metrics: Arc<Metrics>,
}

impl Harness {
    fn new(limits: Limits) -> Harness {
        let metrics = Arc::new(Metrics::new());
        let sink = MetricsSink::new(metrics.clone(), limits.max_label_values, limits.max_series);
        let engine = Engine::new(PodConfig {
            pod_ips: vec![ip(POD)],
            service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
            limits,
            ..PodConfig::default()
        });
        Harness {
            engine,
            sink,
            metrics,
        }
    }

    fn feed(&mut self, secs: f64, link: LinkType, frame: &[u8]) {
        let raw = RawPacket {
            ts: Timestamp::from_secs_f64(T0_SECS as f64 + secs),
            link,
            data: frame,
            orig_len: frame.len() as u32,
            packet_type: None,
            interface: 0,
        };
        self.engine.process(&raw, &mut self.sink);
    }

    fn finish(&mut self) -> String {
        self.engine.finish(&mut self.sink);
        self.metrics.encode(false)
    }
}

#[test]
fn thousands_of_answers_and_long_cname_chains_stay_bounded() {
    let mut h = Harness::new(Limits {
        max_dns_names: 512,
        ..Limits::default()
    });
    let name = "big.example.";
    // 3 000 A records (~48 KiB): only the first MAX_ANSWERS are kept.
    let records: Vec<Record> = (0..3_000u32)
        .map(|i| a_record(name, (0x0a00_0000 + i).to_be_bytes()))
        .collect();
    let big = response(1, name, records);
    assert!(big.len() > 40_000);
    // Over TCP, since UDP cannot carry it unfragmented.
    let mut framed = (big.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&big);
    let started = Instant::now();
    h.feed(
        0.0,
        LinkType::Ethernet,
        &tcp_dns(true, 0, TcpFlags::SYN, &[]),
    );
    h.feed(
        0.001,
        LinkType::Ethernet,
        &tcp_dns(true, 1, TcpFlags::ACK, &query_framed(1, name)),
    );
    for (i, chunk) in framed.chunks(1448).enumerate() {
        let seq = 1 + (i * 1448) as u32;
        h.feed(
            0.002,
            LinkType::Ethernet,
            &tcp_dns(false, seq, TcpFlags::ACK, chunk),
        );
    }
    // A 200-link CNAME chain (every name answered), then a loop.
    let mut chain = Vec::new();
    for i in 0..200 {
        chain.push(Record::from_rdata(
            Name::from_str(&format!("c{i}.chain.example.")).unwrap(),
            30,
            RData::CNAME(CNAME(
                Name::from_str(&format!("c{}.chain.example.", i + 1)).unwrap(),
            )),
        ));
    }
    chain.push(a_record("c200.chain.example.", [192, 0, 2, 200]));
    let long = response(2, "c0.chain.example.", chain);
    h.feed(
        0.01,
        LinkType::Ethernet,
        &udp_frame(true, 40001, &query(2, "c0.chain.example.", RecordType::A)),
    );
    h.feed(0.02, LinkType::Ethernet, &udp_frame(false, 40001, &long));
    let looped = response(
        3,
        "l0.example.",
        vec![
            Record::from_rdata(
                Name::from_str("l0.example.").unwrap(),
                30,
                RData::CNAME(CNAME(Name::from_str("l1.example.").unwrap())),
            ),
            Record::from_rdata(
                Name::from_str("l1.example.").unwrap(),
                30,
                RData::CNAME(CNAME(Name::from_str("l0.example.").unwrap())),
            ),
        ],
    );
    h.feed(0.03, LinkType::Ethernet, &udp_frame(false, 40002, &looped));
    let elapsed = started.elapsed();
    let text = h.finish();

    let dns = h.engine.dns().stats();
    assert_eq!(dns.malformed, 0);
    assert_eq!(dns.wire_messages, (2, 3));
    assert!(dns.names <= 512);
    // The big answer kept at most MAX_ANSWERS addresses; the 200-link chain is
    // cut at the chase limit, so its final address is not learned.
    assert!(dns.names <= podpath::dns::wire::MAX_ANSWERS);
    assert!(h
        .engine
        .dns()
        .resolve(ip([10, 0, 0, 5]), h.engine.now())
        .is_some());
    assert!(h
        .engine
        .dns()
        .resolve(ip([192, 0, 2, 200]), h.engine.now())
        .is_none());
    assert_eq!(
        value(
            &text,
            r#"podpath_dns_queries_total{qtype="A",rcode="NOERROR"}"#
        ),
        2.0
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

fn query_framed(id: u16, name: &str) -> Vec<u8> {
    let q = query(id, name, RecordType::A);
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&q);
    out
}

/// A TCP segment between the pod (port 41000) and the DNS server.
fn tcp_dns(from_pod: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if from_pod {
        (POD, KUBE_DNS, 41000, 53)
    } else {
        (KUBE_DNS, POD, 53, 41000)
    };
    FrameBuilder::new(ip(src), ip(dst))
        .tcp(sp, dp)
        .seq(seq)
        .flags(flags)
        .payload(payload)
        .build()
}

#[test]
fn compression_pointer_tricks_are_malformed_not_fatal() {
    let mut h = Harness::new(Limits::default());
    let header = |ancount: u8| -> Vec<u8> { vec![0, 9, 0x81, 0x80, 0, 1, 0, ancount, 0, 0, 0, 0] };
    let mut crafted: Vec<Vec<u8>> = Vec::new();
    // Question name pointing at itself.
    let mut m = header(0);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    crafted.push(m);
    // Pointer forward, past the end.
    let mut m = header(0);
    m.extend_from_slice(&[0xc0, 0xff, 0, 1, 0, 1]);
    crafted.push(m);
    // Two pointers pointing at each other (answer owner ↔ question).
    let mut m = header(1);
    m.extend_from_slice(&[0xc0, 18, 0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 1, 2, 3, 4]);
    crafted.push(m);
    // A label longer than 63 (0x40..0xbf are reserved label types).
    let mut m = header(0);
    m.extend_from_slice(&[0x45, b'a', 0, 0, 1, 0, 1]);
    crafted.push(m);
    // A chain of 200 pointers, each to the previous one (backwards, legal
    // one by one, deep together).
    let mut m = header(1);
    m.extend_from_slice(&[1, b'x', 0, 0, 1, 0, 1]);
    let mut prev = 12u16;
    for _ in 0..200 {
        let at = m.len() as u16;
        m.extend_from_slice(&(0xc000 | prev).to_be_bytes());
        prev = at;
    }
    m.extend_from_slice(&(0xc000 | prev).to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 1, 2, 3, 4]);
    crafted.push(m);
    for (i, m) in crafted.iter().enumerate() {
        h.feed(
            i as f64 * 0.01,
            LinkType::Ethernet,
            &udp_frame(false, 40000, m),
        );
    }
    let text = h.finish();
    let dns = h.engine.dns().stats();
    assert_eq!(dns.wire_messages, (0, crafted.len() as u64));
    // Every trick is a counted malformed message; the pointer chain is
    // either malformed or, if the parser follows it, an ignored answer.
    assert!(dns.malformed >= crafted.len() as u64 - 1, "{dns:?}");
    let malformed: f64 = text
        .lines()
        .filter(|l| l.starts_with("podpath_dns_malformed_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(malformed, dns.malformed as f64);
}

#[test]
fn tcp_dns_streams_cut_reordered_and_retransmitted() {
    let mut h = Harness::new(Limits::default());
    let qs: Vec<Vec<u8>> = (0..4)
        .map(|i| query_framed(100 + i, &format!("q{i}.example.")))
        .collect();
    let mut t = 0.0;
    let mut feed = |h: &mut Harness, from_pod: bool, seq: u32, flags: u8, p: &[u8]| {
        t += 0.001;
        h.feed(t, LinkType::Ethernet, &tcp_dns(from_pod, seq, flags, p));
    };
    feed(&mut h, true, 0, TcpFlags::SYN, &[]);
    let mut seq = 1u32;
    // q0 split in three, the last two swapped.
    let q0 = &qs[0];
    feed(&mut h, true, seq, TcpFlags::ACK, &q0[..5]);
    feed(&mut h, true, seq + 12, TcpFlags::ACK, &q0[12..]);
    feed(&mut h, true, seq + 5, TcpFlags::ACK, &q0[5..12]);
    seq += q0.len() as u32;
    // q1 whole, then retransmitted twice.
    for _ in 0..3 {
        feed(&mut h, true, seq, TcpFlags::ACK, &qs[1]);
    }
    seq += qs[1].len() as u32;
    // q2's length prefix and half its body, then FIN: cut mid-message.
    feed(
        &mut h,
        true,
        seq,
        TcpFlags::ACK | TcpFlags::FIN,
        &qs[2][..qs[2].len() / 2],
    );
    h.finish();
    let dns = h.engine.dns().stats();
    assert_eq!(dns.wire_messages.0, 2, "{dns:?}");
    assert_eq!(dns.streams.out_of_order, 1);
    assert_eq!(dns.streams.retransmitted, 2);
    assert_eq!(dns.streams.cut, 1);
    assert_eq!(h.engine.dns().stats().streams, dns.streams);
}

#[test]
fn timestamps_jumping_backwards_and_far_ahead() {
    let mut h = Harness::new(Limits::default());
    let syn = |port: u16| {
        FrameBuilder::new(ip(POD), ip([93, 184, 216, 34]))
            .tcp(port, 443)
            .flags(TcpFlags::SYN)
            .build()
    };
    h.feed(100.0, LinkType::Ethernet, &syn(50_000));
    h.feed(50.0, LinkType::Ethernet, &syn(50_001));
    h.feed(0.0, LinkType::Ethernet, &syn(50_002));
    assert_eq!(h.engine.stats().time_went_backwards, 2);
    assert_eq!(h.engine.flow_count(), 3);
    // Ten years ahead: every pending attempt times out at once, and later
    // packets from "the past" are clamped, not trusted.
    h.feed(10.0 * 365.0 * 86_400.0, LinkType::Ethernet, &syn(50_003));
    assert_eq!(h.engine.flow_count(), 1);
    h.feed(101.0, LinkType::Ethernet, &syn(50_004));
    assert_eq!(h.engine.stats().time_went_backwards, 3);
    let text = h.finish();
    assert_eq!(
        value(
            &text,
            r#"podpath_tcp_connect_failures_total{path="external",reason="timeout"}"#
        ),
        3.0
    );
    // u64::MAX nanoseconds does not overflow anything.
    let mut h = Harness::new(Limits::default());
    let raw = RawPacket {
        ts: Timestamp(u64::MAX),
        link: LinkType::Ethernet,
        data: &syn(1),
        orig_len: 0,
        packet_type: None,
        interface: 0,
    };
    h.engine.process(&raw, &mut NullSink);
    h.engine.process(
        &RawPacket {
            ts: Timestamp(0),
            ..raw
        },
        &mut NullSink,
    );
    h.engine.finish(&mut NullSink);
    assert_eq!(h.engine.stats().packets, 2);
}

#[test]
fn long_ipv6_extension_header_chains_are_skipped_and_counted() {
    let mut h = Harness::new(Limits::default());
    let src: IpAddr = "fd00::1".parse().unwrap();
    let dst: IpAddr = "fd00::53".parse().unwrap();
    let q = query(5, "v6.example.", RecordType::AAAA);
    for (i, n) in [2usize, 8, 9, 64, 200].into_iter().enumerate() {
        let mut b = FrameBuilder::new(src, dst)
            .udp(40000 + i as u16, 53)
            .payload(&q);
        for k in 0..n {
            b = b.ipv6_ext(match k % 3 {
                0 => Ipv6Ext::HopByHop { len: 0 },
                1 => Ipv6Ext::DestinationOptions { len: 255 },
                _ => Ipv6Ext::Routing { len: 1 },
            });
        }
        h.feed(i as f64, LinkType::Ethernet, &b.build());
    }
    let text = h.finish();
    // Chains up to the decoder's limit (8) are followed; longer ones are skipped.
    assert_eq!(h.engine.dns().stats().wire_messages.0, 2);
    assert_eq!(
        value(
            &text,
            r#"podpath_decode_skipped_total{reason="ipv6_extension_chain"}"#
        ),
        3.0
    );
}

#[test]
fn ip_fragments_reassemble_and_floods_of_them_are_bounded() {
    let mut h = Harness::new(Limits {
        max_fragment_datagrams: 64,
        ..Limits::default()
    });
    // A 3 000-byte DNS answer over UDP, fragmented (IPv4 and IPv6), sent
    // last fragment first.
    let name = "frag.example.";
    let records: Vec<Record> = (0..150u32)
        .map(|i| a_record(name, (0x0a01_0000 + i).to_be_bytes()))
        .collect();
    let answer = response(7, name, records);
    assert!(answer.len() > 2_000);
    let mut t = 0.0;
    for (v6, port) in [(false, 40000u16), (true, 40001)] {
        let (pod, dns): (IpAddr, IpAddr) = if v6 {
            ("fd00::1".parse().unwrap(), "fd00::53".parse().unwrap())
        } else {
            (ip(POD), ip(KUBE_DNS))
        };
        let q = FrameBuilder::new(pod, dns)
            .udp(port, 53)
            .payload(&query(7, name, RecordType::A))
            .build();
        h.feed(t, LinkType::Ethernet, &q);
        let frags = FrameBuilder::new(dns, pod)
            .udp(53, port)
            .payload(&answer)
            .build_fragments(1232);
        assert_eq!(frags.len(), 3);
        for f in frags.iter().rev() {
            t += 0.001;
            h.feed(t, LinkType::Ethernet, f);
        }
    }
    assert_eq!(h.engine.dns().stats().wire_messages, (2, 2));
    assert_eq!(h.engine.defrag().stats().reassembled, 2);

    // 10 000 first fragments of distinct datagrams that never complete.
    let mut rng = Rng(7);
    for i in 0..10_000u32 {
        let frags = FrameBuilder::new(ip([198, 51, 100, (i % 200) as u8]), ip(POD))
            .udp(53, 40000)
            .payload(&[0u8; 64])
            .build_fragments(32);
        let mut first = frags[0].clone();
        // A distinct IPv4 identification per datagram (bytes 18..20 of the frame).
        first[18..20].copy_from_slice(&((rng.next() as u16) ^ i as u16).to_be_bytes());
        first[18] = (i >> 8) as u8;
        first[19] = i as u8;
        t += 0.0001;
        h.feed(t, LinkType::Ethernet, &first);
        assert!(h.engine.defrag().len() <= 64);
    }
    assert!(h.engine.defrag().buffered_bytes() <= 64 * 128);
    // Overlapping fragments (same offset, different data) drop their datagram.
    let base = FrameBuilder::new(ip(KUBE_DNS), ip(POD))
        .udp(53, 40009)
        .payload(&[1u8; 64])
        .build_fragments(32);
    let other = FrameBuilder::new(ip(KUBE_DNS), ip(POD))
        .udp(53, 40009)
        .payload(&[2u8; 64])
        .build_fragments(32);
    h.feed(t + 0.001, LinkType::Ethernet, &base[1]);
    h.feed(t + 0.002, LinkType::Ethernet, &other[1]);
    let text = h.finish();

    let evictions = value(&text, r#"podpath_table_evictions_total{table="fragments"}"#);
    // The flood evicted 10 000 − 64 datagrams, the overlap test's first
    // fragment one more; every fragment of the flood was counted once.
    assert_eq!(evictions, (10_000 - 64 + 1) as f64);
    assert_eq!(
        value(&text, r#"podpath_decode_skipped_total{reason="fragment"}"#),
        10_000.0
    );
    assert_eq!(
        value(
            &text,
            r#"podpath_decode_skipped_total{reason="fragment_overlap"}"#
        ),
        2.0
    );
    assert!(h.engine.defrag().is_empty());
}

/// A capture cut inside its last record (tcpdump killed mid-write): every
/// whole record is analysed, the cut one is counted as skipped and named on
/// stderr, and the exit status is 0.
#[test]
fn capture_file_cut_inside_a_record_keeps_every_whole_record() {
    let whole = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/captures/seed-any.pcap"
    ))
    .unwrap();
    let run = |bytes: &[u8], name: &str| {
        let path = std::env::temp_dir().join(format!("podpath-{name}-{}.pcap", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
            .args(["analyze", "--format", "json"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (full, _) = run(&whole, "whole");
    let (cut, stderr) = run(&whole[..whole.len() - 10], "cut");
    let packets = |j: &serde_json::Value| j["stats"]["packets"].as_u64().unwrap();
    assert_eq!(packets(&cut) + 1, packets(&full));
    assert_eq!(cut["skipped"]["truncated_record"], 1, "{cut}");
    assert!(
        stderr.contains("file ends in the middle of a packet record"),
        "{stderr}"
    );
    // Cut inside the 16-byte header of the last record, too (the file is
    // little-endian legacy pcap: a 24-byte file header, then records).
    let mut last = 24;
    let mut at = 24;
    while at + 16 <= whole.len() {
        last = at;
        let caplen = u32::from_le_bytes(whole[at + 8..at + 12].try_into().unwrap());
        at += 16 + caplen as usize;
    }
    assert_eq!(at, whole.len());
    let (cut, _) = run(&whole[..last + 8], "cut-header");
    assert_eq!(packets(&cut) + 1, packets(&full));
    assert_eq!(cut["skipped"]["truncated_record"], 1, "{cut}");
}
