//! Names for literal destinations: from the engine's entry point, the feed
//! other threads use, and (item 2) from the traffic itself.

use super::*;
use crate::dns::k8s::NameSource;
use crate::engine::destinations::FedName;

/// Address, FQDN, service, namespace, source.
type Named = (IpAddr, String, Option<String>, Option<String>, NameSource);

/// Collects the naming events the exporters get.
#[derive(Default)]
struct Names {
    literal: Vec<(IpAddr, Path, bool)>,
    named: Vec<Named>,
    evicted: Vec<Table>,
}

impl Sink for Names {
    fn on_event(&mut self, event: &Event<'_>) {
        match event {
            Event::LiteralDestination { addr, path, named } => {
                self.literal.push((*addr, *path, *named))
            }
            Event::DestinationNamed { addr, naming } => self.named.push((
                *addr,
                naming.fqdn.to_string(),
                naming.service().map(str::to_string),
                naming.namespace().map(str::to_string),
                naming.source,
            )),
            Event::Evicted { table, count } => self
                .evicted
                .extend(std::iter::repeat_n(*table, *count as usize)),
            _ => {}
        }
    }
}

fn syn(r: &mut Run, sport: u16, dst: &str, names: &mut Names) {
    let f = FrameBuilder::new(ip(POD), ip(dst))
        .tcp(sport, 80)
        .flags(TcpFlags::SYN)
        .seq(1);
    r.t += 0.001;
    let bytes = f.link(r.link).build();
    let raw = RawPacket {
        ts: Timestamp::from_secs_f64(r.t),
        link: r.link,
        data: &bytes,
        orig_len: bytes.len() as u32,
        packet_type: None,
        interface: 0,
    };
    let mut tee = Tee(vec![&mut r.report, &mut r.sink, names]);
    r.engine.process(&raw, &mut tee);
}

#[test]
fn a_name_learned_after_the_literal_call_is_exported_for_it() {
    let mut r = Run::new(LinkType::Ethernet);
    let mut names = Names::default();
    syn(&mut r, 40001, "10.244.1.10", &mut names);
    assert_eq!(names.literal, vec![(ip("10.244.1.10"), Path::PodIp, false)]);
    assert!(names.named.is_empty());
    // Later, from outside the capture (task E's PTR lookup).
    r.engine.learn_name(
        ip("10.244.1.10"),
        "10-244-1-10.demo-app.default.svc.cluster.local.",
        NameSource::Ptr,
        &mut names,
    );
    assert_eq!(
        names.named,
        vec![(
            ip("10.244.1.10"),
            "10-244-1-10.demo-app.default.svc.cluster.local".into(),
            Some("demo-app".into()),
            Some("default".into()),
            NameSource::Ptr
        )]
    );
    // A second use is not a new literal destination.
    syn(&mut r, 40002, "10.244.1.10", &mut names);
    assert_eq!(names.literal.len(), 1);
}

/// podpath's own PTR answers name the address, never the connection series:
/// a capture of the same traffic holds no such answer, so `run` and `analyze`
/// must label the connections alike, and one destination's series must not
/// split when the answer arrives.
#[test]
fn podpaths_own_ptr_names_do_not_relabel_connections() {
    let mut r = Run::new(LinkType::Ethernet);
    let mut names = Names::default();
    syn(&mut r, 40001, "10.244.1.10", &mut names);
    r.engine.learn_name(
        ip("10.244.1.10"),
        "10-244-1-10.demo-app.default.svc.cluster.local.",
        NameSource::Ptr,
        &mut names,
    );
    syn(&mut r, 40002, "10.244.1.10", &mut names);
    r.engine
        .advance(Timestamp::from_secs_f64(r.t + 60.0), &mut names);
    assert_eq!(r.report.connections.len(), 2);
    for c in &r.report.connections {
        assert_eq!(c.path, Path::PodIp);
        assert_eq!(c.service, None, "{c:?}");
        assert_eq!(c.namespace, None, "{c:?}");
    }
    assert_eq!(names.named.len(), 1, "the name is still exported");
}

