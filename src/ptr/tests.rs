//! PTR resolver state: query names, answer parsing, cache TTLs (positive and
//! negative), the bound, the rate limit, retries. Answers are built with
//! hickory-proto, as a server would send them.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A response to `id` for `addr`: `ptrs` as (target, ttl); `soa` as
/// (record TTL, minimum) in the authority section.
fn response(
    id: u16,
    addr: IpAddr,
    rcode: ResponseCode,
    ptrs: &[(&str, u32)],
    soa: Option<(u32, u32)>,
) -> Vec<u8> {
    let mut msg = Message::new(id, MessageType::Response, OpCode::Query);
    msg.metadata.response_code = rcode;
    let qname = query_name(addr);
    msg.add_query(Query::query(qname.clone(), RecordType::PTR));
    for (target, ttl) in ptrs {
        msg.add_answer(Record::from_rdata(
            qname.clone(),
            *ttl,
            RData::PTR(PTR(name(target))),
        ));
    }
    if let Some((ttl, minimum)) = soa {
        let soa = SOA::new(
            name("ns.dns.cluster.local."),
            name("hostmaster.cluster.local."),
            1,
            7200,
            1800,
            86400,
            minimum,
        );
        msg.add_authority(Record::from_rdata(
            name("in-addr.arpa."),
            ttl,
            RData::SOA(soa),
        ));
    }
    msg.to_vec().unwrap()
}

#[test]
fn query_names_v4_and_v6_nibbles() {
    assert_eq!(
        query_name(ip("10.244.1.10")).to_ascii(),
        "10.1.244.10.in-addr.arpa."
    );
    assert_eq!(
        query_name(ip("fd00:10:244::1:10")).to_ascii(),
        "0.1.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa."
    );
    let wire = build_query(0x1234, ip("10.96.100.10")).unwrap();
    let msg = Message::from_vec(&wire).unwrap();
    assert_eq!(msg.metadata.id, 0x1234);
    assert!(msg.metadata.recursion_desired);
    assert_eq!(msg.queries.len(), 1);
    assert_eq!(msg.queries[0].query_type, RecordType::PTR);
    assert_eq!(msg.queries[0].name.to_ascii(), "10.100.96.10.in-addr.arpa.");
}

#[test]
fn parses_names_nxdomain_nodata_and_garbage() {
    let a = ip("10.244.1.10");
    let got = parse_answer(&response(
        7,
        a,
        ResponseCode::NoError,
        &[
            ("demo-app.default.svc.cluster.local.", 5),
            ("10-244-1-10.Demo-App.default.svc.cluster.local.", 3),
        ],
        None,
    ))
    .unwrap();
    assert_eq!(got.id, 7);
    assert_eq!(got.question, "10.1.244.10.in-addr.arpa");
    assert_eq!(got.result, PtrResult::Name);
    assert_eq!(
        got.names,
        [
            "10-244-1-10.demo-app.default.svc.cluster.local",
            "demo-app.default.svc.cluster.local"
        ]
    );
    assert_eq!(got.ttl, Some(3));

    let nx = parse_answer(&response(8, a, ResponseCode::NXDomain, &[], Some((30, 5)))).unwrap();
    assert_eq!((nx.result, nx.ttl), (PtrResult::Nxdomain, Some(5)));
    let nodata =
        parse_answer(&response(9, a, ResponseCode::NoError, &[], Some((60, 900)))).unwrap();
    assert_eq!((nodata.result, nodata.ttl), (PtrResult::Nodata, Some(60)));
    let fail = parse_answer(&response(9, a, ResponseCode::ServFail, &[], None)).unwrap();
    assert_eq!((fail.result, fail.ttl), (PtrResult::Servfail, None));

    assert_eq!(parse_answer(b"short"), Err(PtrError::Malformed));
    // A 12-byte header claiming 65535 answers is refused before decoding.
    let mut lying = vec![0u8; 12];
    lying[2] = 0x80;
    lying[6] = 0xff;
    lying[7] = 0xff;
    assert_eq!(parse_answer(&lying), Err(PtrError::Malformed));
    // Our own query is not an answer.
    assert_eq!(
        parse_answer(&build_query(1, a).unwrap()),
        Err(PtrError::NotAnAnswer)
    );
}

