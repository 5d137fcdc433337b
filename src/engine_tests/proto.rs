//! Engine scenarios for TLS, h2c/gRPC, stale DNS and destination rewriting.

use loona_hpack::Encoder;

use super::*;
use crate::attribution::AddrClass;
use crate::dns::names::Stale;
use crate::h2::frame::{
    CONTINUATION, DATA, FLAG_END_HEADERS, FLAG_END_STREAM, HEADERS, PREFACE, SETTINGS,
};
use crate::http::Method;
use crate::tls::SniStatus;

const SYN: u8 = TcpFlags::SYN;
const SA: u8 = TcpFlags::SYN | TcpFlags::ACK;
const PA: u8 = TcpFlags::PSH | TcpFlags::ACK;
const FA: u8 = TcpFlags::FIN | TcpFlags::ACK;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn headers(enc: &mut Encoder<'_>, stream: u32, end: bool, fields: &[(&str, &str)]) -> Vec<u8> {
    let block = enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    let flags = FLAG_END_HEADERS | if end { FLAG_END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, &block)
}

/// One TCP connection's two sequence spaces, for writing segments.
struct Conn {
    client: &'static str,
    cport: u16,
    server: &'static str,
    sport: u16,
    cseq: u32,
    sseq: u32,
}

impl Conn {
    fn new(client: &'static str, cport: u16, server: &'static str, sport: u16) -> Conn {
        Conn {
            client,
            cport,
            server,
            sport,
            cseq: 100,
            sseq: 900,
        }
    }

    fn handshake(&mut self, r: &mut Run) {
        r.tcp(
            self.client,
            self.cport,
            self.server,
            self.sport,
            SYN,
            99,
            b"",
        );
        r.tcp(
            self.server,
            self.sport,
            self.client,
            self.cport,
            SA,
            899,
            b"",
        );
    }

    /// A segment of `bytes`, of which only `captured` were captured.
    fn send(&mut self, r: &mut Run, from_client: bool, bytes: &[u8], captured: usize) {
        let (src, sport, dst, dport, seq, ack) = if from_client {
            (
                self.client,
                self.cport,
                self.server,
                self.sport,
                self.cseq,
                self.sseq,
            )
        } else {
            (
                self.server,
                self.sport,
                self.client,
                self.cport,
                self.sseq,
                self.cseq,
            )
        };
        let f = FrameBuilder::new(ip(src), ip(dst))
            .tcp(sport, dport)
            .flags(PA)
            .seq(seq)
            .ack(ack)
            .payload(bytes);
        let pt = r.out_pt(src);
        feed_cut(r, f, pt, bytes.len() - captured.min(bytes.len()));
        if from_client {
            self.cseq = self.cseq.wrapping_add(bytes.len() as u32);
        } else {
            self.sseq = self.sseq.wrapping_add(bytes.len() as u32);
        }
    }

    fn close(&mut self, r: &mut Run) {
        let (c, s) = (self.cseq, self.sseq);
        r.tcp(self.client, self.cport, self.server, self.sport, FA, c, b"");
        r.tcp(self.server, self.sport, self.client, self.cport, FA, s, b"");
    }
}

/// Feeds a frame with its last `cut` bytes not captured (a snap length).
fn feed_cut(r: &mut Run, frame: FrameBuilder, pkttype: Option<u16>, cut: usize) {
    r.t += 0.001;
    let mut frame = frame.link(r.link);
    if let Some(pt) = pkttype {
        frame = frame.packet_type(pt);
    }
    let mut bytes = frame.build();
    let orig_len = bytes.len() as u32;
    bytes.truncate(bytes.len() - cut);
    let raw = RawPacket {
        ts: Timestamp::from_secs_f64(r.t),
        link: r.link,
        data: &bytes,
        orig_len,
        packet_type: None,
        interface: 0,
    };
    let mut tee = Tee(vec![&mut r.report, &mut r.sink]);
    r.engine.process(&raw, &mut tee);
}

