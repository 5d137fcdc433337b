//! The DNS tracker's per-packet cost in heap allocations: a resolver
//! repeating glibc's ndots:5 search walk (A and AAAA per candidate, NXDOMAIN
//! until the name as written, each lookup from a new port and id) reaches a
//! steady state where its queries and responses allocate nothing. Counted
//! with a global allocator that tallies every call.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::net::SocketAddr;
use std::sync::Mutex;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use podpath::dns::wire::testkit::{a, query_bytes, response_bytes};
use podpath::dns::{DnsConfig, DnsEvent, DnsTracker};
use podpath::Timestamp;

/// A client and the datagrams of one of its lookups (`walk`).
type Round = (SocketAddr, Vec<(bool, Vec<u8>)>);

/// One `getaddrinfo` of `name` with ids from `id`: the datagrams (true:
/// client → server, false: back) in wire order.
fn walk(name: &str, id: u16, answered: bool) -> Vec<(bool, Vec<u8>)> {
    let suffixes = [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "cluster.local.",
        "",
    ];
    let mut out = Vec::new();
    for (i, s) in suffixes.iter().enumerate() {
        let fqdn = format!("{name}.{s}");
        let last = i + 1 == suffixes.len();
        for (j, qtype) in [RecordType::A, RecordType::AAAA].into_iter().enumerate() {
            let qid = id.wrapping_add((2 * i + j) as u16);
            out.push((true, query_bytes(qid, &fqdn, qtype)));
            let (rcode, records) = if answered && last && qtype == RecordType::A {
                (
                    ResponseCode::NoError,
                    vec![(fqdn.as_str(), 30, a("192.0.2.7"))],
                )
            } else {
                (ResponseCode::NXDomain, Vec::new())
            };
            out.push((false, response_bytes(qid, &fqdn, qtype, rcode, &records)));
        }
    }
    out
}

/// Feeds lookups `from..to` of `rounds` (50 ms apart); returns (packets, lookups reported).
fn run(
    dns: &mut DnsTracker,
    rounds: &[Round],
    from: usize,
    to: usize,
    out: &mut Vec<DnsEvent>,
) -> (u64, usize) {
    let server: SocketAddr = SocketAddr::from(([10, 96, 0, 10], 53));
    let (mut packets, mut lookups) = (0, 0);
    for (r, (client, datagrams)) in rounds.iter().enumerate().take(to).skip(from) {
        for (k, (query, bytes)) in datagrams.iter().enumerate() {
            let ts = Timestamp::from_secs_f64(1000.0 + r as f64 * 0.25 + k as f64 * 1e-4);
            if *query {
                dns.on_udp(ts, *client, server, bytes, out);
            } else {
                dns.on_udp(ts, server, *client, bytes, out);
            }
            dns.advance(ts, out);
            lookups += out
                .iter()
                .filter(|e| matches!(e, DnsEvent::Lookup(_)))
                .count();
            out.clear();
            packets += 1;
        }
    }
    (packets, lookups)
}

fn tracker() -> DnsTracker {
    DnsTracker::new(DnsConfig {
        search: vec![
            "default.svc.cluster.local".into(),
            "svc.cluster.local".into(),
            "cluster.local".into(),
        ],
        namespace: Some("default".into()),
        cluster_domain: Some("cluster.local".into()),
        ..DnsConfig::default()
    })
}

/// Allocations over the last 500 of 1500 walks, 250 ms apart (the first
/// 1000 warm the tables up: past the 5 s query timeout and past a rebuild
/// of the lookups' deadline heap), and the packets of those 500.
fn steady_allocations(answered: bool) -> (u64, u64) {
    // The counter is global: one measurement at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut dns = tracker();
    // Lookups of two names, each from its own port and ids; lookups
    // linger 1 s, so about 5 are open at a time.
    let rounds: Vec<Round> = (0..1500u16)
        .map(|i| {
            let name = if i % 2 == 0 {
                "nosuch"
            } else {
                "api.example.com"
            };
            let client = SocketAddr::from(([10, 244, 1, 20], 40000 + i % 20000));
            (client, walk(name, i.wrapping_mul(16), answered))
        })
        .collect();
    let mut out: Vec<DnsEvent> = Vec::with_capacity(1024);
    let (warm, _) = run(&mut dns, &rounds, 0, 1000, &mut out);
    assert!(warm > 0);
    let before = counting_alloc::allocations();
    let (packets, lookups) = run(&mut dns, &rounds, 1000, 1500, &mut out);
    let after = counting_alloc::allocations();
    // The walks were read as lookups (reported after their linger).
    assert!(lookups >= 400, "{lookups} lookups reported");
    eprintln!(
        "dns steady state (answered: {answered}): {} allocations over {packets} packets",
        after - before
    );
    (after - before, packets)
}

#[test]
fn a_repeated_search_walk_allocates_nothing_per_packet() {
    let (allocations, packets) = steady_allocations(false);
    assert_eq!(allocations, 0, "allocations over {packets} packets");
}

/// With an address answer at the end of each walk, what allocates is the
/// answer itself (its addresses and the name table's records), a bounded
/// handful per answered response, not per packet.
#[test]
fn answers_allocate_a_bounded_handful_each() {
    let (allocations, packets) = steady_allocations(true);
    // One answered response per 16 packets.
    let answered = packets / 16;
    assert!(answered > 0);
    assert!(
        allocations <= 8 * answered,
        "{allocations} allocations for {answered} answered responses"
    );
}
