//! The recorded lab capture `tests/captures/proto.pcap` (made by
//! `tests/captures/proto/record.sh`): real ClientHellos from curl and
//! openssl, h2c from curl (nghttp2) and the python `h2` package, a stale
//! answer and a destination rewritten by DNAT in the client's namespace.

use super::*;
use crate::attribution::AddrClass;
use crate::capture::file::FileSource;
use crate::capture::{Next, PacketSource};
use crate::dns::names::Stale;
use crate::http::Method;
use crate::tls::SniStatus;

const PROTO_CAPTURE: &[u8] = include_bytes!("../../tests/captures/proto.pcap");
/// `tests/captures/dnsretx/record.sh`: glibc against a DNS server that
/// answers every copy of a query 2.5 s, then 7 s, after it.
const DNSRETX_CAPTURE: &[u8] = include_bytes!("../../tests/captures/dnsretx.pcap");

fn analyze(snap: Option<usize>) -> (Report, String, bool) {
    let (report, text, engine) = run_capture(PROTO_CAPTURE, snap);
    (report, text, engine.rewrite_detected())
}

/// Runs a capture; `snap` cuts every frame to that many bytes, as the
/// live filter does.
fn run_capture(capture: &'static [u8], snap: Option<usize>) -> (Report, String, Engine) {
    let cfg = PodConfig {
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
        pod_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        namespace: Some("default".into()),
        ..PodConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let mut sink = MetricsSink::new(metrics.clone(), 100, 2000);
    let mut report = Report::new(1000);
    let mut engine = Engine::new(cfg);
    let mut source = FileSource::from_bytes("capture.pcap", capture).unwrap();
    {
        let mut tee = Tee(vec![&mut report, &mut sink]);
        loop {
            match source.next_packet().unwrap() {
                Next::Packet(p) => {
                    let data = match snap {
                        Some(n) => &p.data[..p.data.len().min(n)],
                        None => p.data,
                    };
                    let raw = RawPacket { data, ..p };
                    engine.process(&raw, &mut tee);
                }
                Next::Idle { now } => engine.advance(now, &mut tee),
                Next::End => break,
            }
        }
        engine.finish(&mut tee);
    }
    let text = metrics.encode(false);
    (report, text, engine)
}

#[test]
fn recorded_slow_dns_server_retransmissions_and_late_answers() {
    let (report, text, engine) = run_capture(DNSRETX_CAPTURE, None);
    // cart: A and AAAA sent three times each (timeout:1 attempts:3), every
    // copy answered 2.5 s after it. broken: the same, every copy answered
    // SERVFAIL 7 s after it, once it had timed out.
    for (series, n) in [
        (
            "podpath_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"}",
            3.0,
        ),
        (
            "podpath_dns_queries_total{qtype=\"AAAA\",rcode=\"NOERROR\"}",
            3.0,
        ),
        (
            "podpath_dns_queries_total{qtype=\"A\",rcode=\"TIMEOUT\"}",
            3.0,
        ),
        (
            "podpath_dns_queries_total{qtype=\"AAAA\",rcode=\"TIMEOUT\"}",
            3.0,
        ),
        ("podpath_dns_queries_total{", 12.0),
        ("podpath_dns_retransmissions_total{qtype=\"A\"}", 4.0),
        ("podpath_dns_retransmissions_total{qtype=\"AAAA\"}", 4.0),
        ("podpath_dns_late_answers_total{rcode=\"SERVFAIL\"}", 6.0),
        ("podpath_dns_response_duration_seconds_count", 6.0),
        // Each of the six answers came 2.5 s after its copy.
        (
            "podpath_dns_response_duration_seconds_bucket{le=\"2.5\"}",
            0.0,
        ),
        (
            "podpath_dns_response_duration_seconds_bucket{le=\"5\"}",
            6.0,
        ),
        (
            "podpath_dns_lookups_total{dns_name=\"cart\",form=\"short\",result=\"NOERROR\"}",
            1.0,
        ),
        (
            "podpath_dns_lookup_queries_total{dns_name=\"cart\",form=\"short\"}",
            6.0,
        ),
        (
            "podpath_dns_lookup_queries_total{dns_name=\"broken\",form=\"short\"}",
            6.0,
        ),
    ] {
        assert_eq!(count(&text, series), n, "{series}\n{text}");
    }
    let st = engine.dns().stats().tx;
    assert_eq!((st.unmatched_responses, st.late_answers), (0, 6));
    let cart: Vec<_> = report
        .lookups
        .iter()
        .map(|l| (&*l.name, l.result, l.queries, l.retransmissions))
        .collect();
    assert_eq!(
        cart,
        vec![("cart", "NOERROR", 6, 4), ("broken", "SERVFAIL", 6, 4)]
    );
}