#[test]
fn tls_sni_confirms_the_dns_name_and_a_cut_hello_is_unknown() {
    use crate::tls::hello_for_tests as hello;
    let mut r = Run::new(LinkType::LinuxSll2);
    r.dns(
        1,
        "api.example.com",
        RecordType::A,
        ResponseCode::NoError,
        Some("203.0.113.10"),
    );
    // A hello in two segments, SNI as the app looked it up.
    let h = hello(Some("api.example.com"), &["h2", "http/1.1"], 200);
    let mut c = Conn::new(POD, 40100, "203.0.113.10", 443);
    c.handshake(&mut r);
    let (a, b) = h.split_at(150);
    c.send(&mut r, true, a, a.len());
    c.send(&mut r, true, b, b.len());
    c.send(&mut r, false, &[22, 3, 3, 0, 2, 2, 0], 7);
    c.close(&mut r);
    // A literal external address, a 1500-byte hello captured to 1024 bytes
    // with the SNI past the cut.
    let long = hello(Some("late.example"), &[], 1300);
    let mut c = Conn::new(POD, 40101, "198.51.100.7", 443);
    c.handshake(&mut r);
    c.send(&mut r, true, &long, 1024);
    // No SNI at all.
    let mut c = Conn::new(POD, 40102, "198.51.100.8", 443);
    c.handshake(&mut r);
    c.send(&mut r, true, &hello(None, &[], 0), usize::MAX);
    let text = r.finish();
    let got: Vec<_> = r
        .report
        .tls
        .iter()
        .map(|t| {
            (
                t.path,
                t.sni.as_deref(),
                t.sni_status,
                t.alpn.as_deref(),
                t.dns_check,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Path::Dns,
                Some("api.example.com"),
                SniStatus::Present,
                Some("h2"),
                Some(SniCheck::Confirmed)
            ),
            (Path::External, None, SniStatus::Unknown, None, None),
            (Path::External, None, SniStatus::Absent, None, None),
        ]
    );
    assert_eq!(
        count(
            &text,
            "podpath_tls_connections_total{path=\"dns\",sni=\"api.example.com\",alpn=\"h2\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        count(
            &text,
            "podpath_tls_connections_total{path=\"external\",sni=\"~unknown\",alpn=\"\"}"
        ),
        1.0
    );
    assert_eq!(
        count(
            &text,
            "podpath_tls_connections_total{path=\"external\",sni=\"~none\",alpn=\"\"}"
        ),
        1.0
    );
    assert_eq!(
        count(
            &text,
            "podpath_tls_sni_confirms_dns_total{dns_name=\"api.example.com\"}"
        ),
        1.0
    );
    // TLS bytes are not HTTP/1.
    assert!(r.report.http_requests.is_empty());
    let table = r.report.to_table(&context(&r));
    assert!(table.contains("TLS connections"), "{table}");
    assert!(table.contains("api.example.com"), "{table}");
}

pub(super) fn context(r: &Run) -> crate::report::Context<'_> {
    crate::report::Context {
        inputs: vec!["test".into()],
        span_secs: 1.0,
        stats: r.engine.stats(),
        inferred: &[],
        local: r.engine.local_addresses(),
        configured: vec![],
        dns: r.engine.dns().stats(),
        namespace: None,
    }
}

