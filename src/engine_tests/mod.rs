//! Engine scenarios built from frames (decode's builder) and DNS messages
//! (hickory-proto), checked through the report and the exposition text.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::attribution::Path;
use crate::capture::RawPacket;
use crate::config::PodConfig;
use crate::decode::build::FrameBuilder;
use crate::decode::{LinkType, TcpFlags};
use crate::dns::wire::testkit::{a, query_bytes, response_bytes};
use crate::engine::*;
use crate::flow::TcpState;
use crate::metrics::{Metrics, MetricsSink};
use crate::report::{Outcome, Report};
use crate::Timestamp;
use std::net::SocketAddr;

const POD: &str = "10.244.1.20";
const KUBE_DNS: &str = "10.96.0.10";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Run {
    engine: Engine,
    report: Report,
    metrics: Arc<Metrics>,
    sink: MetricsSink,
    t: f64,
    link: LinkType,
}

#[allow(clippy::too_many_arguments)]
impl Run {
    fn new(link: LinkType) -> Run {
        Run::with(link, |_| {})
    }

    /// A run whose config the test adjusts before the engine is built.
    fn with(link: LinkType, adjust: impl FnOnce(&mut PodConfig)) -> Run {
        let mut cfg = PodConfig {
            service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
            pod_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
            namespace: Some("default".into()),
            ..PodConfig::default()
        };
        adjust(&mut cfg);
        let metrics = Arc::new(Metrics::new());
        Run {
            engine: Engine::new(cfg),
            report: Report::new(1000),
            sink: MetricsSink::new(metrics.clone(), 100, 2000),
            metrics,
            t: 1_700_000_000.0,
            link,
        }
    }

    fn feed(&mut self, frame: FrameBuilder, pkttype: Option<u16>) {
        self.t += 0.001;
        let mut frame = frame.link(self.link);
        if let Some(pt) = pkttype {
            frame = frame.packet_type(pt);
        }
        let bytes = frame.build();
        let raw = RawPacket {
            ts: Timestamp::from_secs_f64(self.t),
            link: self.link,
            data: &bytes,
            orig_len: bytes.len() as u32,
            packet_type: None,
            interface: 0,
        };
        let mut tee = Tee(vec![&mut self.report, &mut self.sink]);
        self.engine.process(&raw, &mut tee);
    }

    fn out_pt(&self, src: &str) -> Option<u16> {
        (self.link == LinkType::LinuxSll2).then_some(if src == POD || src.starts_with("127.") {
            4
        } else {
            0
        })
    }

    fn tcp(
        &mut self,
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        flags: u8,
        seq: u32,
        payload: &[u8],
    ) {
        let pt = self.out_pt(src);
        let f = FrameBuilder::new(ip(src), ip(dst))
            .tcp(sport, dport)
            .flags(flags)
            .seq(seq)
            .payload(payload);
        self.feed(f, pt);
    }

    /// A whole HTTP/1 exchange on a fresh connection.
    fn http(&mut self, client: &str, sport: u16, server: &str, dport: u16, status: &str) {
        const SYN: u8 = TcpFlags::SYN;
        const SA: u8 = TcpFlags::SYN | TcpFlags::ACK;
        const A: u8 = TcpFlags::ACK;
        const PA: u8 = TcpFlags::PSH | TcpFlags::ACK;
        const FA: u8 = TcpFlags::FIN | TcpFlags::ACK;
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        self.tcp(client, sport, server, dport, SYN, 100, b"");
        self.tcp(server, dport, client, sport, SA, 900, b"");
        self.tcp(client, sport, server, dport, A, 101, b"");
        self.tcp(client, sport, server, dport, PA, 101, req);
        self.tcp(server, dport, client, sport, PA, 901, resp.as_bytes());
        self.tcp(
            client,
            sport,
            server,
            dport,
            FA,
            101 + req.len() as u32,
            b"",
        );
        self.tcp(
            server,
            dport,
            client,
            sport,
            FA,
            901 + resp.len() as u32,
            b"",
        );
    }