fn cfg() -> PtrConfig {
    PtrConfig {
        rate_per_sec: 5.0,
        burst: 10.0,
        max_entries: 4,
        max_queued: 3,
        timeout: Duration::from_secs(2),
        attempts: 2,
        min_ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(3600),
    }
}

/// Sends what the resolver allows at `now`: (id, addr) pairs.
fn drain(r: &mut PtrResolver, now: Instant) -> Vec<(u16, IpAddr)> {
    std::iter::from_fn(|| r.next_transmission(now)).collect()
}

#[test]
fn one_query_per_address_then_cached_for_the_ttl() {
    let t0 = Instant::now();
    let mut r = PtrResolver::new(cfg(), t0);
    let a = ip("10.96.100.10");
    assert_eq!(r.want(a, t0), Want::Queued { delayed: false });
    assert_eq!(r.want(a, t0), Want::Known, "queued already");
    let sent = drain(&mut r, t0);
    assert_eq!(sent.len(), 1);
    assert_eq!(r.want(a, t0), Want::Known, "in flight");
    let (id, _) = sent[0];
    let out = r
        .on_datagram(
            &response(
                id,
                a,
                ResponseCode::NoError,
                &[("demo-app.default.svc.cluster.local.", 120)],
                None,
            ),
            t0,
        )
        .unwrap();
    assert_eq!(out.addr, a);
    assert_eq!(out.result, PtrResult::Name);
    assert_eq!(out.names, ["demo-app.default.svc.cluster.local"]);
    // The same answer again matches nothing in flight.
    assert!(r
        .on_datagram(&response(id, a, ResponseCode::NoError, &[], None), t0)
        .is_none());
    assert_eq!(r.stats().unmatched, 1);
    assert_eq!(r.want(a, t0 + Duration::from_secs(119)), Want::Known);
    assert!(matches!(
        r.want(a, t0 + Duration::from_secs(120)),
        Want::Queued { .. }
    ));
}

#[test]
fn ttls_are_clamped_and_negative_answers_cached_by_the_soa() {
    let t0 = Instant::now();
    let mut r = PtrResolver::new(cfg(), t0);
    let (short, negative, bare_nx) = (ip("10.96.0.1"), ip("10.244.9.9"), ip("10.244.9.10"));
    for a in [short, negative, bare_nx] {
        r.want(a, t0);
    }
    let sent = drain(&mut r, t0);
    assert_eq!(sent.len(), 3);
    for (id, a) in sent {
        let bytes = if a == short {
            // CoreDNS's TTL 5 s: kept for the 30 s floor.
            response(
                id,
                a,
                ResponseCode::NoError,
                &[("x.y.svc.cluster.local.", 5)],
                None,
            )
        } else if a == negative {
            response(id, a, ResponseCode::NXDomain, &[], Some((300, 60)))
        } else {
            // NXDOMAIN without SOA: the floor.
            response(id, a, ResponseCode::NXDomain, &[], None)
        };
        r.on_datagram(&bytes, t0).unwrap();
    }
    let at = |s| t0 + Duration::from_secs(s);
    assert_eq!(r.want(short, at(29)), Want::Known);
    assert!(matches!(r.want(short, at(30)), Want::Queued { .. }));
    assert_eq!(r.want(bare_nx, at(29)), Want::Known);
    assert!(matches!(r.want(bare_nx, at(30)), Want::Queued { .. }));
    assert_eq!(
        r.want(negative, at(59)),
        Want::Known,
        "min(SOA TTL, minimum) = 60 s"
    );
    assert!(matches!(r.want(negative, at(60)), Want::Queued { .. }));
}