const GRPC_REQ: &[(&str, &str)] = &[
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/demo.Echo/Say"),
    (":authority", "echo:50051"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
];

#[test]
fn h2c_and_grpc_requests_join_the_http_metrics() {
    let mut r = Run::new(LinkType::Ethernet);
    r.dns(
        1,
        "echo.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.96.50.5"),
    );
    let (mut ce, mut se) = (Encoder::new(), Encoder::new());
    let mut c = Conn::new(POD, 40200, "10.96.50.5", 50051);
    c.handshake(&mut r);
    // The server's SETTINGS may come before the client preface.
    c.send(&mut r, false, &frame(SETTINGS, 0, 0, &[]), usize::MAX);
    let mut first = PREFACE.to_vec();
    first.extend(frame(SETTINGS, 0, 0, &[]));
    first.extend(headers(&mut ce, 1, false, GRPC_REQ));
    first.extend(frame(DATA, FLAG_END_STREAM, 1, &[0, 0, 0, 0, 2, 8, 1]));
    c.send(&mut r, true, &first, usize::MAX);
    let ok = [(":status", "200"), ("content-type", "application/grpc")];
    let mut resp = headers(&mut se, 1, false, &ok);
    resp.extend(frame(DATA, 0, 1, &[0, 0, 0, 0, 0]));
    resp.extend(headers(&mut se, 1, true, &[("grpc-status", "0")]));
    c.send(&mut r, false, &resp, usize::MAX);
    // Second call: header block split into HEADERS + CONTINUATION; the
    // server answers trailers-only with UNAVAILABLE.
    let block = ce.encode(GRPC_REQ.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    let (x, y) = block.split_at(3);
    let mut second = frame(HEADERS, 0, 3, x);
    second.extend(frame(CONTINUATION, FLAG_END_HEADERS, 3, y));
    second.extend(frame(DATA, FLAG_END_STREAM, 3, &[0, 0, 0, 0, 0]));
    c.send(&mut r, true, &second, usize::MAX);
    let trailers_only = [
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", "14"),
    ];
    c.send(
        &mut r,
        false,
        &headers(&mut se, 3, true, &trailers_only),
        usize::MAX,
    );
    // A plain h2 GET on the same connection.
    c.send(
        &mut r,
        true,
        &headers(
            &mut ce,
            5,
            true,
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/healthz"),
            ],
        ),
        usize::MAX,
    );
    c.send(
        &mut r,
        false,
        &headers(&mut se, 5, true, &[(":status", "503")]),
        usize::MAX,
    );
    c.close(&mut r);
    let text = r.finish();
    let got: Vec<_> = r
        .report
        .http_requests
        .iter()
        .map(|h| (h.protocol, h.method, h.status, h.grpc_status))
        .collect();
    assert_eq!(
        got,
        vec![
            (AppProtocol::Grpc, Method::Post, 200, Some(0)),
            (AppProtocol::Grpc, Method::Post, 200, Some(14)),
            (AppProtocol::H2, Method::Get, 503, None),
        ]
    );
    assert!(r
        .report
        .http_requests
        .iter()
        .all(|h| h.path == Some(Path::Dns) && h.service.as_deref() == Some("echo")));
    assert_eq!(
        count(
            &text,
            "podpath_http_requests_total{path=\"dns\",service=\"echo\",method=\"POST\",code=\"200\",protocol=\"grpc\"}"
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        count(
            &text,
            "podpath_grpc_requests_total{path=\"dns\",service=\"echo\",grpc_status=\"14\"}"
        ),
        1.0
    );
    assert_eq!(
        count(
            &text,
            "podpath_http_requests_total{path=\"dns\",service=\"echo\",method=\"GET\",code=\"503\",protocol=\"h2\"}"
        ),
        1.0
    );
    let table = r.report.to_table(&context(&r));
    assert!(table.contains("grpc"), "{table}");
}

#[test]
fn h2_joined_mid_connection_counts_streams_without_hpack_context() {
    let mut r = Run::new(LinkType::LinuxSll2);
    let (mut ce, mut se) = (Encoder::new(), Encoder::new());
    // Earlier, unseen blocks filled both dynamic tables.
    let _ = ce.encode(GRPC_REQ.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    let _ = se.encode([(&b":status"[..], &b"200"[..])]);
    // (A joined connection's client is guessed from the ports: the higher
    // one is taken as the ephemeral side.)
    let mut c = Conn::new(POD, 40300, "10.244.7.7", 8080);
    let mut req = headers(&mut ce, 101, false, GRPC_REQ);
    req.extend(frame(DATA, FLAG_END_STREAM, 101, &[0, 0, 0, 0, 0]));
    c.send(&mut r, true, &req, usize::MAX);
    let mut resp = headers(&mut se, 101, false, &[(":status", "200")]);
    resp.extend(headers(&mut se, 101, true, &[("grpc-status", "0")]));
    c.send(&mut r, false, &resp, usize::MAX);
    let text = r.finish();
    assert!(r.report.http_requests.is_empty());
    assert_eq!(
        r.report.h2_unread.get(&("outbound", "no_hpack_context")),
        Some(&1)
    );
    assert_eq!(
        count(
            &text,
            "podpath_h2_streams_unread_total{direction=\"outbound\",path=\"pod_ip\",reason=\"no_hpack_context\"}"
        ),
        1.0,
        "{text}"
    );
}

#[test]
fn stale_dns_by_latest_answer_and_by_ttl() {
    let mut r = Run::new(LinkType::LinuxSll2);
    let name = "db.default.svc.cluster.local";
    r.dns(
        1,
        name,
        RecordType::A,
        ResponseCode::NoError,
        Some("10.244.2.5"),
    );
    r.t += 2.0;
    // The headless Service's pod changed; the client keeps the old address.
    r.dns(
        2,
        name,
        RecordType::A,
        ResponseCode::NoError,
        Some("10.244.2.6"),
    );
    r.http(POD, 40400, "10.244.2.5", 5432, "200 OK");
    r.http(POD, 40401, "10.244.2.6", 5432, "200 OK");
    // Past the 5 s TTL (by more than the 1 s slack), within the grace period.
    r.t += 7.0;
    r.http(POD, 40402, "10.244.2.6", 5432, "200 OK");
    let text = r.finish();
    let got: Vec<_> = r
        .report
        .connections
        .iter()
        .map(|c| (c.path, c.target, c.stale_dns))
        .collect();
    let pod = Some(AddrClass::PodIp);
    assert_eq!(
        got,
        vec![
            (Path::Dns, pod, Some(Stale::NotInLatestAnswer)),
            (Path::Dns, pod, None),
            (Path::Dns, pod, Some(Stale::PastTtl)),
        ]
    );
    assert_eq!(
        count(
            &text,
            "podpath_dns_stale_connections_total{path=\"dns\",dns_name=\"db\",reason=\"not_in_latest_answer\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        count(
            &text,
            "podpath_dns_stale_connections_total{path=\"dns\",dns_name=\"db\",reason=\"past_ttl\"}"
        ),
        1.0
    );
    let table = r.report.to_table(&context(&r));
    assert!(table.contains("stale DNS answer"), "{table}");
}

/// A lookup answering the ClusterIP, then at once a connection to a pod IP.
fn rewritten_call(r: &mut Run, id: u16, pod_ip: &str, sport: u16) {
    r.dns(
        id,
        "demo-app.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.96.100.10"),
    );
    r.http(POD, sport, pod_ip, 8080, "200 OK");
    r.t += 3.0;
}

#[test]
fn destination_rewrite_is_attributed_to_the_name_from_the_first_connection() {
    let mut r = Run::new(LinkType::LinuxSll2);
    for (i, sport) in (0..4).zip(40500u16..) {
        rewritten_call(&mut r, 10 + i, "10.244.3.7", sport);
    }
    let text = r.finish();
    let got: Vec<_> = r
        .report
        .connections
        .iter()
        .map(|c| (c.path, c.target, c.dns_name.as_deref(), c.rewritten))
        .collect();
    let rewritten = (Path::Dns, Some(AddrClass::PodIp), Some("demo-app"), true);
    assert_eq!(got, vec![rewritten, rewritten, rewritten, rewritten]);
    assert!(r.engine.rewrite_detected());
    assert_eq!(r.report.rewrites.len(), 1);
    assert_eq!(r.report.rewrites[0].evidence, 3);
    assert_eq!(count(&text, "podpath_destination_rewrite_detected "), 1.0);
    assert_eq!(
        count(
            &text,
            "podpath_rewritten_connections_total{dns_name=\"demo-app\",port=\"8080\"}"
        ),
        4.0,
        "{text}"
    );
    let table = r.report.to_table(&context(&r));
    assert!(
        table.contains(
            "demo-app port 8080: detected after 3 connections; 4 connection(s) attributed to the name"
        ),
        "{table}"
    );
}

#[test]
fn no_rewrite_for_pod_ips_used_literally_or_dialed_late() {
    let mut r = Run::new(LinkType::LinuxSll2);
    // The app dials this pod IP itself first: it is a literal address.
    r.http(POD, 40600, "10.244.3.8", 8080, "200 OK");
    r.t += 3.0;
    for (i, sport) in (0..4).zip(40601u16..) {
        rewritten_call(&mut r, 20 + i, "10.244.3.8", sport);
    }
    // Connections more than a second after the lookup are not its doing.
    for (i, sport) in (0..4).zip(40700u16..) {
        r.dns(
            30 + i,
            "demo-app.default.svc.cluster.local",
            RecordType::A,
            ResponseCode::NoError,
            Some("10.96.100.10"),
        );
        r.t += 1.5;
        r.http(POD, sport, "10.244.3.9", 8080, "200 OK");
    }
    let text = r.finish();
    assert!(!r.engine.rewrite_detected());
    assert!(r.report.connections.iter().all(|c| !c.rewritten));
    assert!(
        text.contains("\npodpath_destination_rewrite_detected 0\n"),
        "{text}"
    );
}

#[test]
fn a_lone_rewritten_connection_is_held_then_attributed_to_the_name() {
    let mut r = Run::new(LinkType::LinuxSll2);
    rewritten_call(&mut r, 40, "10.244.3.7", 40800);
    // Held: neither counted as a literal pod IP nor yet as the name.
    let text = r.metrics.encode(false);
    assert_eq!(count(&text, "podpath_connections_total{"), 0.0, "{text}");
    assert_eq!(count(&text, "podpath_http_requests_total{"), 0.0, "{text}");
    // The hold runs out in packet time, with or without traffic.
    let at = Timestamp::from_secs_f64(r.t + rewrite::HOLD_SECS);
    {
        let mut tee = Tee(vec![&mut r.report, &mut r.sink]);
        r.engine.advance(at, &mut tee);
    }
    let text = r.metrics.encode(false);
    assert_eq!(
        count(
            &text,
            "podpath_connections_total{path=\"dns\",target=\"pod_ip\",protocol=\"tcp\",dns_name=\"demo-app\""
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        count(&text, "podpath_connections_total{path=\"pod_ip\""),
        0.0
    );
    assert_eq!(
        count(&text, "podpath_http_requests_total{path=\"dns\""),
        1.0,
        "{text}"
    );
    assert_eq!(
        count(
            &text,
            "podpath_tcp_connect_duration_seconds_count{path=\"dns\"}"
        ),
        1.0
    );
    assert_eq!(
        count(&text, "podpath_connection_bytes_total{path=\"dns\""),
        27.0 + 38.0
    );
    // Below the evidence threshold: rewritten, not yet "detected".
    assert_eq!(count(&text, "podpath_destination_rewrite_detected "), 0.0);
    let text = r.finish();
    assert_eq!(count(&text, "podpath_rewritten_connections_total{"), 1.0);
    let c = &r.report.connections[0];
    assert_eq!(
        (c.path, c.target, c.rewritten),
        (Path::Dns, Some(AddrClass::PodIp), true)
    );
    assert_eq!(r.report.http_requests[0].path, Some(Path::Dns));
    let table = r.report.to_table(&context(&r));
    assert!(
        table.contains("demo-app port 8080: below the detection threshold, no answer of the lookups dialed; 1 connection(s) attributed to the name"),
        "{table}"
    );
}

#[test]
fn a_pod_ip_literal_dialed_right_after_an_unrelated_lookup_stays_pod_ip() {
    let mut r = Run::new(LinkType::LinuxSll2);
    // demo-app is looked up, a pod IP is dialed literally at once, then
    // the app dials demo-app's ClusterIP: the lookup was not rewritten.
    r.dns(
        50,
        "demo-app.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.96.100.10"),
    );
    r.http(POD, 40900, "10.244.3.7", 8080, "200 OK");
    r.http(POD, 40901, "10.96.100.10", 80, "200 OK");
    r.t += 3.0;
    // From then on, lookups of demo-app followed by a pod IP are decided
    // at once: literal pod IP calls below the evidence threshold.
    r.dns(
        51,
        "demo-app.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.96.100.10"),
    );
    r.http(POD, 40902, "10.244.3.8", 8080, "200 OK");
    let text = r.finish();
    let got: Vec<_> = r
        .report
        .connections
        .iter()
        .map(|c| (c.dst.to_string(), c.path, c.rewritten))
        .collect();
    assert_eq!(
        got,
        vec![
            ("10.244.3.7:8080".to_string(), Path::PodIp, false),
            ("10.96.100.10:80".to_string(), Path::Dns, false),
            ("10.244.3.8:8080".to_string(), Path::PodIp, false),
        ]
    );
    assert_eq!(
        count(&text, "podpath_connections_total{path=\"pod_ip\""),
        2.0
    );
    assert_eq!(
        count(&text, "podpath_http_requests_total{path=\"pod_ip\""),
        2.0
    );
    assert_eq!(count(&text, "podpath_rewritten_connections_total{"), 0.0);
    assert!(!r.engine.rewrite_detected());
}

