//! Micro-benchmarks of the per-packet paths: `cargo bench --bench hot_paths`.
//!
//! - decode of one TCP frame (SLL2, IPv4, TCP with payload) and of a DNS
//!   response in three IPv4 fragments, through the entry point the engine
//!   uses (`Defrag::decode`);
//! - `Engine::process` of a segment on an established connection;
//! - data segments on a connection whose protocol is decided (the fast path);
//! - keep-alive HTTP/1 exchanges (the response's framing headers);
//! - the DNS exchanges of `tests/captures/rich-any.pcap` (queries and
//!   responses through the transaction and lookup trackers);
//! - the whole capture through a fresh engine;
//! - the same with the metrics sink (the difference is the sink's cost).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use podpath::capture::file::FileSource;
use podpath::capture::{Next, PacketSource, RawPacket};
use podpath::config::PodConfig;
use podpath::decode::build::FrameBuilder;
use podpath::decode::{LinkType, PacketType, TcpFlags, Transport};
use podpath::defrag::{Decoded, Defrag, Expired};
use podpath::engine::{Engine, Event, NullSink, Sink};
use podpath::metrics::{Metrics, MetricsSink};
use podpath::Timestamp;

static RICH: &[u8] = include_bytes!("../tests/captures/rich-any.pcap");

struct Frame {
    ts: Timestamp,
    link: LinkType,
    data: Vec<u8>,
    orig_len: u32,
    packet_type: Option<PacketType>,
}

impl Frame {
    fn raw(&self, shift_nanos: u64) -> RawPacket<'_> {
        RawPacket {
            ts: Timestamp(self.ts.0 + shift_nanos),
            link: self.link,
            data: &self.data,
            orig_len: self.orig_len,
            packet_type: self.packet_type,
            interface: 0,
        }
    }
}

fn rich_frames() -> Vec<Frame> {
    let mut out = Vec::new();
    let Ok(mut src) = FileSource::from_bytes("rich-any.pcap", RICH) else {
        return out;
    };
    while let Ok(Next::Packet(p)) = src.next_packet() {
        out.push(Frame {
            ts: p.ts,
            link: p.link,
            data: p.data.to_vec(),
            orig_len: p.orig_len,
            packet_type: p.packet_type,
        });
    }
    out
}

fn config() -> PodConfig {
    PodConfig {
        service_cidrs: vec!["10.96.0.0/12".parse().expect("CIDR")],
        pod_cidrs: vec!["10.244.0.0/16".parse().expect("CIDR")],
        ..PodConfig::default()
    }
}

fn tcp_frame(
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

fn raw(data: &[u8], ts: Timestamp) -> RawPacket<'_> {
    RawPacket {
        ts,
        link: LinkType::LinuxSll2,
        data,
        orig_len: data.len() as u32,
        packet_type: None,
        interface: 0,
    }
}

/// Decodes one frame the way the engine does; `None` for a fragment held
/// or a frame skipped.
fn decode<'f>(defrag: &mut Defrag, link: LinkType, frame: &'f [u8]) -> Option<Transport<'f>> {
    let mut evicted = Expired::default();
    match defrag.decode(Timestamp::ZERO, link, frame, &mut Vec::new(), &mut evicted) {
        Decoded::Packet(p) => Some(p.transport),
        _ => None,
    }
}

fn bench_decode(c: &mut Criterion) {
    let frame = tcp_frame(
        [10, 244, 1, 20],
        40000,
        [10, 96, 100, 10],
        80,
        TcpFlags::PSH | TcpFlags::ACK,
        2,
        b"GET / HTTP/1.1\r\nHost: demo-app\r\n\r\n",
    );
    let mut defrag = Defrag::new(64, 5.0);
    assert!(matches!(
        decode(&mut defrag, LinkType::LinuxSll2, &frame),
        Some(Transport::Tcp(_))
    ));
    let fragments = FrameBuilder::new([10, 96, 0, 10].into(), [10, 244, 1, 20].into())
        .link(LinkType::LinuxSll2)
        .udp(53, 40000)
        .payload(&[0x5a; 3000])
        .build_fragments(1232);
    assert_eq!(fragments.len(), 3);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tcp_frame", |b| {
        let mut buf = Vec::new();
        b.iter(|| {
            let mut evicted = Expired::default();
            // The whole result, as the engine reads it: returning a bool
            // would let the optimiser skip the fields nobody looks at.
            black_box(defrag.decode(
                Timestamp::ZERO,
                LinkType::LinuxSll2,
                black_box(&frame),
                &mut buf,
                &mut evicted,
            ));
        })
    });
    g.throughput(Throughput::Elements(fragments.len() as u64));
    g.bench_function("udp_3_fragments", |b| {
        b.iter(|| {
            let mut buf = Vec::new();
            let mut evicted = Expired::default();
            let mut done = false;
            for f in &fragments {
                let decoded = defrag.decode(
                    Timestamp::ZERO,
                    LinkType::LinuxSll2,
                    black_box(f),
                    &mut buf,
                    &mut evicted,
                );
                done = matches!(decoded, Decoded::Reassembled(_));
            }
            assert!(done);
        })
    });
    g.finish();
}

