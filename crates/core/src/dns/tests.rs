//! Scenario tests of the tracker: messages built with hickory-proto, fed as
//! packets, events checked.

use super::wire::testkit::{a, aaaa, cname, query_bytes, response_bytes};
use super::*;
use crate::decode::TcpFlags;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use proptest::prelude::*;

const CLIENT: &str = "10.244.1.5:40000";
const SERVER: &str = "10.96.0.10:53";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn secs(s: f64) -> Timestamp {
    Timestamp::from_secs_f64(s)
}

fn k8s_config() -> DnsConfig {
    DnsConfig {
        search: vec![
            "default.svc.cluster.local".into(),
            "svc.cluster.local".into(),
            "cluster.local".into(),
        ],
        cluster_domain: Some("cluster.local".into()),
        ..DnsConfig::default()
    }
}

struct Sim {
    t: DnsTracker,
    events: Vec<DnsEvent>,
    next_id: u16,
}

impl Sim {
    fn new(cfg: DnsConfig) -> Self {
        Sim {
            t: DnsTracker::new(cfg),
            events: Vec::new(),
            next_id: 100,
        }
    }

    /// Sends a query and returns its id.
    fn query(&mut self, at: f64, name: &str, qtype: RecordType) -> u16 {
        self.next_id += 1;
        let bytes = query_bytes(self.next_id, name, qtype);
        self.t.advance(secs(at), &mut self.events);
        self.t.on_udp(
            secs(at),
            addr(CLIENT),
            addr(SERVER),
            &bytes,
            &mut self.events,
        );
        self.next_id
    }

    fn respond(
        &mut self,
        at: f64,
        id: u16,
        name: &str,
        qtype: RecordType,
        rcode: ResponseCode,
        records: &[(&str, u32, RData)],
    ) {
        let bytes = response_bytes(id, name, qtype, rcode, records);
        self.t.advance(secs(at), &mut self.events);
        self.t.on_udp(
            secs(at),
            addr(SERVER),
            addr(CLIENT),
            &bytes,
            &mut self.events,
        );
    }

    /// A and AAAA for `name` together; A answered with `v4` (NXDOMAIN for
    /// both when `v4` is None), AAAA without data.
    fn pair(&mut self, at: f64, name: &str, v4: Option<&str>) {
        let fq = format!("{name}.");
        let id_a = self.query(at, &fq, RecordType::A);
        let id_aaaa = self.query(at + 0.0001, &fq, RecordType::AAAA);
        match v4 {
            Some(ip) => {
                self.respond(
                    at + 0.001,
                    id_a,
                    &fq,
                    RecordType::A,
                    ResponseCode::NoError,
                    &[(&fq, 5, a(ip))],
                );
                self.respond(
                    at + 0.0015,
                    id_aaaa,
                    &fq,
                    RecordType::AAAA,
                    ResponseCode::NoError,
                    &[],
                );
            }
            None => {
                self.respond(
                    at + 0.001,
                    id_a,
                    &fq,
                    RecordType::A,
                    ResponseCode::NXDomain,
                    &[],
                );
                self.respond(
                    at + 0.0015,
                    id_aaaa,
                    &fq,
                    RecordType::AAAA,
                    ResponseCode::NXDomain,
                    &[],
                );
            }
        }
    }

    fn lookups(&self) -> Vec<&Lookup> {
        self.events
            .iter()
            .filter_map(|e| match e {
                DnsEvent::Lookup(l) => Some(l),
                _ => None,
            })
            .collect()
    }