#[test]
fn held_candidates_are_bounded_and_the_oldest_decided_early() {
    let mut r = Run::new(LinkType::LinuxSll2);
    let n = rewrite::MAX_HELD + 20;
    for i in 0..n {
        let i = u16::try_from(i).unwrap();
        // Each name twice (a new pod IP each time): no pattern reaches the
        // evidence threshold, every connection is held.
        let name = format!("svc{}.default.svc.cluster.local", i / 2);
        r.dns(
            1000 + i,
            &name,
            RecordType::A,
            ResponseCode::NoError,
            Some(&format!("10.96.1.{}", i / 2 + 1)),
        );
        let pod = format!("10.244.{}.{}", 10 + i / 200, i % 200 + 1);
        r.http(POD, 20000 + i, &pod, 8080, "200 OK");
    }
    // Within the hold time: only the overflow was decided, and counted.
    assert_eq!(r.report.connections.len(), n - rewrite::MAX_HELD);
    let text = r.finish();
    assert_eq!(
        count(
            &text,
            "podpath_table_evictions_total{table=\"rewrite_held\"}"
        ),
        20.0
    );
    assert_eq!(r.report.connections.len(), n);
    let odd: Vec<_> = r
        .report
        .connections
        .iter()
        .filter(|c| !(c.rewritten && c.path == Path::Dns))
        .map(|c| (c.dst, c.path))
        .collect();
    assert!(odd.is_empty(), "{odd:?}");
    assert_eq!(r.report.http_requests.len(), n);
}

