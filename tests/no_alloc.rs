//! The hot path allocates nothing: once a connection is established, its data
//! segments (and the HTTP/1 requests and responses on it) go through decode,
//! the flow table and the HTTP tracker without one heap allocation. Counted
//! with a global allocator that tallies every call. Packets are 10 ms apart,
//! so the once-a-second sweeps (timeouts, byte export) are inside the window.
//! The same holds with the metrics sink: a request whose label set has a
//! series already costs no allocation.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use podpath::capture::RawPacket;
use podpath::config::PodConfig;
use podpath::decode::build::FrameBuilder;
use podpath::decode::{LinkType, TcpFlags};
use podpath::engine::{Engine, NullSink, Sink};
use podpath::metrics::{Metrics, MetricsSink};
use podpath::Timestamp;

fn frame(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: u8,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    FrameBuilder::new(src.into(), dst.into())
        .link(LinkType::LinuxSll2)
        .packet_type(if src == [10, 244, 1, 20] { 4 } else { 0 })
        .tcp(sport, dport)
        .flags(flags)
        .seq(seq)
        .payload(payload)
        .build()
}

/// One test, so that no other test allocates while the counter counts.
#[test]
fn established_traffic_allocates_nothing_per_packet() {
    established_traffic(&mut NullSink);
    let metrics = std::sync::Arc::new(Metrics::new());
    let mut sink = MetricsSink::new(metrics.clone(), 100, 2000);
    established_traffic(&mut sink);
    let text = metrics.encode(false);
    // The requests reached the metrics (warm-up and measured ones alike).
    assert!(
        text.contains(r#"podpath_http_requests_total{path="cluster_ip",service="",method="GET",code="200",protocol="http1"} 500"#),
        "{text}"
    );
}

fn established_traffic(sink: &mut dyn Sink) {
    let pod = [10, 244, 1, 20];
    let server = [10, 96, 100, 10];
    let req = b"GET / HTTP/1.1\r\nHost: demo-app\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
    let setup = [
        frame(pod, 40000, server, 80, TcpFlags::SYN, 1, b""),
        frame(
            server,
            80,
            pod,
            40000,
            TcpFlags::SYN | TcpFlags::ACK,
            1000,
            b"",
        ),
        frame(pod, 40000, server, 80, TcpFlags::ACK, 2, b""),
    ];
    // Keep-alive traffic: request, response, ACK, repeated; sequence numbers advance.
    let mut steady = Vec::new();
    let (mut cseq, mut sseq) = (2u32, 1001u32);
    for _ in 0..500 {
        steady.push(frame(
            pod,
            40000,
            server,
            80,
            TcpFlags::PSH | TcpFlags::ACK,
            cseq,
            req,
        ));
        cseq += req.len() as u32;
        steady.push(frame(
            server,
            80,
            pod,
            40000,
            TcpFlags::PSH | TcpFlags::ACK,
            sseq,
            resp,
        ));
        sseq += resp.len() as u32;
        steady.push(frame(pod, 40000, server, 80, TcpFlags::ACK, cseq, b""));
    }
    let cfg = PodConfig {
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
        ..PodConfig::default()
    };
    let mut engine = Engine::new(cfg);
    let t0 = 1_700_000_000.0;
    fn raw(data: &[u8], t: f64) -> RawPacket<'_> {
        RawPacket {
            ts: Timestamp::from_secs_f64(t),
            link: LinkType::LinuxSll2,
            data,
            orig_len: data.len() as u32,
            packet_type: None,
            interface: 0,
        }
    }
    let start = counting_alloc::allocations();
    for (i, f) in setup.iter().enumerate() {
        engine.process(&raw(f, t0 + i as f64 * 1e-2), sink);
    }
    // Warm-up: the first request allocates the connection's HTTP state,
    // the first byte export (a sweep, past 1 s) its series.
    const WARM: usize = 150;
    for (i, f) in steady.iter().take(WARM).enumerate() {
        engine.process(&raw(f, t0 + (10 + i) as f64 * 1e-2), sink);
    }
    let before = counting_alloc::allocations();
    // The counter works: opening the flow and its HTTP state did allocate.
    assert!(
        before > start,
        "setup made no allocation: the counter is not counting"
    );
    let n = steady.len() - WARM;
    for (i, f) in steady.iter().skip(WARM).enumerate() {
        engine.process(&raw(f, t0 + (10 + WARM + i) as f64 * 1e-2), sink);
    }
    let after = counting_alloc::allocations();
    assert_eq!(
        after - before,
        0,
        "{} allocations over {n} packets",
        after - before
    );
    assert_eq!(engine.stats().packets as usize, setup.len() + steady.len());
    assert_eq!(engine.flow_count(), 1);
}