    fn completed(&self) -> Vec<&Transaction> {
        self.events
            .iter()
            .filter_map(|e| match e {
                DnsEvent::Completed(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn only_lookup(&mut self, at: f64) -> Lookup {
        self.t.advance(secs(at), &mut self.events);
        let l = self.lookups();
        assert_eq!(l.len(), 1, "{:?}", l);
        l[0].clone()
    }
}

#[test]
fn short_name_resolves_at_the_first_suffix() {
    let mut s = Sim::new(k8s_config());
    s.pair(
        1.0,
        "demo-app.default.svc.cluster.local",
        Some("10.96.0.20"),
    );
    // Still lingering: an AAAA sent late would belong to it.
    s.t.advance(secs(1.5), &mut s.events);
    assert!(s.lookups().is_empty());
    let l = s.only_lookup(3.0);
    assert_eq!(&*l.name, "demo-app");
    assert_eq!(l.form.as_str(), "short");
    assert_eq!(l.result.as_str(), "NOERROR");
    assert_eq!((l.queries, l.wasted), (2, 0));
    assert_eq!(&*l.fqdn, "demo-app.default.svc.cluster.local");
    assert_eq!(l.addresses, ["10.96.0.20".parse::<IpAddr>().unwrap()]);
    assert!(!l.partial && !l.absolute);
    let rcodes: Vec<&str> = s.completed().iter().map(|t| t.outcome.as_str()).collect();
    assert_eq!(rcodes, ["NOERROR", "NOERROR"]);
    let info =
        s.t.resolve("10.96.0.20".parse().unwrap(), secs(3.0))
            .unwrap();
    assert_eq!(&*info.name, "demo-app");
    assert_eq!(info.service.as_deref(), Some("demo-app"));
    assert_eq!(info.namespace.as_deref(), Some("default"));
    // TTL 5 + grace 30 after the answer at ~1.001 s.
    assert!(s
        .t
        .resolve("10.96.0.20".parse().unwrap(), secs(35.9))
        .is_some());
    assert!(s
        .t
        .resolve("10.96.0.20".parse().unwrap(), secs(36.1))
        .is_none());
}

#[test]
fn namespaced_name_wastes_the_first_pair() {
    let mut s = Sim::new(k8s_config());
    s.pair(1.0, "demo-app.default.default.svc.cluster.local", None);
    s.pair(
        1.01,
        "demo-app.default.svc.cluster.local",
        Some("10.96.0.20"),
    );
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "demo-app.default");
    assert_eq!(l.form, Form::Namespaced);
    assert_eq!(l.result.as_str(), "NOERROR");
    assert_eq!((l.queries, l.wasted), (4, 2));
    let info =
        s.t.resolve("10.96.0.20".parse().unwrap(), secs(5.0))
            .unwrap();
    assert_eq!(&*info.name, "demo-app.default");
    assert_eq!(&*info.fqdn, "demo-app.default.svc.cluster.local");
    let nx = s
        .completed()
        .iter()
        .filter(|t| t.outcome.as_str() == "NXDOMAIN")
        .count();
    assert_eq!(nx, 2);
}

#[test]
fn external_name_walks_the_whole_search_list() {
    let mut s = Sim::new(k8s_config());
    s.pair(1.0, "api.example.com.default.svc.cluster.local", None);
    s.pair(1.01, "api.example.com.svc.cluster.local", None);
    s.pair(1.02, "api.example.com.cluster.local", None);
    s.pair(1.03, "api.example.com", Some("192.0.2.10"));
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "api.example.com");
    assert_eq!(l.form, Form::External);
    assert_eq!((l.queries, l.wasted), (8, 6));
    assert_eq!(l.result.as_str(), "NOERROR");
    assert_eq!(
        &*s.t
            .resolve("192.0.2.10".parse().unwrap(), secs(5.0))
            .unwrap()
            .name,
        "api.example.com"
    );
}

#[test]
fn trailing_dot_goes_straight_to_the_name() {
    let mut s = Sim::new(k8s_config());
    s.pair(1.0, "api.example.com", Some("192.0.2.10"));
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "api.example.com");
    assert!(l.absolute);
    assert_eq!(l.form, Form::ExternalAbsolute);
    assert_eq!((l.queries, l.wasted), (2, 0));
}

#[test]
fn service_fqdn_written_without_trailing_dot() {
    let mut s = Sim::new(k8s_config());
    let x = "demo-app.default.svc.cluster.local";
    s.pair(1.0, &format!("{x}.default.svc.cluster.local"), None);
    s.pair(1.01, &format!("{x}.svc.cluster.local"), None);
    s.pair(1.02, &format!("{x}.cluster.local"), None);
    s.pair(1.03, x, Some("10.96.0.20"));
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, x);
    assert_eq!(l.form, Form::ServiceFqdn);
    assert_eq!((l.queries, l.wasted), (8, 6));
    assert_eq!(
        &*s.t
            .resolve("10.96.0.20".parse().unwrap(), secs(5.0))
            .unwrap()
            .name,
        x
    );
}

#[test]
fn name_in_another_namespace() {
    let mut s = Sim::new(k8s_config());
    s.pair(1.0, "billing.prod.default.svc.cluster.local", None);
    s.pair(1.01, "billing.prod.svc.cluster.local", Some("10.96.5.5"));
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "billing.prod");
    assert_eq!(l.form, Form::Namespaced);
    let info =
        s.t.resolve("10.96.5.5".parse().unwrap(), secs(5.0))
            .unwrap();
    assert_eq!(info.service.as_deref(), Some("billing"));
    assert_eq!(info.namespace.as_deref(), Some("prod"));
}

#[test]
fn capture_joined_mid_expansion() {
    let mut s = Sim::new(k8s_config());
    s.pair(1.01, "api.example.com.svc.cluster.local", None);
    s.pair(1.02, "api.example.com.cluster.local", None);
    s.pair(1.03, "api.example.com", Some("192.0.2.10"));
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "api.example.com");
    assert!(l.partial);
    assert!(!l.absolute);
    assert_eq!((l.queries, l.wasted), (6, 4));
}