/// What the engine holds of a TCP connection's application layer.
fn app_of(r: &Run, c: &Conn) -> &'static str {
    let conn = r.engine.tcp_connection(
        SocketAddr::new(ip(c.client), c.cport),
        SocketAddr::new(ip(c.server), c.sport),
    );
    match conn.map(|t| &t.app) {
        None => "gone",
        Some(AppState::Probing { .. }) => "probing",
        Some(AppState::Unsure) => "unsure",
        Some(AppState::Joined { .. }) => "joined",
        Some(AppState::Tls(_)) => "tls",
        Some(AppState::H2(_)) => "h2",
        Some(AppState::Http1(_)) => "http1",
        Some(AppState::Opaque) => "opaque",
    }
}

fn tcp_state_of(r: &Run, c: &Conn) -> Option<TcpState> {
    let conn = r.engine.tcp_connection(
        SocketAddr::new(ip(c.client), c.cport),
        SocketAddr::new(ip(c.server), c.sport),
    );
    conn.map(|t| t.state)
}

#[test]
fn the_client_first_payload_decides_and_an_opaque_connection_only_counts_bytes() {
    let mut r = Run::new(LinkType::LinuxSll2);
    let mut c = Conn::new(POD, 41000, "10.244.2.5", 5432);
    c.handshake(&mut r);
    assert_eq!(app_of(&r, &c), "probing");
    // A server that speaks first does not decide.
    c.send(&mut r, false, b"\x00\x00\x00\x05R", usize::MAX);
    assert_eq!(app_of(&r, &c), "probing");
    // The client's first payload (ISN + 1) is neither TLS, HTTP/2 nor HTTP/1.
    c.send(
        &mut r,
        true,
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
        usize::MAX,
    );
    assert_eq!(app_of(&r, &c), "opaque");
    // Nothing more is read of it: what looks like HTTP/1 later is not.
    c.send(
        &mut r,
        true,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        usize::MAX,
    );
    c.send(
        &mut r,
        false,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        usize::MAX,
    );
    assert_eq!(app_of(&r, &c), "opaque");
    assert_eq!(tcp_state_of(&r, &c), Some(TcpState::Established));
    // A RST's payload is not counted, but the RST closes it.
    let (cseq, sseq) = (c.cseq, c.sseq);
    r.tcp(
        c.server,
        c.sport,
        c.client,
        c.cport,
        TcpFlags::RST,
        sseq,
        b"xyz",
    );
    assert_eq!(tcp_state_of(&r, &c), Some(TcpState::Closed));
    // Segments lingering after the close are still counted.
    r.tcp(c.client, c.cport, c.server, c.sport, PA, cseq, b"late");
    let text = r.finish();
    assert!(r.report.http_requests.is_empty());
    assert_eq!(r.report.connections.len(), 1);
    assert_eq!(r.report.connections[0].outcome, Outcome::Connected);
    assert_eq!(
        count(
            &text,
            "podpath_connection_bytes_total{path=\"pod_ip\",direction=\"sent\"}"
        ),
        (8 + 27 + 4) as f64,
        "{text}"
    );
    assert_eq!(
        count(
            &text,
            "podpath_connection_bytes_total{path=\"pod_ip\",direction=\"received\"}"
        ),
        (5 + 38) as f64,
        "{text}"
    );
}