fn bench_established(c: &mut Criterion) {
    let pod = [10, 244, 1, 20];
    let server = [10, 96, 100, 10];
    let mut engine = Engine::new(config());
    let mut sink = NullSink;
    let t0 = Timestamp::from_secs_f64(1_700_000_000.0);
    for (i, f) in [
        tcp_frame(pod, 40000, server, 80, TcpFlags::SYN, 1, b""),
        tcp_frame(
            server,
            80,
            pod,
            40000,
            TcpFlags::SYN | TcpFlags::ACK,
            1000,
            b"",
        ),
        tcp_frame(pod, 40000, server, 80, TcpFlags::ACK, 2, b""),
    ]
    .iter()
    .enumerate()
    {
        engine.process(&raw(f, Timestamp(t0.0 + i as u64 * 1_000_000)), &mut sink);
    }
    let ack = tcp_frame(pod, 40000, server, 80, TcpFlags::ACK, 2, b"");
    let mut t = t0.0 + 10_000_000;
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.bench_function("established_segment", |b| {
        b.iter(|| {
            // 1 µs apart: the once-a-second sweep is part of the cost.
            t += 1_000;
            engine.process(&raw(black_box(&ack), Timestamp(t)), &mut sink);
        })
    });
    g.finish();
    assert_eq!(engine.flow_count(), 1);
}

/// A connection to a pod IP after its handshake and first client payload
/// `first`, frames 1 ms apart.
fn engine_after(first: &[u8]) -> (Engine, u64) {
    let pod = [10, 244, 1, 20];
    let server = [10, 244, 2, 5];
    let mut engine = Engine::new(config());
    let mut sink = NullSink;
    let t0 = Timestamp::from_secs_f64(1_700_000_000.0);
    for (i, f) in [
        tcp_frame(pod, 40000, server, 8080, TcpFlags::SYN, 1, b""),
        tcp_frame(
            server,
            8080,
            pod,
            40000,
            TcpFlags::SYN | TcpFlags::ACK,
            1000,
            b"",
        ),
        tcp_frame(pod, 40000, server, 8080, TcpFlags::ACK, 2, b""),
        tcp_frame(
            pod,
            40000,
            server,
            8080,
            TcpFlags::PSH | TcpFlags::ACK,
            2,
            first,
        ),
    ]
    .iter()
    .enumerate()
    {
        engine.process(&raw(f, Timestamp(t0.0 + i as u64 * 1_000_000)), &mut sink);
    }
    (engine, t0.0 + 10_000_000)
}

/// Data both ways on a connection whose protocol is decided (nothing is
/// read of it any more: here its first payload was binary): a 1024-byte
/// server segment (the live filter's cut) and a 64-byte client one.
fn bench_opaque(c: &mut Criterion) {
    let pod = [10, 244, 1, 20];
    let server = [10, 244, 2, 5];
    let (mut engine, mut t) = engine_after(b"\x00\x00\x00\x08\x04\xd2\x16\x2f");
    let mut sink = NullSink;
    let down = tcp_frame(server, 8080, pod, 40000, TcpFlags::ACK, 1000, &[0x17; 1024]);
    let up = tcp_frame(
        pod,
        40000,
        server,
        8080,
        TcpFlags::PSH | TcpFlags::ACK,
        10,
        &[0x17; 64],
    );
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(2));
    g.bench_function("opaque_segments", |b| {
        b.iter(|| {
            t += 1_000;
            engine.process(&raw(black_box(&down), Timestamp(t)), &mut sink);
            engine.process(&raw(black_box(&up), Timestamp(t)), &mut sink);
        })
    });
    g.finish();
    assert_eq!(engine.flow_count(), 1);
}