#[test]
fn the_table_is_bounded_and_evicts_the_entry_expiring_first() {
    let t0 = Instant::now();
    let mut r = PtrResolver::new(cfg(), t0);
    let addrs: Vec<IpAddr> = (1..=4).map(|i| ip(&format!("10.244.0.{i}"))).collect();
    for (i, &a) in addrs.iter().enumerate() {
        r.want(a, t0);
        let (id, _) = r.next_transmission(t0).unwrap();
        let ttl = 100 + 10 * i as u32;
        r.on_datagram(
            &response(
                id,
                a,
                ResponseCode::NoError,
                &[("p.q.svc.cluster.local.", ttl)],
                None,
            ),
            t0,
        )
        .unwrap();
    }
    assert_eq!(r.len(), 4);
    let new = ip("10.244.0.5");
    assert!(matches!(r.want(new, t0), Want::Queued { .. }));
    assert_eq!(r.len(), 4, "bounded");
    assert_eq!(r.stats().evicted, 1);
    // The shortest TTL (10.244.0.1, 100 s) went; the others are still cached.
    for &a in &addrs[1..] {
        assert_eq!(r.want(a, t0), Want::Known);
    }
}

#[test]
fn queued_and_in_flight_entries_are_never_evicted() {
    let t0 = Instant::now();
    let mut r = PtrResolver::new(
        PtrConfig {
            max_entries: 2,
            max_queued: 10,
            ..cfg()
        },
        t0,
    );
    assert!(matches!(r.want(ip("10.0.0.1"), t0), Want::Queued { .. }));
    assert!(matches!(r.want(ip("10.0.0.2"), t0), Want::Queued { .. }));
    assert_eq!(r.want(ip("10.0.0.3"), t0), Want::Dropped);
    assert_eq!(r.len(), 2);
}

#[test]
fn a_burst_of_addresses_is_paced_by_the_token_bucket() {
    let t0 = Instant::now();
    let mut r = PtrResolver::new(
        PtrConfig {
            max_entries: 1000,
            max_queued: 100,
            ..cfg()
        },
        t0,
    );
    let mut delayed = 0;
    for i in 0..50u8 {
        match r.want(ip(&format!("10.244.1.{i}")), t0) {
            Want::Queued { delayed: d } => delayed += usize::from(d),
            other => panic!("{other:?}"),
        }
    }
    // The burst: 10 at once; the rest wait.
    assert_eq!(drain(&mut r, t0).len(), 10);
    assert!(delayed >= 39, "{delayed} addresses waited");
    let wake = r.next_wakeup(t0).unwrap();
    assert_eq!(wake, t0 + Duration::from_millis(200), "5 tokens a second");
    // Over the next 4 s: 5 a second, 20 in all, never more.
    let mut sent = 0;
    for ms in (100..=4000).step_by(100) {
        sent += drain(&mut r, t0 + Duration::from_millis(ms)).len();
    }
    assert_eq!(sent, 20);
    // The queue bound: past it addresses are dropped, not queued.
    let mut r = PtrResolver::new(cfg(), t0);
    for i in 0..3u8 {
        assert!(matches!(
            r.want(ip(&format!("10.1.0.{i}")), t0),
            Want::Queued { .. }
        ));
    }
    assert_eq!(r.want(ip("10.1.0.9"), t0), Want::Dropped);
}

#[test]
fn timeouts_retry_with_the_same_id_then_give_up() {
    let t0 = Instant::now();
    let mut r = PtrResolver::new(cfg(), t0);
    let a = ip("10.244.2.50");
    r.want(a, t0);
    let (id, _) = r.next_transmission(t0).unwrap();
    assert_eq!(r.next_wakeup(t0), Some(t0 + Duration::from_secs(2)));
    assert!(r.expire(t0 + Duration::from_millis(1999)).is_empty());
    let t1 = t0 + Duration::from_secs(2);
    let out = r.expire(t1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].result, PtrResult::Timeout);
    assert!(r.expire(t1).is_empty(), "a timeout is counted once");
    assert_eq!(r.next_transmission(t1), Some((id, a)), "same ID");
    let t2 = t1 + Duration::from_secs(2);
    assert_eq!(r.expire(t2).len(), 1);
    assert_eq!(r.next_transmission(t2), None, "two attempts in all");
    assert_eq!(r.next_wakeup(t2), None);
    // Given up: not asked again before the floor.
    assert_eq!(r.want(a, t2 + Duration::from_secs(29)), Want::Known);
    assert!(matches!(
        r.want(a, t2 + Duration::from_secs(30)),
        Want::Queued { .. }
    ));
    // A late answer to the given-up ID is unmatched, not a result.
    assert!(r
        .on_datagram(&response(id, a, ResponseCode::NXDomain, &[], None), t2)
        .is_none());
}