#[test]
fn recorded_tls_h2c_stale_and_rewrite_scenarios() {
    // Ethernet 14 + IPv4 20 + TCP 32 + the filter's 1024 payload bytes.
    for snap in [None, Some(14 + 20 + 32 + 1024)] {
        let (report, text, detected) = analyze(snap);

        let tls: Vec<_> = report
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
            tls,
            vec![
                (
                    Path::Dns,
                    Some("api.example.com"),
                    SniStatus::Present,
                    Some("h2"),
                    Some(SniCheck::Confirmed)
                ),
                (
                    Path::External,
                    None,
                    SniStatus::Absent,
                    Some("http/1.1"),
                    None
                ),
            ],
            "snap {snap:?}"
        );

        let http: Vec<_> = report
            .http_requests
            .iter()
            .map(|h| {
                (
                    h.protocol,
                    h.method,
                    h.status,
                    h.grpc_status,
                    h.path,
                    h.service.as_deref(),
                )
            })
            .collect();
        let echo = (Some(Path::Dns), Some("echo"));
        let grpc = |status| {
            (
                AppProtocol::Grpc,
                Method::Post,
                200,
                Some(status),
                echo.0,
                echo.1,
            )
        };
        let get = |path, service| {
            (
                AppProtocol::Http1,
                Method::Get,
                200,
                None,
                Some(path),
                service,
            )
        };
        assert_eq!(
            http,
            vec![
                // The pod IP dialed literally right after echo's lookup.
                get(Path::PodIp, None),
                grpc(0),
                grpc(0),
                grpc(14),
                (AppProtocol::H2, Method::Get, 503, None, echo.0, echo.1),
                get(Path::Dns, Some("db")),
                get(Path::Dns, Some("db")),
                // Rewritten from the first connection on: the first two
                // were held until the third confirmed the pattern.
                get(Path::Dns, Some("demo-app")),
                get(Path::Dns, Some("demo-app")),
                get(Path::Dns, Some("demo-app")),
                get(Path::Dns, Some("demo-app")),
            ],
            "snap {snap:?}"
        );
        assert!(report.h2_unread.is_empty(), "{:?}", report.h2_unread);

        let stale: Vec<_> = report
            .connections
            .iter()
            .filter_map(|c| Some((c.dst.to_string(), c.stale_dns?)))
            .collect();
        assert_eq!(
            stale,
            vec![
                ("10.244.2.30:80".to_string(), Stale::NotInLatestAnswer),
                ("10.244.2.31:80".to_string(), Stale::PastTtl),
            ]
        );

        assert!(detected);
        // That literal call followed echo's answer within the rewrite
        // window (a candidate, held), and stayed pod_ip once curl dialed
        // echo's ClusterIP.
        let literal = report
            .connections
            .iter()
            .find(|c| c.path == Path::PodIp)
            .unwrap();
        assert_eq!(literal.dst, "10.244.2.41:80".parse().unwrap());
        assert!(!literal.rewritten);
        let echo = report.lookups.iter().find(|l| &*l.name == "echo").unwrap();
        let after = literal.ts - echo.ts;
        assert!(after > 0.0 && after < rewrite::WINDOW_SECS, "{after}");
        let rewrites: Vec<_> = report
            .rewrites
            .iter()
            .map(|r| (r.dns_name.as_str(), r.port, r.evidence))
            .collect();
        assert_eq!(rewrites, vec![("demo-app", 80, 3)]);
        let to_pod: Vec<_> = report
            .connections
            .iter()
            .filter(|c| c.dst.ip() == ip("10.244.2.40"))
            .map(|c| (c.path, c.target, c.rewritten))
            .collect();
        let rewritten = (Path::Dns, Some(AddrClass::PodIp), true);
        assert_eq!(to_pod, vec![rewritten, rewritten, rewritten, rewritten]);

        for (series, n) in [
            ("podpath_tls_connections_total{path=\"dns\",sni=\"api.example.com\",alpn=\"h2\"}", 1.0),
            ("podpath_tls_connections_total{path=\"external\",sni=\"~none\",alpn=\"http/1.1\"}", 1.0),
            ("podpath_tls_sni_confirms_dns_total{dns_name=\"api.example.com\"}", 1.0),
            ("podpath_grpc_requests_total{path=\"dns\",service=\"echo\",grpc_status=\"0\"}", 2.0),
            ("podpath_grpc_requests_total{path=\"dns\",service=\"echo\",grpc_status=\"14\"}", 1.0),
            ("podpath_http_requests_total{path=\"dns\",service=\"echo\",method=\"GET\",code=\"503\",protocol=\"h2\"}", 1.0),
            ("podpath_dns_stale_connections_total{path=\"dns\",dns_name=\"db\",reason=\"not_in_latest_answer\"}", 1.0),
            ("podpath_dns_stale_connections_total{path=\"dns\",dns_name=\"db\",reason=\"past_ttl\"}", 1.0),
            ("podpath_rewritten_connections_total{dns_name=\"demo-app\",port=\"80\"}", 4.0),
            ("podpath_connections_total{path=\"pod_ip\"", 1.0),
            ("podpath_destination_rewrite_detected ", 1.0),
        ] {
            assert_eq!(count(&text, series), n, "{series} (snap {snap:?})\n{text}");
        }
    }
}
