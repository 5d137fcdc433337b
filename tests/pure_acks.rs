//! The live capture filter drops TCP pure ACKs in the kernel
//! (`podpath_afpacket::filter`, `FilterSpec::drop_pure_acks`) on the claim
//! that the engine reads nothing in them. This holds the engine to it: every
//! lab capture gives the same metrics with and without its pure ACKs (the
//! same rule as the filter's: TCP not to or from port 53, no SYN, FIN or
//! RST, payload length 0 from the IP header).

use std::sync::Arc;

use podpath::capture::file::FileSource;
use podpath::capture::{Next, PacketSource, RawPacket};
use podpath::config::PodConfig;
use podpath::decode::Transport;
use podpath::defrag::{Defrag, Expired};
use podpath::engine::Engine;
use podpath::metrics::{Metrics, MetricsSink};

const CAPTURES: [&str; 6] = [
    "seed-any.pcap",
    "seed-any-sll1.pcap",
    "seed-eth0.pcap",
    "rich-any.pcap",
    "dnsretx.pcap",
    "proto.pcap",
];

fn is_pure_ack(raw: &RawPacket<'_>) -> bool {
    // A table of one datagram: fragments are never whole packets here, so
    // none of them counts as a pure ACK (the kernel filter passes them too).
    let mut defrag = Defrag::new(1, 5.0);
    let mut reassembled = Vec::new();
    let decoded = defrag.decode(
        raw.ts,
        raw.link,
        raw.data,
        &mut reassembled,
        &mut Expired::default(),
    );
    match decoded.packet().map(|p| p.transport) {
        Some(Transport::Tcp(seg)) => {
            seg.src_port != 53
                && seg.dst_port != 53
                && !seg.flags.syn()
                && !seg.flags.fin()
                && !seg.flags.rst()
                && seg.payload_len == 0
        }
        _ => false,
    }
}

/// The exposition after the whole capture (less the process collector's),
/// its lines sorted (families keep their series in hash order), and how many
/// pure ACKs were left out.
fn metrics(file: &str, drop_pure_acks: bool) -> (Vec<String>, usize) {
    let cfg = PodConfig {
        service_cidrs: vec![
            "10.96.0.0/12".parse().unwrap(),
            "fd00:10:96::/112".parse().unwrap(),
        ],
        pod_cidrs: vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:10:244::/64".parse().unwrap(),
        ],
        ..PodConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let mut sink = MetricsSink::new(
        metrics.clone(),
        cfg.limits.max_label_values,
        cfg.limits.max_series,
    );
    let mut engine = Engine::new(cfg);
    let path = format!("{}/tests/captures/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut source = FileSource::open(&[path]).expect("open capture");
    let mut dropped = 0;
    loop {
        match source.next_packet().expect("read capture") {
            Next::Packet(p) if drop_pure_acks && is_pure_ack(&p) => dropped += 1,
            Next::Packet(p) => engine.process(&p, &mut sink),
            Next::Idle { now } => engine.advance(now, &mut sink),
            Next::End => break,
        }
    }
    engine.finish(&mut sink);
    // The process collector's own CPU and memory differ between any two runs.
    let mut lines: Vec<String> = metrics
        .encode(false)
        .lines()
        .filter(|l| !l.starts_with("process_"))
        .map(String::from)
        .collect();
    lines.sort_unstable();
    (lines, dropped)
}

#[test]
fn every_lab_capture_gives_the_same_metrics_without_its_pure_acks() {
    let mut total = 0;
    for file in CAPTURES {
        let (all, none) = metrics(file, false);
        assert_eq!(none, 0);
        let (without, dropped) = metrics(file, true);
        total += dropped;
        assert!(
            all.iter()
                .any(|l| l.starts_with("podpath_connections_total{")
                    || l.starts_with("podpath_dns_queries_total{")),
            "{file}: nothing to compare"
        );
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|l| !b.contains(l)).cloned().collect()
        };
        assert!(
            all == without,
            "{file}: {dropped} pure ACKs left out changed the metrics: with them only {:?}, without them only {:?}",
            only(&all, &without),
            only(&without, &all)
        );
    }
    assert!(
        total > 100,
        "the captures hold pure ACKs to leave out: {total}"
    );
}
