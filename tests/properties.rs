//! Property tests of the entry points the fuzz targets cover (see
//! docs/FUZZING.md), small enough to run on every `cargo test`: random frames
//! and time steps through the engine (with and without the metrics
//! exporter), the decode pipeline's entry point (`Defrag::decode`) on any
//! frame and on fragments in any order, and the HTTP/1 tracker.

use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;

use podpath::capture::RawPacket;
use podpath::config::{Limits, PodConfig};
use podpath::decode::build::{FrameBuilder, Ipv6Ext};
use podpath::decode::{LinkType, Packet, Transport};
use podpath::defrag::testkit::check_entry_point;
use podpath::defrag::{Decoded, Defrag, DropReason, Expired};
use podpath::engine::{Engine, NullSink};
use podpath::http::Http1;
use podpath::metrics::{Metrics, MetricsSink};
use podpath::Timestamp;

const PORTS: [u16; 5] = [53, 80, 8080, 40000, 40001];

fn addr(i: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i % 4) + 1].into())
    } else {
        IpAddr::V4([10, 0, 0, i % 4 + 1].into())
    }
}

/// A DNS message with `answers` A records for a fixed name.
fn dns(id: u16, response: bool, answers: u8) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(if response {
        &[0x81, 0x80]
    } else {
        &[0x01, 0x00]
    });
    m.extend_from_slice(&[0, 1, 0, if response { answers } else { 0 }, 0, 0, 0, 0]);
    m.extend_from_slice(b"\x03api\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01");
    if response {
        for i in 0..answers {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, i]);
        }
    }
    m
}

#[derive(Clone, Debug)]
enum Payload {
    Dns(u16, bool, u8),
    Http(bool),
    Raw(Vec<u8>),
}

impl Payload {
    fn bytes(&self, tcp: bool) -> Vec<u8> {
        match self {
            Payload::Dns(id, response, answers) => {
                let m = dns(*id % 4, *response, *answers % 8);
                if tcp {
                    let mut out = (m.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&m);
                    out
                } else {
                    m
                }
            }
            Payload::Http(true) => b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            Payload::Http(false) => b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            Payload::Raw(b) => b.clone(),
        }
    }
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<u16>(), any::<bool>(), any::<u8>()).prop_map(|(i, r, a)| Payload::Dns(i, r, a)),
        any::<bool>().prop_map(Payload::Http),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Payload::Raw),
    ]
}

/// One input frame (or several, when split into fragments) and a time step
/// in milliseconds (negative: time goes backwards).
#[derive(Clone, Debug)]
struct Step {
    millis: i32,
    link: usize,
    frames: Vec<Vec<u8>>,
}

fn step() -> impl Strategy<Value = Step> {
    let built = (
        0..LinkType::ALL.len(),
        any::<bool>(),
        (any::<u8>(), any::<u8>()),
        (0..PORTS.len(), 0..PORTS.len()),
        (0u8..3, any::<u8>(), 0u32..4096),
        payload(),
        (proptest::option::of(8usize..600), 0usize..3),
        proptest::option::of(0usize..200),
    )
        .prop_map(
            |(link, v6, (s, d), (sp, dp), (kind, flags, seq), payload, (split, ext), snap)| {
                let mut b = FrameBuilder::new(addr(s, v6), addr(d, v6)).link(LinkType::ALL[link]);
                let tcp = kind == 0;
                b = match kind {
                    0 => b.tcp(PORTS[sp], PORTS[dp]).flags(flags & 0x1f).seq(seq),
                    1 => b.udp(PORTS[sp], PORTS[dp]),
                    _ => b.icmp_port_unreachable(
                        &FrameBuilder::new(addr(d, v6), addr(s, v6)).udp(PORTS[dp], 53),
                    ),
                };
                for _ in 0..ext {
                    b = b.ipv6_ext(Ipv6Ext::DestinationOptions { len: 0 });
                }
                b = b.payload(&payload.bytes(tcp));
                let mut frames = match split {
                    Some(chunk) => b.build_fragments(chunk),
                    None => vec![b.build()],
                };
                if let Some(n) = snap {
                    for f in &mut frames {
                        f.truncate(n);
                    }
                }
                (link, frames)
            },
        );
    let raw = (
        0..LinkType::ALL.len(),
        proptest::collection::vec(any::<u8>(), 0..128),
    )
        .prop_map(|(link, bytes)| (link, vec![bytes]));
    (
        prop_oneof![4 => built, 1 => raw],
        prop_oneof![8 => 0i32..2000, 1 => -5000i32..0, 1 => Just(100_000_000)],
    )
        .prop_map(|((link, frames), millis)| Step {
            millis,
            link,
            frames,
        })
}

/// A UDP packet's fields, owned: addresses, ports, captured payload, declared length.
type UdpFields = Option<(IpAddr, IpAddr, u16, u16, Vec<u8>, u32)>;

fn udp_of(p: &Packet<'_>) -> UdpFields {
    match p.transport {
        Transport::Udp(u) => Some((
            p.src,
            p.dst,
            u.src_port,
            u.dst_port,
            u.payload.to_vec(),
            u.payload_len,
        )),
        _ => None,
    }
}

fn limits() -> Limits {
    Limits {
        max_flows: 16,
        max_label_values: 4,
        max_series: 16,
        max_dns_pending: 16,
        max_dns_names: 16,
        max_dns_streams: 4,
        max_http_pending: 4,
        max_records: 64,
        max_fragment_datagrams: 4,
    }
}