#[test]
fn nxdomain_everywhere_reports_the_last_candidate() {
    let mut s = Sim::new(k8s_config());
    s.pair(1.0, "nope.default.svc.cluster.local", None);
    s.pair(1.01, "nope.svc.cluster.local", None);
    s.pair(1.02, "nope.cluster.local", None);
    s.pair(1.03, "nope", None);
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "nope");
    assert_eq!(l.form, Form::Short);
    assert_eq!(l.result.as_str(), "NXDOMAIN");
    assert_eq!((l.queries, l.wasted), (8, 6));
    assert!(l.addresses.is_empty());
}

#[test]
fn a_name_walked_again_ends_the_lingering_walk_before_it() {
    let mut s = Sim::new(k8s_config());
    s.pair(1.0, "nope.default.svc.cluster.local", None);
    s.pair(1.01, "nope.svc.cluster.local", None);
    s.pair(1.02, "nope.cluster.local", None);
    s.pair(1.03, "nope", None);
    // The same client walks the same name again within the linger time:
    // the first walk is over and reported now, whole.
    s.pair(1.2, "nope.default.svc.cluster.local", None);
    let first: Vec<(u32, u32)> = s.lookups().iter().map(|l| (l.queries, l.wasted)).collect();
    assert_eq!(first, [(8, 6)]);
    s.pair(1.21, "nope.svc.cluster.local", None);
    s.pair(1.22, "nope.cluster.local", None);
    s.pair(1.23, "nope", None);
    s.t.advance(secs(5.0), &mut s.events);
    let all: Vec<(&str, u32, u32)> = s
        .lookups()
        .iter()
        .map(|l| (&*l.name, l.queries, l.wasted))
        .collect();
    assert_eq!(all, [("nope", 8, 6), ("nope", 8, 6)]);
}

#[test]
fn search_list_is_inferred_from_the_first_cluster_query() {
    let mut s = Sim::new(DnsConfig::default());
    assert!(s.t.inferred().search.is_empty());
    s.pair(1.0, "web.shop.shop.svc.corp.internal", None);
    s.pair(1.01, "web.shop.svc.corp.internal", Some("10.100.0.9"));
    let inf = s.t.inferred();
    assert_eq!(inf.namespace.as_deref(), Some("shop"));
    assert_eq!(inf.cluster_domain.as_deref(), Some("corp.internal"));
    assert_eq!(
        inf.search,
        [
            "shop.svc.corp.internal",
            "svc.corp.internal",
            "corp.internal"
        ]
    );
    assert!(inf.search_inferred && inf.namespace_inferred && inf.cluster_domain_inferred);
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "web.shop");
    assert_eq!(l.form, Form::Namespaced);
    assert_eq!(l.wasted, 2);
    let info =
        s.t.resolve("10.100.0.9".parse().unwrap(), secs(5.0))
            .unwrap();
    assert_eq!(
        (info.service.as_deref(), info.namespace.as_deref()),
        (Some("web"), Some("shop"))
    );
}

#[test]
fn namespace_and_domain_configured_build_the_search_list() {
    let t = DnsTracker::new(DnsConfig {
        namespace: Some("team-a".into()),
        cluster_domain: Some("cluster.local".into()),
        ..DnsConfig::default()
    });
    let inf = t.inferred();
    assert_eq!(
        inf.search,
        [
            "team-a.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local"
        ]
    );
    assert!(!inf.search_inferred);
}

#[test]
fn configured_search_list_gives_namespace_and_domain() {
    let mut s = Sim::new(DnsConfig {
        search: vec![
            "shop.svc.corp.internal".into(),
            "svc.corp.internal".into(),
            "corp.internal".into(),
        ],
        ..DnsConfig::default()
    });
    let inf = s.t.inferred();
    assert_eq!(inf.namespace.as_deref(), Some("shop"));
    assert_eq!(inf.cluster_domain.as_deref(), Some("corp.internal"));
    assert!(inf.cluster_domain_inferred && !inf.search_inferred);
    s.pair(1.0, "web.shop.svc.corp.internal", Some("10.100.0.9"));
    let info =
        s.t.resolve("10.100.0.9".parse().unwrap(), secs(2.0))
            .unwrap();
    assert_eq!(info.service.as_deref(), Some("web"));
}

#[test]
fn ndots_one_tries_a_dotted_name_as_written_first() {
    let mut s = Sim::new(DnsConfig {
        ndots: 1,
        ..k8s_config()
    });
    s.pair(1.0, "demo-app.default", None);
    s.pair(1.01, "demo-app.default.default.svc.cluster.local", None);
    s.pair(
        1.02,
        "demo-app.default.svc.cluster.local",
        Some("10.96.0.20"),
    );
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "demo-app.default");
    assert_eq!(l.form, Form::Namespaced);
    assert_eq!((l.queries, l.wasted), (6, 4));
    assert!(!l.absolute && !l.partial);
}