#[test]
fn a_first_payload_lost_from_the_capture_leaves_http1_possible() {
    let mut r = Run::new(LinkType::LinuxSll2);
    let mut c = Conn::new(POD, 41001, "10.244.2.6", 8080);
    c.handshake(&mut r);
    // The first 40 bytes were not captured: what follows does not decide.
    c.cseq += 40;
    c.send(&mut r, true, b"\x01\x02 body bytes", usize::MAX);
    assert_eq!(app_of(&r, &c), "unsure");
    c.send(
        &mut r,
        true,
        b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        usize::MAX,
    );
    assert_eq!(app_of(&r, &c), "http1");
    c.send(
        &mut r,
        false,
        b"HTTP/1.1 204 No Content\r\n\r\n",
        usize::MAX,
    );
    // A first payload cut to nothing by the snap length does not decide either.
    let mut d = Conn::new(POD, 41002, "10.244.2.6", 8080);
    d.handshake(&mut r);
    d.send(&mut r, true, b"\x00\x00\x00\x08\x04\xd2\x16\x2f", 0);
    assert_eq!(app_of(&r, &d), "unsure");
    r.finish();
    let got: Vec<_> = r
        .report
        .http_requests
        .iter()
        .map(|h| (h.method, h.status))
        .collect();
    assert_eq!(got, vec![(Method::Get, 204)]);
}