#[test]
fn a_name_known_before_the_literal_call_is_exported_with_its_first_use() {
    let mut r = Run::new(LinkType::Ethernet);
    let mut names = Names::default();
    // A name for an address never dialed literally is not exported.
    r.engine.learn_name(
        ip("10.96.5.5"),
        "cart.shop.svc.cluster.local",
        NameSource::Ptr,
        &mut names,
    );
    assert!(names.named.is_empty());
    syn(&mut r, 40001, "10.96.5.5", &mut names);
    assert_eq!(
        names.literal,
        vec![(ip("10.96.5.5"), Path::ClusterIp, true)]
    );
    assert_eq!(names.named.len(), 1);
    assert_eq!(names.named[0].2.as_deref(), Some("cart"));
}

#[test]
fn names_fed_from_another_thread_arrive_with_the_next_sweep() {
    let mut r = Run::new(LinkType::Ethernet);
    let mut names = Names::default();
    syn(&mut r, 40001, "10.96.7.7", &mut names);
    let feed = r.engine.name_feed();
    std::thread::spawn(move || {
        assert!(feed.send(FedName {
            addr: "10.96.7.7".parse().unwrap(),
            fqdn: "statsd.monitoring.svc.cluster.local.".into(),
            source: NameSource::Ptr,
        }))
    })
    .join()
    .unwrap();
    assert!(names.named.is_empty(), "not before packet time moves");
    // An empty name (a root PTR target) names nothing.
    r.engine
        .learn_name(ip("10.96.7.7"), ".", NameSource::Ptr, &mut names);
    assert!(names.named.is_empty());
    let later = Timestamp::from_secs_f64(r.t + 1.5);
    r.engine.advance(later, &mut names);
    assert_eq!(names.named.len(), 1);
    assert_eq!(names.named[0].3.as_deref(), Some("monitoring"));
}

fn run_with(cfg: PodConfig) -> Run {
    let metrics = Arc::new(Metrics::new());
    Run {
        engine: Engine::new(cfg),
        report: Report::new(1000),
        sink: MetricsSink::new(metrics.clone(), 100, 2000),
        metrics,
        t: 1_700_000_000.0,
        link: LinkType::Ethernet,
    }
}

/// A PTR question for `addr` answered with `targets`.
fn ptr(r: &mut Run, id: u16, addr: &str, targets: &[&str]) {
    use crate::dns::wire::testkit::ptr;
    let q = crate::dns::k8s::reverse_name(ip(addr));
    let query = query_bytes(id, &q, RecordType::PTR);
    r.feed(
        FrameBuilder::new(ip(POD), ip(KUBE_DNS))
            .udp(42000 + id, 53)
            .payload(&query),
        None,
    );
    let records: Vec<_> = targets.iter().map(|t| (q.as_str(), 5, ptr(t))).collect();
    let resp = response_bytes(id, &q, RecordType::PTR, ResponseCode::NoError, &records);
    r.feed(
        FrameBuilder::new(ip(KUBE_DNS), ip(POD))
            .udp(53, 42000 + id)
            .payload(&resp),
        None,
    );
}

/// Issue 11's ordering bug: without --service-cidr, what the answer
/// `cart.shop.svc.corp.local → 10.43.12.7` teaches (a ClusterIP) must hold
/// for the connection right after it, not only once the lookup is reported.
#[test]
fn an_answer_teaches_the_connection_that_follows_it() {
    let mut r = run_with(PodConfig {
        search: vec![
            "default.svc.corp.local".into(),
            "svc.corp.local".into(),
            "corp.local".into(),
        ],
        ..PodConfig::default()
    });
    r.dns(
        1,
        "cart.shop.svc.corp.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.43.12.7"),
    );
    r.http(POD, 40001, "10.43.12.7", 80, "200 OK");
    let text = r.finish();
    let c = &r.report.connections[0];
    assert_eq!(c.path, Path::Dns);
    assert_eq!(c.target, Some(crate::attribution::AddrClass::ClusterIp));
    assert_eq!(c.service.as_deref(), Some("cart"));
    assert!(
        text.contains(
            r#"podpath_connections_total{path="dns",target="cluster_ip",protocol="tcp",dns_name="cart.shop",service="cart",namespace="shop",port="80"} 1"#
        ),
        "{text}"
    );
}