#[test]
fn unanswered_query_times_out_via_advance() {
    let mut s = Sim::new(k8s_config());
    s.query(10.0, "demo-app.default.svc.cluster.local.", RecordType::A);
    s.t.advance(secs(14.0), &mut s.events);
    assert!(s.completed().is_empty());
    s.t.advance(secs(15.0), &mut s.events);
    let c = s.completed();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].outcome.as_str(), "TIMEOUT");
    assert_eq!(c[0].latency_secs, None);
    let l = s.only_lookup(17.0);
    assert_eq!(l.result.as_str(), "TIMEOUT");
    assert_eq!(&*l.name, "demo-app");
}

#[test]
fn flush_completes_pending_and_open_lookups() {
    let mut s = Sim::new(k8s_config());
    s.query(10.0, "demo-app.default.svc.cluster.local.", RecordType::A);
    s.t.flush(&mut s.events);
    assert_eq!(s.completed()[0].outcome, Outcome::Timeout);
    let l = s.lookups();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].result, Outcome::Timeout);
    assert!((l[0].duration_secs - 5.0).abs() < 1e-6);
}

#[test]
fn single_request_mode_aaaa_after_a_answer_joins_the_lookup() {
    let mut s = Sim::new(k8s_config());
    let fq = "demo-app.default.svc.cluster.local.";
    let id = s.query(1.0, fq, RecordType::A);
    s.respond(
        1.001,
        id,
        fq,
        RecordType::A,
        ResponseCode::NoError,
        &[(fq, 5, a("10.96.0.20"))],
    );
    let id = s.query(1.002, fq, RecordType::AAAA);
    s.respond(
        1.003,
        id,
        fq,
        RecordType::AAAA,
        ResponseCode::NoError,
        &[(fq, 5, aaaa("fd00::20"))],
    );
    let l = s.only_lookup(5.0);
    assert_eq!((l.queries, l.wasted), (2, 0));
    assert_eq!(l.addresses.len(), 2);
    assert_eq!(
        &*s.t
            .resolve("fd00::20".parse().unwrap(), secs(5.0))
            .unwrap()
            .name,
        "demo-app"
    );
}

#[test]
fn interleaved_lookups_of_one_client_stay_apart() {
    let mut s = Sim::new(k8s_config());
    let a1 = "demo-app.default.default.svc.cluster.local.";
    let b1 = "api.example.com.default.svc.cluster.local.";
    let qa = s.query(1.0, a1, RecordType::A);
    let qb = s.query(1.001, b1, RecordType::A);
    s.respond(1.002, qa, a1, RecordType::A, ResponseCode::NXDomain, &[]);
    s.respond(1.003, qb, b1, RecordType::A, ResponseCode::ServFail, &[]);
    let a2 = "demo-app.default.svc.cluster.local.";
    let b2 = "api.example.com.svc.cluster.local.";
    let qb = s.query(1.004, b2, RecordType::A);
    let qa = s.query(1.005, a2, RecordType::A);
    s.respond(
        1.006,
        qa,
        a2,
        RecordType::A,
        ResponseCode::NoError,
        &[(a2, 5, a("10.96.0.20"))],
    );
    s.respond(1.007, qb, b2, RecordType::A, ResponseCode::NXDomain, &[]);
    let b3 = "api.example.com.cluster.local.";
    let qb = s.query(1.008, b3, RecordType::A);
    s.respond(1.009, qb, b3, RecordType::A, ResponseCode::NXDomain, &[]);
    let b4 = "api.example.com.";
    let qb = s.query(1.010, b4, RecordType::A);
    s.respond(
        1.011,
        qb,
        b4,
        RecordType::A,
        ResponseCode::NoError,
        &[(b4, 60, a("192.0.2.10"))],
    );
    s.t.advance(secs(5.0), &mut s.events);
    let l = s.lookups();
    let got: Vec<(&str, u32, u32, &str)> = l
        .iter()
        .map(|l| (&*l.name, l.queries, l.wasted, l.result.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("demo-app.default", 2, 1, "NOERROR"),
            ("api.example.com", 4, 3, "NOERROR")
        ]
    );
}