/// Keep-alive HTTP/1 exchanges on one connection: a request, then a
/// response with nginx's header block (9 headers) and a Content-Length.
fn bench_http1(c: &mut Criterion) {
    const EXCHANGES: u32 = 1024;
    let pod = [10, 244, 1, 20];
    let server = [10, 244, 2, 5];
    let req = b"GET /index.html HTTP/1.1\r\nHost: demo-app\r\nUser-Agent: wrk\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 615\r\nLast-Modified: Mon, 30 Nov 2026 10:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"6565-267\"\r\nAccept-Ranges: bytes\r\n\r\n";
    let first = b"OPTIONS * HTTP/1.1\r\n\r\n";
    let mut frames = Vec::new();
    let (mut cseq, mut sseq) = (2 + first.len() as u32, 1001u32);
    for _ in 0..EXCHANGES {
        frames.push(tcp_frame(
            pod,
            40000,
            server,
            8080,
            TcpFlags::PSH | TcpFlags::ACK,
            cseq,
            req,
        ));
        cseq += req.len() as u32;
        let mut payload = resp.to_vec();
        payload.extend_from_slice(&[b'x'; 615]);
        frames.push(tcp_frame(
            server,
            8080,
            pod,
            40000,
            TcpFlags::PSH | TcpFlags::ACK,
            sseq,
            &payload,
        ));
        sseq += payload.len() as u32;
    }
    // Every response completes an exchange (the first pairs with `first`).
    struct Exchanges(u32);
    impl Sink for Exchanges {
        fn on_event(&mut self, e: &Event<'_>) {
            self.0 += u32::from(matches!(e, Event::Http(_)));
        }
    }
    let (mut engine, t) = engine_after(first);
    let mut seen = Exchanges(0);
    for (i, f) in frames.iter().enumerate() {
        engine.process(&raw(f, Timestamp(t + i as u64 * 1_000)), &mut seen);
    }
    assert_eq!(seen.0, EXCHANGES);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(u64::from(EXCHANGES)));
    g.bench_function("http1_exchanges", |b| {
        b.iter_batched(
            || engine_after(first),
            |(mut engine, t)| {
                let mut sink = NullSink;
                for (i, f) in frames.iter().enumerate() {
                    engine.process(&raw(f, Timestamp(t + i as u64 * 1_000)), &mut sink);
                }
                engine
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_dns(c: &mut Criterion) {
    let frames = rich_frames();
    let mut defrag = Defrag::new(64, 5.0);
    let dns: Vec<&Frame> = frames
        .iter()
        .filter(|f| match decode(&mut defrag, f.link, &f.data) {
            Some(Transport::Udp(u)) => u.src_port == 53 || u.dst_port == 53,
            _ => false,
        })
        .collect();
    assert!(
        dns.len() >= 20,
        "rich-any.pcap has {} DNS frames",
        dns.len()
    );
    let mut engine = Engine::new(config());
    let mut sink = NullSink;
    // Each pass replays the capture's DNS a minute later than the last, so
    // transactions complete and lookups expire as they would live.
    let mut shift = 0u64;
    let mut g = c.benchmark_group("dns");
    g.throughput(Throughput::Elements(dns.len() as u64));
    g.bench_function("rich_capture_exchanges", |b| {
        b.iter(|| {
            shift += 60_000_000_000;
            for f in &dns {
                engine.process(&f.raw(shift), &mut sink);
            }
        })
    });
    g.finish();
}

fn bench_capture(c: &mut Criterion) {
    let frames = rich_frames();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("rich_capture_whole", |b| {
        b.iter_batched(
            || Engine::new(config()),
            |mut engine| {
                let mut sink = NullSink;
                for f in &frames {
                    engine.process(&f.raw(0), &mut sink);
                }
                engine.finish(&mut sink);
                engine
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_metrics(c: &mut Criterion) {
    let frames = rich_frames();
    let mut g = c.benchmark_group("metrics");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("rich_capture_whole", |b| {
        b.iter_batched(
            || {
                let metrics = std::sync::Arc::new(Metrics::new());
                (Engine::new(config()), MetricsSink::new(metrics, 100, 2000))
            },
            |(mut engine, mut sink)| {
                for f in &frames {
                    engine.process(&f.raw(0), &mut sink);
                }
                engine.finish(&mut sink);
                (engine, sink)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_established,
    bench_opaque,
    bench_http1,
    bench_dns,
    bench_capture,
    bench_metrics
);
criterion_main!(benches);