    fn dns(
        &mut self,
        id: u16,
        name: &str,
        qtype: RecordType,
        rcode: ResponseCode,
        answer: Option<&str>,
    ) {
        let q = query_bytes(id, name, qtype);
        let pt = self.out_pt(POD);
        self.feed(
            FrameBuilder::new(ip(POD), ip(KUBE_DNS))
                .udp(41000 + id, 53)
                .payload(&q),
            pt,
        );
        let records: Vec<(&str, u32, hickory_proto::rr::RData)> = answer
            .map(|addr| vec![(name, 5, a(addr))])
            .unwrap_or_default();
        let r = response_bytes(id, name, qtype, rcode, &records);
        let pt = self.out_pt(KUBE_DNS);
        self.feed(
            FrameBuilder::new(ip(KUBE_DNS), ip(POD))
                .udp(53, 41000 + id)
                .payload(&r),
            pt,
        );
    }

    fn finish(&mut self) -> String {
        let mut tee = Tee(vec![&mut self.report, &mut self.sink]);
        self.engine.finish(&mut tee);
        self.metrics.encode(false)
    }
}

/// The seed walkthrough: localhost, pod IP, ClusterIP, `demo-app`, `demo-app.default`.
fn seed(link: LinkType, with_loopback: bool) -> (Run, String) {
    let mut r = Run::new(link);
    if with_loopback {
        r.http("127.0.0.1", 40000, "127.0.0.1", 80, "200 OK");
    }
    r.http(POD, 40001, "10.244.1.10", 80, "200 OK");
    r.http(POD, 40002, "10.96.100.10", 80, "200 OK");
    r.dns(
        1,
        "demo-app.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.96.100.10"),
    );
    r.dns(
        2,
        "demo-app.default.svc.cluster.local",
        RecordType::AAAA,
        ResponseCode::NoError,
        None,
    );
    r.http(POD, 40003, "10.96.100.10", 80, "200 OK");
    r.dns(
        3,
        "demo-app.default.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NXDomain,
        None,
    );
    r.dns(
        4,
        "demo-app.default.default.svc.cluster.local",
        RecordType::AAAA,
        ResponseCode::NXDomain,
        None,
    );
    r.dns(
        5,
        "demo-app.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.96.100.10"),
    );
    r.dns(
        6,
        "demo-app.default.svc.cluster.local",
        RecordType::AAAA,
        ResponseCode::NoError,
        None,
    );
    r.http(POD, 40004, "10.96.100.10", 80, "200 OK");
    let text = r.finish();
    (r, text)
}

fn count(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn seed_walkthrough_is_attributed_path_by_path() {
    for link in [LinkType::LinuxSll2, LinkType::Ethernet] {
        let (r, text) = seed(link, true);
        let paths: Vec<(Path, Option<&str>)> = r
            .report
            .connections
            .iter()
            .map(|c| (c.path, c.dns_name.as_deref()))
            .collect();
        assert_eq!(
            paths,
            vec![
                (Path::Loopback, None),
                (Path::PodIp, None),
                (Path::ClusterIp, None),
                (Path::Dns, Some("demo-app")),
                (Path::Dns, Some("demo-app.default")),
            ],
            "{link:?}"
        );
        assert!(r
            .report
            .connections
            .iter()
            .all(|c| c.outcome == Outcome::Connected));
        assert_eq!(r.report.http_requests.len(), 5);
        assert_eq!(
            count(
                &text,
                "podpath_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"}"
            ),
            2.0
        );
        assert_eq!(
            count(
                &text,
                "podpath_dns_queries_total{qtype=\"AAAA\",rcode=\"NXDOMAIN\"}"
            ),
            1.0
        );
        assert_eq!(count(&text, "podpath_dns_queries_total"), 6.0);
        assert_eq!(
            count(
                &text,
                "podpath_connections_total{path=\"dns\",target=\"cluster_ip\",protocol=\"tcp\",dns_name=\"demo-app.default\",service=\"demo-app\",namespace=\"default\",port=\"80\"}"
            ),
            1.0,
            "{text}"
        );
        assert_eq!(
            count(&text, "podpath_http_requests_total{path=\"pod_ip\""),
            1.0
        );
        let lookups: Vec<(&str, u32)> = r
            .report
            .lookups
            .iter()
            .map(|l| (&*l.name, l.wasted))
            .collect();
        assert_eq!(lookups, vec![("demo-app", 0), ("demo-app.default", 2)]);
        assert!(r.report.inbound.is_empty());
    }
}