#[test]
fn refused_candidate_resent_with_the_same_ids_is_one_lookup() {
    // glibc against a server that refuses: the as-is candidate is sent
    // twice with the same ids (second attempt), as captured from getent.
    let mut s = Sim::new(k8s_config());
    s.pair(1.0, "nope.default.svc.cluster.local", None);
    s.pair(1.01, "nope.svc.cluster.local", None);
    s.pair(1.02, "nope.cluster.local", None);
    for attempt in 0..2 {
        let at = 1.03 + attempt as f64 * 0.001;
        for (id, qtype) in [(5051, RecordType::A), (4281, RecordType::AAAA)] {
            let bytes = query_bytes(id, "nope.", qtype);
            s.t.on_udp(secs(at), addr(CLIENT), addr(SERVER), &bytes, &mut s.events);
        }
        for (id, qtype) in [(5051, RecordType::A), (4281, RecordType::AAAA)] {
            s.respond(at + 0.0005, id, "nope.", qtype, ResponseCode::Refused, &[]);
        }
    }
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "nope");
    assert_eq!(l.result.as_str(), "REFUSED");
    assert_eq!((l.queries, l.wasted), (10, 6));
    let refused = s
        .completed()
        .iter()
        .filter(|t| t.outcome.as_str() == "REFUSED")
        .count();
    assert_eq!(refused, 4);
}

#[test]
fn endless_retries_are_reported_in_pieces() {
    let mut s = Sim::new(k8s_config());
    for i in 0..130 {
        let at = 1.0 + i as f64 * 0.01;
        let bytes = query_bytes(77, "nope.", RecordType::A);
        s.t.on_udp(secs(at), addr(CLIENT), addr(SERVER), &bytes, &mut s.events);
        s.respond(
            at + 0.001,
            77,
            "nope.",
            RecordType::A,
            ResponseCode::Refused,
            &[],
        );
    }
    s.t.advance(secs(10.0), &mut s.events);
    let queries: Vec<u32> = s.lookups().iter().map(|l| l.queries).collect();
    assert_eq!(queries, [128, 2]);
}

#[test]
fn glibc_sequential_aaaa_after_an_nxdomain_stays_in_the_lookup() {
    // As captured from getent: after the first candidate's A comes back
    // NXDOMAIN, glibc sends its AAAA alone 10 ms later.
    let mut s = Sim::new(k8s_config());
    let c0 = "demo-app.default.default.svc.cluster.local.";
    let id = s.query(1.0, c0, RecordType::A);
    s.respond(1.0001, id, c0, RecordType::A, ResponseCode::NXDomain, &[]);
    let id = s.query(1.01, c0, RecordType::AAAA);
    s.respond(
        1.0101,
        id,
        c0,
        RecordType::AAAA,
        ResponseCode::NXDomain,
        &[],
    );
    s.pair(
        1.0102,
        "demo-app.default.svc.cluster.local",
        Some("10.96.0.20"),
    );
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "demo-app.default");
    assert_eq!((l.queries, l.wasted), (4, 2));
}

#[test]
fn glibc_after_timeouts_tries_the_name_as_written() {
    // As captured with `timeout:1 attempts:2` and a silent server: each
    // candidate is sent twice with the same ids, and after the first
    // suffix times out glibc jumps to the name as written.
    let mut s = Sim::new(k8s_config());
    let c0 = "demo-app.default.svc.cluster.local.";
    for at in [1.0, 2.0] {
        for (id, qtype) in [(31122, RecordType::A), (48287, RecordType::AAAA)] {
            let bytes = query_bytes(id, c0, qtype);
            s.t.on_udp(secs(at), addr(CLIENT), addr(SERVER), &bytes, &mut s.events);
        }
    }
    for at in [3.0, 4.0] {
        for (id, qtype) in [(8932, RecordType::A), (5090, RecordType::AAAA)] {
            let bytes = query_bytes(id, "demo-app.", qtype);
            s.t.on_udp(secs(at), addr(CLIENT), addr(SERVER), &bytes, &mut s.events);
        }
    }
    let l = s.only_lookup(20.0);
    assert_eq!(&*l.name, "demo-app");
    assert_eq!(l.result.as_str(), "TIMEOUT");
    assert_eq!(&*l.fqdn, "demo-app");
    // Every copy on the wire counts, in the lookup as in the query count.
    assert_eq!((l.queries, l.retransmissions, l.wasted), (8, 4, 4));
    assert_eq!(s.t.stats().tx.retransmitted_queries, 4);
    let timeouts = s
        .completed()
        .iter()
        .filter(|t| t.outcome == Outcome::Timeout)
        .count();
    assert_eq!(timeouts, 8);
}

#[test]
fn the_same_name_asked_twice_is_two_lookups() {
    let mut s = Sim::new(k8s_config());
    s.pair(
        1.0,
        "demo-app.default.svc.cluster.local",
        Some("10.96.0.20"),
    );
    s.pair(
        1.2,
        "demo-app.default.svc.cluster.local",
        Some("10.96.0.20"),
    );
    s.t.advance(secs(5.0), &mut s.events);
    let l = s.lookups();
    assert_eq!(l.len(), 2);
    assert!(l.iter().all(|l| l.queries == 2 && &*l.name == "demo-app"));
}