#[test]
fn tls_past_its_hello_and_http1_past_an_upgrade_are_opaque() {
    use crate::tls::hello_for_tests as hello;
    let mut r = Run::new(LinkType::LinuxSll2);
    let mut t = Conn::new(POD, 41010, "198.51.100.9", 443);
    t.handshake(&mut r);
    let h = hello(Some("api.example"), &["h2"], 0);
    let half = h.len() / 2;
    t.send(&mut r, true, &h[..half], usize::MAX);
    assert_eq!(app_of(&r, &t), "tls");
    t.send(&mut r, true, &h[half..], usize::MAX);
    assert_eq!(app_of(&r, &t), "opaque");
    t.send(&mut r, false, &[0x16, 3, 3, 0, 2, 2, 0], usize::MAX);
    t.send(&mut r, true, &[0x17, 3, 3, 0, 3, 1, 2, 3], usize::MAX);
    assert_eq!(app_of(&r, &t), "opaque");

    let mut u = Conn::new(POD, 41011, "10.244.2.7", 8080);
    u.handshake(&mut r);
    u.send(
        &mut r,
        true,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        usize::MAX,
    );
    assert_eq!(app_of(&r, &u), "http1");
    u.send(
        &mut r,
        false,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        usize::MAX,
    );
    assert_eq!(app_of(&r, &u), "opaque");
    // Frames after the upgrade are bytes, whatever they look like.
    u.send(&mut r, false, b"HTTP/1.1 200 OK\r\n\r\n", usize::MAX);
    u.close(&mut r);
    assert_eq!(tcp_state_of(&r, &u), Some(TcpState::Closed));
    r.finish();
    assert_eq!(r.report.tls.len(), 1);
    assert_eq!(r.report.tls[0].sni.as_deref(), Some("api.example"));
    let got: Vec<_> = r.report.http_requests.iter().map(|h| h.status).collect();
    assert_eq!(got, vec![101]);
}