#[test]
fn literal_cluster_ip_used_after_a_lookup_still_counts_as_cluster_ip_once_ttl_and_grace_pass() {
    let mut r = Run::new(LinkType::Ethernet);
    r.dns(
        1,
        "demo-app.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.96.100.10"),
    );
    r.t += 40.0; // TTL 5 s + grace 30 s
    r.http(POD, 40010, "10.96.100.10", 80, "200 OK");
    r.finish();
    let c = &r.report.connections[0];
    assert_eq!(c.path, Path::ClusterIp);
    assert_eq!(c.service.as_deref(), Some("demo-app"));
}

#[test]
fn refused_and_timed_out_attempts_are_failures_and_retransmitted_syns_are_not_attempts() {
    let mut r = Run::new(LinkType::Ethernet);
    r.tcp(POD, 50000, "10.244.1.10", 81, TcpFlags::SYN, 1, b"");
    r.tcp(
        "10.244.1.10",
        81,
        POD,
        50000,
        TcpFlags::RST | TcpFlags::ACK,
        0,
        b"",
    );
    r.tcp(POD, 50001, "10.244.1.99", 80, TcpFlags::SYN, 7, b"");
    r.t += 1.0;
    r.tcp(POD, 50001, "10.244.1.99", 80, TcpFlags::SYN, 7, b"");
    r.t += 5.0;
    // Any later packet moves packet time past the connect timeout.
    r.tcp(POD, 50002, "10.244.1.10", 80, TcpFlags::SYN, 9, b"");
    let text = r.finish();
    let outcomes: Vec<&Outcome> = r.report.connections.iter().map(|c| &c.outcome).collect();
    assert_eq!(
        outcomes,
        vec![&Outcome::Refused, &Outcome::Timeout, &Outcome::Unknown]
    );
    assert_eq!(
        count(
            &text,
            "podpath_tcp_connect_failures_total{path=\"pod_ip\",reason=\"refused\"}"
        ),
        1.0
    );
    assert_eq!(
        count(
            &text,
            "podpath_tcp_connect_failures_total{path=\"pod_ip\",reason=\"timeout\"}"
        ),
        1.0
    );
    assert_eq!(count(&text, "podpath_connections_total"), 3.0);
    assert_eq!(r.engine.stats().pending_at_end, 1);
}

#[test]
fn inbound_calls_are_kept_apart_and_own_port_is_excluded() {
    let mut r = Run::with(LinkType::LinuxSll2, |c| c.exclude_ports.push(9809));
    r.http("10.244.1.10", 33000, POD, 80, "404 Not Found");
    r.http("10.244.0.1", 33001, POD, 9809, "200 OK");
    let text = r.finish();
    assert!(r.report.connections.is_empty());
    assert_eq!(r.report.inbound.len(), 1);
    assert_eq!(
        count(
            &text,
            "podpath_inbound_connections_total{protocol=\"tcp\",port=\"80\"}"
        ),
        1.0
    );
    assert_eq!(
        count(
            &text,
            "podpath_inbound_http_requests_total{method=\"GET\",code=\"404\",protocol=\"http1\"}"
        ),
        1.0
    );
    assert!(!text.contains("9809"), "{text}");
}

/// podpath's own PTR queries (its DNS socket's port and the resolver) are
/// dropped exactly: the app's query on another port to the same server, and
/// a query from the same port number to another server, still count.
#[test]
fn podpath_own_dns_queries_are_never_the_apps() {
    let own = crate::config::OwnDnsClient {
        port: 45353,
        server: "10.96.0.10:53".parse().unwrap(),
    };
    let mut r = Run::with(LinkType::LinuxSll2, |c| c.own_dns = Some(own));
    let ptr_q = crate::ptr::build_query(77, ip("10.244.1.10")).unwrap();
    let ptr_a = response_bytes(
        77,
        "10.1.244.10.in-addr.arpa",
        RecordType::PTR,
        ResponseCode::NXDomain,
        &[],
    );
    let out = r.out_pt(POD);
    let back = r.out_pt(KUBE_DNS);
    let query = FrameBuilder::new(ip(POD), ip(KUBE_DNS))
        .udp(45353, 53)
        .payload(&ptr_q);
    r.feed(query.clone(), out);
    r.feed(
        FrameBuilder::new(ip(KUBE_DNS), ip(POD))
            .udp(53, 45353)
            .payload(&ptr_a),
        back,
    );
    // The resolver unreachable: an ICMP error quoting our query.
    r.feed(
        FrameBuilder::new(ip(KUBE_DNS), ip(POD)).icmp_port_unreachable(&query),
        back,
    );
    assert_eq!(r.engine.stats().own_dns_packets, 3);
    // The app's queries: its own port to the same server, and (hypothetically)
    // our port number towards another server.
    r.dns(
        1,
        "demo-app.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.96.100.10"),
    );
    r.feed(
        FrameBuilder::new(ip(POD), ip("10.96.0.11"))
            .udp(45353, 53)
            .payload(&ptr_q),
        out,
    );
    let text = r.finish();
    assert_eq!(r.engine.stats().own_dns_packets, 3);
    assert_eq!(
        count(
            &text,
            "podpath_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        count(&text, "podpath_dns_queries_total{qtype=\"PTR\""),
        1.0,
        "{text}"
    );
    assert_eq!(count(&text, "podpath_dns_queries_total"), 2.0, "{text}");
    assert_eq!(count(&text, "podpath_dns_malformed_total"), 0.0, "{text}");
}