#[test]
fn cname_chain_maps_addresses_to_the_app_name_and_service() {
    let mut s = Sim::new(k8s_config());
    let fq = "ext.default.svc.cluster.local.";
    let id = s.query(1.0, fq, RecordType::A);
    s.respond(
        1.01,
        id,
        fq,
        RecordType::A,
        ResponseCode::NoError,
        &[
            (fq, 30, cname("api.example.com.")),
            ("api.example.com.", 60, a("192.0.2.44")),
        ],
    );
    let info =
        s.t.resolve("192.0.2.44".parse().unwrap(), secs(2.0))
            .unwrap()
            .clone();
    assert_eq!(&*info.name, "ext");
    assert_eq!(info.service.as_deref(), Some("ext"));
    // The chain's smallest TTL (30) + grace.
    assert!(s
        .t
        .resolve("192.0.2.44".parse().unwrap(), secs(61.0))
        .is_some());
    assert!(s
        .t
        .resolve("192.0.2.44".parse().unwrap(), secs(61.02))
        .is_none());
}

#[test]
fn response_without_its_query_still_fills_the_table() {
    let mut s = Sim::new(k8s_config());
    let fq = "demo-app.default.svc.cluster.local.";
    s.respond(
        1.0,
        9,
        fq,
        RecordType::A,
        ResponseCode::NoError,
        &[(fq, 5, a("10.96.0.20"))],
    );
    assert!(s.completed().is_empty());
    assert_eq!(s.t.stats().tx.unmatched_responses, 1);
    assert_eq!(
        &*s.t
            .resolve("10.96.0.20".parse().unwrap(), secs(1.0))
            .unwrap()
            .name,
        "demo-app"
    );
}

#[test]
fn port_unreachable_completes_the_query() {
    let mut s = Sim::new(k8s_config());
    s.query(1.0, "demo-app.default.svc.cluster.local.", RecordType::A);
    s.t.on_port_unreachable(secs(1.001), addr(CLIENT), addr(SERVER), &mut s.events);
    assert_eq!(s.completed()[0].outcome.as_str(), "UNREACHABLE");
    let l = s.only_lookup(5.0);
    assert_eq!(l.result.as_str(), "UNREACHABLE");
}

fn tcp(seq: u32, flags: u8, payload: &[u8]) -> TcpSegment<'_> {
    TcpSegment {
        src_port: 0,
        dst_port: 0,
        seq,
        ack: 0,
        flags: TcpFlags(flags),
        payload,
        payload_len: payload.len() as u32,
    }
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    out
}

#[test]
fn truncated_udp_answer_then_tcp_retry_is_one_lookup() {
    let mut s = Sim::new(k8s_config());
    let fq = "big.default.svc.cluster.local.";
    let id = s.query(1.0, fq, RecordType::A);
    let mut tc = hickory_proto::op::Message::from_vec(&response_bytes(
        id,
        fq,
        RecordType::A,
        ResponseCode::NoError,
        &[],
    ))
    .unwrap();
    tc.metadata.truncation = true;
    s.t.on_udp(
        secs(1.001),
        addr(SERVER),
        addr(CLIENT),
        &tc.to_vec().unwrap(),
        &mut s.events,
    );
    assert!(s.completed()[0].truncated);

    let (c, v) = (addr("10.244.1.5:40100"), addr(SERVER));
    let ack = TcpFlags::ACK;
    let q = framed(&query_bytes(id, fq, RecordType::A));
    s.t.on_tcp(
        secs(1.002),
        c,
        v,
        &tcp(500, TcpFlags::SYN, &[]),
        &mut s.events,
    );
    s.t.on_tcp(
        secs(1.003),
        v,
        c,
        &tcp(900, TcpFlags::SYN | ack, &[]),
        &mut s.events,
    );
    // Query split inside the length prefix.
    s.t.on_tcp(secs(1.004), c, v, &tcp(501, ack, &q[..1]), &mut s.events);
    s.t.on_tcp(secs(1.005), c, v, &tcp(502, ack, &q[1..]), &mut s.events);
    let r = framed(&response_bytes(
        id,
        fq,
        RecordType::A,
        ResponseCode::NoError,
        &[(fq, 5, a("10.96.7.7"))],
    ));
    s.t.on_tcp(
        secs(1.006),
        v,
        c,
        &tcp(901, ack | TcpFlags::FIN, &r),
        &mut s.events,
    );
    let done = s.completed();
    assert_eq!(done.len(), 2);
    assert_eq!(done[1].transport, Transport::Tcp);
    assert!(done[1].answered);
    let l = s.only_lookup(5.0);
    assert_eq!(&*l.name, "big");
    assert_eq!((l.queries, l.wasted), (2, 0));
    assert_eq!(l.result.as_str(), "NOERROR");
    assert_eq!(
        &*s.t
            .resolve("10.96.7.7".parse().unwrap(), secs(5.0))
            .unwrap()
            .name,
        "big"
    );
}