#[test]
fn a_joined_connection_is_read_as_http1_once_its_probes_find_nothing_else() {
    let mut r = Run::new(LinkType::LinuxSll2);
    // Joined mid-body of a response: no handshake seen.
    let mut c = Conn::new(POD, 41020, "10.244.2.8", 8080);
    for _ in 0..7 {
        c.send(&mut r, false, &[b'x'; 100], usize::MAX);
        assert_eq!(app_of(&r, &c), "joined");
    }
    c.send(&mut r, false, &[b'x'; 100], usize::MAX);
    assert_eq!(app_of(&r, &c), "http1");
    c.send(
        &mut r,
        true,
        b"POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        usize::MAX,
    );
    c.send(&mut r, false, b"HTTP/1.1 201 Created\r\n\r\n", usize::MAX);
    assert_eq!(tcp_state_of(&r, &c), Some(TcpState::Midstream));
    r.finish();
    let got: Vec<_> = r
        .report
        .http_requests
        .iter()
        .map(|h| (h.method, h.status))
        .collect();
    assert_eq!(got, vec![(Method::Post, 201)]);
}

#[test]
fn pure_acks_only_keep_a_connection_alive() {
    let mut r = Run::new(LinkType::LinuxSll2);
    let mut c = Conn::new(POD, 41030, "10.244.2.9", 5432);
    c.handshake(&mut r);
    c.send(
        &mut r,
        true,
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
        usize::MAX,
    );
    let (cseq, sseq) = (c.cseq, c.sseq);
    // Two idle timeouts' worth of time, bridged by pure ACKs only.
    for _ in 0..2 {
        r.t += 250.0;
        r.tcp(
            c.server,
            c.sport,
            c.client,
            c.cport,
            TcpFlags::ACK,
            sseq,
            b"",
        );
        r.tcp(
            c.client,
            c.cport,
            c.server,
            c.sport,
            TcpFlags::ACK,
            cseq,
            b"",
        );
        assert_eq!(tcp_state_of(&r, &c), Some(TcpState::Established));
    }
    assert_eq!(app_of(&r, &c), "opaque");
    // Then silence: another flow's packet past the idle timeout expires it.
    r.t += 301.0;
    r.tcp(POD, 41031, "10.244.2.9", 5432, TcpFlags::SYN, 7, b"");
    assert_eq!(app_of(&r, &c), "gone");
    let text = r.finish();
    assert_eq!(
        count(
            &text,
            "podpath_connection_bytes_total{path=\"pod_ip\",direction=\"sent\"}"
        ),
        8.0,
        "{text}"
    );
}