/// The app dialed the ClusterIP first and resolved the name only later:
/// the later answer names the literal destination.
#[test]
fn a_later_answer_names_an_earlier_literal_call() {
    let mut r = Run::new(LinkType::Ethernet);
    r.http(POD, 40001, "10.96.100.10", 80, "200 OK");
    r.dns(
        1,
        "demo-app.default.svc.cluster.local",
        RecordType::A,
        ResponseCode::NoError,
        Some("10.96.100.10"),
    );
    let text = r.finish();
    assert!(
        text.contains(
            r#"podpath_literal_connections_total{path="cluster_ip",address="10.96.100.10",port="80"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"podpath_destination_info{address="10.96.100.10",service="demo-app",namespace="default",pod="",name="demo-app.default.svc.cluster.local",source="dns_answer"} 1"#
        ),
        "{text}"
    );
    // Addresses not dialed literally get no info series.
    assert_eq!(count(&text, "podpath_destination_info{"), 1.0);
}

/// The app asked PTR for the pod IP it dialed; CoreDNS answers an endpoint
/// with one name per Service it backs: the Service name is kept.
#[test]
fn a_ptr_answer_the_app_asked_for_names_the_pod_ip() {
    let mut r = Run::new(LinkType::Ethernet);
    r.http(POD, 40001, "10.244.1.10", 80, "200 OK");
    ptr(
        &mut r,
        7,
        "10.244.1.10",
        &[
            "example.org.",
            "demo-app-1.demo-app.default.svc.cluster.local.",
        ],
    );
    let text = r.finish();
    assert!(
        text.contains(
            r#"podpath_destination_info{address="10.244.1.10",service="demo-app",namespace="default",pod="demo-app-1",name="demo-app-1.demo-app.default.svc.cluster.local",source="app_ptr"} 1"#
        ),
        "{text}"
    );
    // A PTR question is still an app query like any other.
    assert_eq!(
        count(
            &text,
            r#"podpath_dns_queries_total{qtype="PTR",rcode="NOERROR"}"#
        ),
        1.0
    );
}

/// An ExternalName Service answers an external address through a CNAME:
/// it is named by the Service but not taken for a ClusterIP.
#[test]
fn an_external_name_alias_is_named_but_not_a_cluster_ip() {
    use crate::dns::wire::testkit::cname;
    let mut r = run_with(PodConfig {
        namespace: Some("default".into()),
        cluster_domain: Some("cluster.local".into()),
        ..PodConfig::default()
    });
    let name = "db.shop.svc.cluster.local";
    let q = query_bytes(1, name, RecordType::A);
    r.feed(
        FrameBuilder::new(ip(POD), ip(KUBE_DNS))
            .udp(41001, 53)
            .payload(&q),
        None,
    );
    let resp = response_bytes(
        1,
        name,
        RecordType::A,
        ResponseCode::NoError,
        &[
            (name, 5, cname("db.rds.example.com.")),
            ("db.rds.example.com", 5, a("203.0.113.9")),
        ],
    );
    r.feed(
        FrameBuilder::new(ip(KUBE_DNS), ip(POD))
            .udp(53, 41001)
            .payload(&resp),
        None,
    );
    assert_eq!(
        r.engine.attributor().classify(ip("203.0.113.9")),
        crate::attribution::AddrClass::External
    );
    let n = r.engine.destinations().naming(ip("203.0.113.9")).unwrap();
    assert_eq!(n.service(), Some("db"));
}

/// Past the address cap, literal calls fold into `~other` and their names
/// are not exported (nothing to join), both counted.
#[test]
fn literal_addresses_and_their_names_are_capped() {
    let mut r = Run::new(LinkType::Ethernet);
    r.sink = MetricsSink::new(r.metrics.clone(), 2, 2000);
    for (i, addr) in ["10.96.0.1", "10.96.0.2", "10.96.0.3", "10.96.0.4"]
        .iter()
        .enumerate()
    {
        r.http(POD, 40001 + i as u16, addr, 80, "200 OK");
        r.engine.learn_name(
            ip(addr),
            &format!("s{i}.default.svc.cluster.local"),
            NameSource::Ptr,
            &mut r.sink,
        );
    }
    let text = r.finish();
    assert_eq!(count(&text, "podpath_destination_info{"), 2.0, "{text}");
    assert_eq!(
        count(
            &text,
            r#"podpath_literal_connections_total{path="cluster_ip",address="~other",port="80"}"#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        count(
            &text,
            r#"podpath_label_overflow_total{metric="podpath_destination_info",label="address"}"#
        ),
        2.0,
        "{text}"
    );
}