#[test]
fn count_bomb_through_the_tracker_is_malformed() {
    let mut s = Sim::new(k8s_config());
    let mut bomb = vec![0u8; 12];
    bomb[4] = 0xff;
    bomb[5] = 0xff;
    s.t.on_udp(secs(1.0), addr(CLIENT), addr(SERVER), &bomb, &mut s.events);
    assert_eq!(
        s.events,
        [DnsEvent::Malformed {
            reason: wire::WireError::CountsExceedLength,
            transport: Transport::Udp
        }]
    );
    assert_eq!(s.t.stats().malformed, 1);
}

#[test]
fn tables_are_bounded_and_evictions_reported() {
    let mut s = Sim::new(DnsConfig {
        max_pending: 2,
        max_lookups: 2,
        max_names: 2,
        ..k8s_config()
    });
    for i in 0..4 {
        s.query(1.0, &format!("n{i}.example.com."), RecordType::A);
    }
    let evicted = |s: &Sim, table: DnsTable| {
        s.events
            .iter()
            .filter(|e| matches!(e, DnsEvent::Evicted { table: t } if *t == table))
            .count()
    };
    assert_eq!(evicted(&s, DnsTable::Pending), 2);
    assert_eq!(evicted(&s, DnsTable::Lookups), 2);
    assert_eq!(s.t.stats().lookups_open, 2);
    for i in 0..3u8 {
        let fq = format!("m{i}.example.com.");
        s.respond(
            2.0,
            1,
            &fq,
            RecordType::A,
            ResponseCode::NoError,
            &[(&fq, 60, a(&format!("192.0.2.{i}")))],
        );
    }
    assert_eq!(evicted(&s, DnsTable::Names), 1);
    assert_eq!(s.t.stats().names, 2);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
        seqs in proptest::collection::vec(any::<u32>(), 8),
        flags in proptest::collection::vec(any::<u8>(), 8),
    ) {
        let mut t = DnsTracker::new(k8s_config());
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let ts = secs(i as f64);
            t.on_udp(ts, addr(CLIENT), addr(SERVER), p, &mut out);
            t.on_udp(ts, addr(SERVER), addr(CLIENT), p, &mut out);
            let seg = TcpSegment {
                src_port: 40000,
                dst_port: 53,
                seq: seqs[i % seqs.len()],
                ack: 0,
                flags: TcpFlags(flags[i % flags.len()]),
                payload: p,
                payload_len: p.len() as u32 + (flags[i % flags.len()] as u32 & 3),
            };
            t.on_tcp(ts, addr(CLIENT), addr(SERVER), &seg, &mut out);
            t.advance(ts, &mut out);
        }
        t.flush(&mut out);
        prop_assert!(t.stats().tx.queries + t.stats().malformed + t.stats().ignored + t.stats().tx.responses > 0);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        pos in proptest::collection::vec(any::<usize>(), 1..6),
        vals in proptest::collection::vec(any::<u8>(), 6),
        cut in any::<usize>(),
    ) {
        let fq = "demo-app.default.svc.cluster.local.";
        let mut msg = response_bytes(7, fq, RecordType::A, ResponseCode::NoError, &[(fq, 5, a("10.96.0.20")), (fq, 5, cname("x.example.com."))]);
        for (i, p) in pos.iter().enumerate() {
            let at = p % msg.len();
            msg[at] = vals[i % vals.len()];
        }
        let end = cut % (msg.len() + 1);
        let mut t = DnsTracker::new(k8s_config());
        let mut out = Vec::new();
        t.on_udp(secs(1.0), addr(SERVER), addr(CLIENT), &msg[..end], &mut out);
        t.on_tcp(secs(1.0), addr(SERVER), addr(CLIENT), &tcp(1, TcpFlags::ACK, &framed(&msg[..end])), &mut out);
        prop_assert!(out.len() <= 2);
    }
}

/// Sends the query `id` for `name` again (a resolver's retransmission).
fn resend(s: &mut Sim, at: f64, id: u16, name: &str, qtype: RecordType) {
    let bytes = query_bytes(id, name, qtype);
    s.t.advance(secs(at), &mut s.events);
    s.t.on_udp(secs(at), addr(CLIENT), addr(SERVER), &bytes, &mut s.events);
}

fn late_answers(s: &Sim) -> Vec<&LateAnswer> {
    s.events
        .iter()
        .filter_map(|e| match e {
            DnsEvent::LateAnswer(l) => Some(l),
            _ => None,
        })
        .collect()
}