#[test]
fn label_values_from_traffic_are_capped_and_folds_counted() {
    let mut r = Run::new(LinkType::Ethernet);
    r.sink = MetricsSink::new(r.metrics.clone(), 3, 2000);
    for port in 0..10u16 {
        r.tcp(
            POD,
            20000 + port,
            "198.51.100.7",
            1000 + port,
            TcpFlags::SYN,
            1,
            b"",
        );
    }
    let text = r.finish();
    assert_eq!(count(&text, "podpath_connections_total"), 10.0);
    assert_eq!(count(&text, "podpath_connections_total{path=\"external\",target=\"\",protocol=\"tcp\",dns_name=\"\",service=\"\",namespace=\"\",port=\"~other\"}"), 7.0);
    assert_eq!(
        count(
            &text,
            "podpath_label_overflow_total{metric=\"podpath_connections_total\",label=\"port\"}"
        ),
        7.0
    );
}

#[test]
fn udp_flows_count_once_per_five_tuple_until_idle() {
    let mut r = Run::new(LinkType::Ethernet);
    for _ in 0..3 {
        r.feed(
            FrameBuilder::new(ip(POD), ip("10.96.5.5"))
                .udp(45000, 9999)
                .payload(b"x"),
            None,
        );
    }
    r.t += 31.0;
    r.feed(
        FrameBuilder::new(ip(POD), ip("10.96.5.5"))
            .udp(45000, 9999)
            .payload(b"x"),
        None,
    );
    let text = r.finish();
    assert_eq!(
        count(
            &text,
            "podpath_connections_total{path=\"cluster_ip\",target=\"\",protocol=\"udp\""
        ),
        2.0
    );
}

#[test]
fn undecodable_frames_are_counted_by_reason() {
    let mut r = Run::new(LinkType::Ethernet);
    let raw = RawPacket {
        ts: Timestamp::from_secs_f64(r.t),
        link: LinkType::Ethernet,
        data: &[0u8; 10],
        orig_len: 10,
        packet_type: None,
        interface: 0,
    };
    let mut tee = Tee(vec![&mut r.report, &mut r.sink]);
    r.engine.process(&raw, &mut tee);
    let text = r.finish();
    assert_eq!(
        count(&text, "podpath_decode_skipped_total{reason=\"truncated\"}"),
        1.0
    );
}

mod capture;
mod names;
mod proto;