/// Without CIDR flags, a Service dialed by its literal ClusterIP (a statsd
/// address in the app's config) is `cluster_ip` once the DNS server is
/// known: from resolv.conf at start, or from the first query.
#[test]
fn a_literal_cluster_ip_is_recognised_by_the_guessed_service_range() {
    let mut r = run_with(PodConfig {
        pod_ips: vec![ip(POD)],
        dns_servers: vec![ip(KUBE_DNS)],
        ..PodConfig::default()
    });
    r.http(POD, 40001, "10.100.3.4", 8125, "200 OK");
    r.http(POD, 40002, "10.244.9.9", 80, "200 OK");
    r.http(POD, 40003, "192.0.2.1", 80, "200 OK");
    r.finish();
    let paths: Vec<Path> = r.report.connections.iter().map(|c| c.path).collect();
    assert_eq!(paths, vec![Path::ClusterIp, Path::PodIp, Path::External]);
    let inferred = r.engine.inferences();
    let guess = inferred.iter().find(|i| i.what == "service_cidr").unwrap();
    assert_eq!(guess.value, "10.96.0.0/12");
    assert!(guess.from.contains("guess: pass --service-cidr"));
}

/// `--dns-names drop|hash` covers the DNS name in podpath_destination_info
/// as it covers every other DNS name label.
#[test]
fn the_name_policy_applies_to_destination_names() {
    for (policy, want) in [
        (crate::config::NamePolicy::Drop, "~redacted"),
        (
            crate::config::NamePolicy::Keep,
            "cart.shop.svc.cluster.local",
        ),
    ] {
        let mut r = Run::new(LinkType::Ethernet);
        r.sink = MetricsSink::new(r.metrics.clone(), 100, 2000).with_names(policy, "salt");
        r.http(POD, 40001, "10.96.5.5", 80, "200 OK");
        r.engine.learn_name(
            ip("10.96.5.5"),
            "cart.shop.svc.cluster.local",
            NameSource::Ptr,
            &mut r.sink,
        );
        let text = r.finish();
        assert!(
            text.contains(&format!(
                r#"podpath_destination_info{{address="10.96.5.5",service="cart",namespace="shop",pod="",name="{want}",source="ptr"}} 1"#
            )),
            "{policy:?}: {text}"
        );
    }
}

/// One info series per address: a better name replaces the old series, so
/// `* on(address) group_left` stays one-to-one.
#[test]
fn a_better_name_replaces_the_info_series() {
    let mut r = Run::new(LinkType::Ethernet);
    r.http(POD, 40001, "10.96.5.5", 80, "200 OK");
    r.engine.learn_name(
        ip("10.96.5.5"),
        "legacy-host.example.com",
        NameSource::AppPtr,
        &mut r.sink,
    );
    let text = r.metrics.encode(false);
    assert!(
        text.contains(r#"name="legacy-host.example.com",source="app_ptr"} 1"#),
        "{text}"
    );
    r.engine.learn_name(
        ip("10.96.5.5"),
        "cart.shop.svc.cluster.local",
        NameSource::Ptr,
        &mut r.sink,
    );
    // An opaque name does not replace a cluster one.
    r.engine.learn_name(
        ip("10.96.5.5"),
        "other.example.com",
        NameSource::AppPtr,
        &mut r.sink,
    );
    let text = r.finish();
    let info: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("podpath_destination_info{"))
        .collect();
    assert_eq!(
        info,
        vec![
            r#"podpath_destination_info{address="10.96.5.5",service="cart",namespace="shop",pod="",name="cart.shop.svc.cluster.local",source="ptr"} 1"#
        ]
    );
}