#[test]
fn a_slow_server_answering_every_copy_is_three_answered_queries_and_one_lookup() {
    let mut s = Sim::new(k8s_config());
    let fq = "cart.default.svc.cluster.local.";
    let id = s.query(0.0, fq, RecordType::A);
    resend(&mut s, 1.0, id, fq, RecordType::A);
    resend(&mut s, 2.0, id, fq, RecordType::A);
    let retx = s
        .events
        .iter()
        .filter(|e| matches!(e, DnsEvent::Query(q) if q.retransmission))
        .count();
    assert_eq!(retx, 2);
    for at in [2.5, 3.5, 4.5] {
        s.respond(
            at,
            id,
            fq,
            RecordType::A,
            ResponseCode::NoError,
            &[(fq, 5, a("10.96.0.30"))],
        );
    }
    let done = s.completed();
    assert_eq!(done.len(), 3);
    assert!(done
        .iter()
        .all(|t| t.outcome.as_str() == "NOERROR" && (t.latency_secs.unwrap() - 2.5).abs() < 1e-9));
    assert!(late_answers(&s).is_empty());
    let l = s.only_lookup(20.0);
    assert_eq!(&*l.name, "cart");
    assert_eq!(l.result.as_str(), "NOERROR");
    assert_eq!((l.queries, l.retransmissions, l.wasted), (3, 2, 0));
    assert_eq!(l.addresses, ["10.96.0.30".parse::<IpAddr>().unwrap()]);
    let st = s.t.stats().tx;
    assert_eq!((st.queries, st.retransmitted_queries), (3, 2));
    assert_eq!(
        (st.responses, st.unmatched_responses, st.late_answers),
        (3, 0, 0)
    );
}

#[test]
fn servfail_after_seven_seconds_is_three_timeouts_and_three_late_answers() {
    let mut s = Sim::new(k8s_config());
    let fq = "cart.default.svc.cluster.local.";
    let id = s.query(0.0, fq, RecordType::A);
    resend(&mut s, 1.0, id, fq, RecordType::A);
    resend(&mut s, 2.0, id, fq, RecordType::A);
    for at in [7.0, 8.0, 9.0] {
        s.respond(at, id, fq, RecordType::A, ResponseCode::ServFail, &[]);
    }
    let done = s.completed();
    assert_eq!(done.len(), 3);
    assert!(done.iter().all(|t| t.outcome == Outcome::Timeout));
    let late = late_answers(&s);
    assert_eq!(late.len(), 3);
    assert!(late
        .iter()
        .all(|l| l.rcode.as_str() == "SERVFAIL" && (l.latency_secs - 7.0).abs() < 1e-9));
    let l = s.only_lookup(30.0);
    assert_eq!(l.result.as_str(), "TIMEOUT");
    assert_eq!((l.queries, l.retransmissions), (3, 2));
    let st = s.t.stats().tx;
    assert_eq!(
        (st.timeouts, st.late_answers, st.unmatched_responses),
        (3, 3, 0)
    );
}

#[test]
fn a_copy_resent_after_the_timeout_is_a_retransmission_of_the_same_lookup() {
    // glibc's 5 s retry after the first copy was lost (the conntrack race).
    let mut s = Sim::new(k8s_config());
    let fq = "cart.default.svc.cluster.local.";
    let id = s.query(0.0, fq, RecordType::A);
    resend(&mut s, 5.001, id, fq, RecordType::A);
    s.respond(
        5.003,
        id,
        fq,
        RecordType::A,
        ResponseCode::NoError,
        &[(fq, 5, a("10.96.0.30"))],
    );
    let outcomes: Vec<&str> = s.completed().iter().map(|t| t.outcome.as_str()).collect();
    assert_eq!(outcomes, ["TIMEOUT", "NOERROR"]);
    assert!((s.completed()[1].latency_secs.unwrap() - 0.002).abs() < 1e-9);
    let l = s.only_lookup(30.0);
    assert_eq!(l.result.as_str(), "NOERROR");
    assert_eq!((l.queries, l.retransmissions), (2, 1));
    assert!((l.duration_secs - 5.003).abs() < 1e-6);
}

#[test]
fn copies_past_the_bound_are_counted_as_not_tracked() {
    let mut s = Sim::new(k8s_config());
    let fq = "cart.default.svc.cluster.local.";
    let id = s.query(0.0, fq, RecordType::A);
    for i in 1..20 {
        resend(&mut s, f64::from(i) * 0.01, id, fq, RecordType::A);
    }
    let evicted = s
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                DnsEvent::Evicted {
                    table: DnsTable::Pending
                }
            )
        })
        .count();
    assert_eq!(evicted, 20 - transaction::MAX_SENDS);
    s.t.flush(&mut s.events);
    assert_eq!(s.completed().len(), transaction::MAX_SENDS);
}