/// A query sent three times to a server that answers each copy SERVFAIL
/// after 7 s, then a question whose first copy is lost and whose copy sent
/// 5 s later is answered at once.
#[test]
fn dns_retransmissions_and_late_answers_are_counted_per_copy() {
    let mut r = Run::new(LinkType::Ethernet);
    let slow = "slow.default.svc.cluster.local";
    let q = query_bytes(7, slow, RecordType::A);
    let start = r.t;
    let send = |r: &mut Run, at: f64, from_pod: bool, bytes: &[u8]| {
        r.t = start + at - 0.001;
        let f = if from_pod {
            FrameBuilder::new(ip(POD), ip(KUBE_DNS)).udp(41007, 53)
        } else {
            FrameBuilder::new(ip(KUBE_DNS), ip(POD)).udp(53, 41007)
        };
        r.feed(f.payload(bytes), None);
    };
    for at in [0.0, 1.0, 2.0] {
        send(&mut r, at, true, &q);
    }
    let servfail = response_bytes(7, slow, RecordType::A, ResponseCode::ServFail, &[]);
    for at in [7.0, 8.0, 9.0] {
        send(&mut r, at, false, &servfail);
    }
    let lost = "lost.default.svc.cluster.local";
    let q = query_bytes(8, lost, RecordType::A);
    send(&mut r, 20.0, true, &q);
    send(&mut r, 25.001, true, &q);
    let ok = response_bytes(
        8,
        lost,
        RecordType::A,
        ResponseCode::NoError,
        &[(lost, 5, a("10.96.0.44"))],
    );
    send(&mut r, 25.003, false, &ok);
    r.t = start + 40.0;
    let text = r.finish();
    for (series, want) in [
        (
            "podpath_dns_queries_total{qtype=\"A\",rcode=\"TIMEOUT\"}",
            4.0,
        ),
        (
            "podpath_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"}",
            1.0,
        ),
        ("podpath_dns_retransmissions_total{qtype=\"A\"}", 3.0),
        ("podpath_dns_late_answers_total{rcode=\"SERVFAIL\"}", 3.0),
        ("podpath_dns_lookup_queries_total{dns_name=\"slow\"", 3.0),
        ("podpath_dns_lookup_queries_total{dns_name=\"lost\"", 2.0),
        (
            "podpath_dns_lookups_total{dns_name=\"lost\",form=\"short\",result=\"NOERROR\"}",
            1.0,
        ),
        (
            "podpath_dns_lookups_total{dns_name=\"slow\",form=\"short\",result=\"TIMEOUT\"}",
            1.0,
        ),
        ("podpath_dns_response_duration_seconds_count", 1.0),
    ] {
        assert_eq!(count(&text, series), want, "{series}\n{text}");
    }
    let table = r.report.to_table(&proto::context(&r));
    assert!(
        table.contains("retransmissions (same id sent again, in the total): 3"),
        "{table}"
    );
    assert!(
        table.contains("late answers (after the query timed out): 3 (SERVFAIL 3)"),
        "{table}"
    );
}

#[test]
fn tls_first_flights_share_a_cap_of_1000_bytes_per_flow() {
    // 40 connections, each sending 9 000 bytes of a 10 KB ClientHello in
    // 500-byte segments, never the rest; 8 flows tracked: without the
    // shared cap every flow would hold 9 000 bytes.
    const SYN: u8 = TcpFlags::SYN;
    const SA: u8 = TcpFlags::SYN | TcpFlags::ACK;
    const PA: u8 = TcpFlags::PSH | TcpFlags::ACK;
    let mut run = Run::new(LinkType::LinuxSll2);
    let mut cfg = run.engine.config().clone();
    cfg.limits.max_flows = 8;
    run.engine = Engine::new(cfg);
    let cap = 8 * crate::tls::FLIGHT_BYTES_PER_FLOW;
    let hello = crate::tls::hello_for_tests(Some("late.example"), &[], 10_000);
    let mut peak = 0;
    for c in 0..40u16 {
        let server = format!("198.18.0.{}", c + 1);
        run.tcp(POD, 40_000 + c, &server, 443, SYN, 100, b"");
        run.tcp(&server, 443, POD, 40_000 + c, SA, 900, b"");
        for (k, part) in hello[..9_000].chunks(500).enumerate() {
            run.tcp(
                POD,
                40_000 + c,
                &server,
                443,
                PA,
                101 + 500 * k as u32,
                part,
            );
            peak = peak.max(run.engine.held_flights());
        }
    }
    assert!(peak <= cap, "first flights held {peak} bytes, cap {cap}");
    // The cap was reached: connections past it read their hello as cut.
    assert_eq!(peak, cap);
    let mut tee = Tee(vec![&mut run.report, &mut run.sink]);
    run.engine.finish(&mut tee);
    assert_eq!(
        run.engine.held_flights(),
        0,
        "buffers give their bytes back"
    );
    let text = run.metrics.encode(false);
    assert!(
        text.contains(
            r#"podpath_tls_connections_total{path="external",sni="~unknown",alpn=""} 40"#
        ),
        "{text}"
    );
}