#[test]
fn an_answer_to_another_question_does_not_match() {
    let t0 = Instant::now();
    let mut r = PtrResolver::new(cfg(), t0);
    let a = ip("10.96.100.10");
    r.want(a, t0);
    let (id, _) = r.next_transmission(t0).unwrap();
    let other = response(id, ip("10.96.100.11"), ResponseCode::NXDomain, &[], None);
    assert!(r.on_datagram(&other, t0).is_none());
    assert!(r.on_datagram(b"\x00\x01garbage-bytes", t0).is_none());
    assert_eq!(r.stats().unmatched, 1);
    assert_eq!(r.stats().malformed, 1);
    assert_eq!(r.want(a, t0), Want::Known, "still in flight");
    assert_eq!(r.send_failed(id, t0).unwrap().result, PtrResult::SendError);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        Want(u8),
        Advance(u16),
        Answer { pick: u8, rcode: u8, ttl: u32 },
        Garbage(Vec<u8>),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => any::<u8>().prop_map(Step::Want),
            2 => (0u16..3000).prop_map(Step::Advance),
            2 => (any::<u8>(), 0u8..6, any::<u32>())
                .prop_map(|(pick, rcode, ttl)| Step::Answer { pick, rcode, ttl }),
            1 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(Step::Garbage),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random bytes and mutated answers never panic the parser.
        #[test]
        fn answers_of_any_shape_parse_or_fail_cleanly(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..8),
        ) {
            let _ = parse_answer(&bytes);
            let mut valid = response(
                1,
                ip("10.244.1.10"),
                ResponseCode::NoError,
                &[("a.b.svc.cluster.local.", 5)],
                Some((5, 5)),
            );
            for (at, x) in flips {
                let i = usize::from(at) % valid.len();
                valid[i] ^= x;
            }
            let _ = parse_answer(&valid);
        }

        /// Whatever arrives, the table and the queue stay within their caps
        /// and transmissions never outrun the bucket (burst + rate x time).
        #[test]
        fn resolver_stays_bounded_and_paced(steps in proptest::collection::vec(step(), 1..200)) {
            let t0 = Instant::now();
            let c = cfg();
            let mut r = PtrResolver::new(c.clone(), t0);
            let mut now = t0;
            let mut sent: Vec<(u16, IpAddr)> = Vec::new();
            for s in steps {
                match s {
                    Step::Want(i) => {
                        r.want(ip(&format!("10.244.7.{i}")), now);
                    }
                    Step::Advance(ms) => {
                        now += Duration::from_millis(u64::from(ms));
                        r.expire(now);
                    }
                    Step::Answer { pick, rcode, ttl } => {
                        if !sent.is_empty() {
                            let (id, a) = sent[usize::from(pick) % sent.len()];
                            let rc = [
                                ResponseCode::NoError,
                                ResponseCode::NXDomain,
                                ResponseCode::ServFail,
                                ResponseCode::Refused,
                                ResponseCode::FormErr,
                                ResponseCode::NotImp,
                            ][usize::from(rcode)];
                            let ptrs = [("x.y.svc.cluster.local.", ttl)];
                            let bytes = response(id, a, rc, if rcode == 0 { &ptrs } else { &[] }, None);
                            r.on_datagram(&bytes, now);
                        }
                    }
                    Step::Garbage(b) => {
                        r.on_datagram(&b, now);
                    }
                }
                while let Some(t) = r.next_transmission(now) {
                    sent.push(t);
                }
                prop_assert!(r.len() <= c.max_entries);
                prop_assert!(r.queue.len() <= c.max_queued);
                let secs = now.duration_since(t0).as_secs_f64();
                prop_assert!(
                    sent.len() as f64 <= c.burst + c.rate_per_sec * secs + 1e-9,
                    "{} sent in {secs} s", sent.len()
                );
            }
        }
    }
}