fn replay(steps: &[Step], mut f: impl FnMut(&RawPacket<'_>)) {
    let mut ts: i64 = 1_700_000_000_000;
    for s in steps {
        ts = (ts + i64::from(s.millis)).max(0);
        for data in &s.frames {
            f(&RawPacket {
                ts: Timestamp(ts as u64 * 1_000_000),
                link: LinkType::ALL[s.link],
                data,
                orig_len: data.len() as u32,
                packet_type: None,
                interface: 0,
            });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn engine_survives_random_traffic_within_its_bounds(
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let mut engine = Engine::new(PodConfig { limits: limits(), ..PodConfig::default() });
        let mut packets = 0u64;
        replay(&steps, |p| {
            packets += 1;
            engine.process(p, &mut NullSink);
            assert!(engine.flow_count() <= 16);
            assert!(engine.defrag().len() <= 4);
        });
        engine.finish(&mut NullSink);
        let stats = engine.stats();
        prop_assert_eq!(stats.packets, packets);
        prop_assert!(stats.skipped <= packets);
        prop_assert!(engine.dns().stats().names <= 16);
        prop_assert!(engine.defrag().is_empty());
    }

    #[test]
    fn metrics_stay_within_label_caps(
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let cfg = PodConfig {
            service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
            limits: limits(),
            ..PodConfig::default()
        };
        let mut engine = Engine::new(cfg);
        let metrics = Arc::new(Metrics::new());
        let mut sink = MetricsSink::new(metrics.clone(), 4, 16);
        replay(&steps, |p| engine.process(p, &mut sink));
        engine.finish(&mut sink);
        let text = metrics.encode(true);
        prop_assert!(text.ends_with("# EOF\n"));
        let connections = text
            .lines()
            .filter(|l| l.starts_with("podpath_connections_total{"))
            .count();
        prop_assert!(connections <= 16, "{} connection series", connections);
    }

    #[test]
    fn any_frame_decodes_within_its_lengths_and_again_the_same(
        link in 0..LinkType::ALL.len(),
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        step in step(),
    ) {
        for (link, frame) in [(LinkType::ALL[link], &bytes), (LinkType::ALL[step.link], &step.frames[0])] {
            let checked = check_entry_point(link, frame);
            prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
        }
    }

    #[test]
    fn fragments_in_any_order_reassemble_to_the_datagram(
        v6 in any::<bool>(),
        len in 0usize..4000,
        chunk in 8usize..1500,
        order in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        dup in any::<prop::sample::Index>(),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        // At most MAX_FRAGMENTS pieces: more is dropped by design (tested in crates/core/src/defrag).
        let chunk = chunk.max((len + 8).div_ceil(podpath::defrag::MAX_FRAGMENTS - 8) + 8);
        let builder = FrameBuilder::new(addr(1, v6), addr(2, v6))
            .udp(53, 40000)
            .payload(&payload);
        let frames = builder.build_fragments(chunk);
        let whole_frame = builder.build();
        // A permutation (with one duplicate) of the fragments.
        let mut idx: Vec<usize> = (0..frames.len()).collect();
        for (i, o) in order.iter().enumerate() {
            let n = idx.len();
            idx.swap(i % n, o.index(n));
        }
        let at = dup.index(idx.len() + 1);
        idx.insert(at, idx[0]);
        let mut d = Defrag::new(2, 5.0);
        let mut complete = None;
        for &i in &idx {
            let mut ev = Expired::default();
            let mut buf = Vec::new();
            match d.decode(Timestamp(1), LinkType::Ethernet, &frames[i], &mut buf, &mut ev) {
                // A single fragment is a whole packet.
                Decoded::Packet(p) => {
                    prop_assert_eq!(frames.len(), 1);
                    complete = Some(udp_of(&p));
                }
                Decoded::Reassembled(p) => {
                    prop_assert!(complete.is_none(), "completed twice");
                    complete = Some(udp_of(&p));
                }
                Decoded::Held => {}
                Decoded::Skipped { reason, .. } => prop_assert_eq!(reason, DropReason::Duplicate),
                Decoded::Invalid(e) => prop_assert!(false, "invalid: {:?}", e),
            }
            prop_assert_eq!(ev, Expired::default());
        }
        let complete = complete.expect("complete");
        let whole = Defrag::new(1, 5.0)
            .decode(Timestamp(1), LinkType::Ethernet, &whole_frame, &mut Vec::new(), &mut Expired::default())
            .packet()
            .map(|p| udp_of(&p));
        prop_assert_eq!(Some(&complete), whole.as_ref());
        prop_assert_eq!(&complete.as_ref().expect("UDP").4, &payload);
    }

    #[test]
    fn http1_tracker_stays_bounded(
        steps in proptest::collection::vec(
            (any::<bool>(), any::<u32>(), payload(), any::<bool>()), 0..60),
    ) {
        let mut h = Http1::new(4);
        let mut ts = Timestamp(1);
        for (request, seq, p, tcp) in &steps {
            ts = ts.add_secs(0.01);
            let bytes = p.bytes(*tcp);
            if *request {
                let _ = h.on_request_data(ts, *seq, &bytes);
            } else if let Some(ex) = h.on_response_data(ts, *seq, &bytes) {
                prop_assert!(ex.latency_secs >= 0.0);
            }
            prop_assert!(h.pending() <= 4);
        }
    }
}
