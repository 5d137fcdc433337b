//! Findings (issue 16): each kind produced by a committed capture or one
//! built here, asserted exactly; none on a clean capture; the README shows
//! what the binary prints.

mod common;

use common::{analyze, capture, section};
use std::net::IpAddr;
use std::process::Command;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use podpath::decode::build::{FrameBuilder, PcapWriter};
use podpath::decode::{LinkType, TcpFlags};
use serde_json::{json, Value};

fn findings(json: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(json).expect("json");
    assert_eq!(v["findings_omitted"], 0);
    v["findings"].as_array().expect("findings array").clone()
}

/// (kind, subject) of each finding, in order.
fn kinds(f: &[Value]) -> Vec<(String, String)> {
    f.iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or("").to_string(),
                f["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The seed: the pod-IP call, the ClusterIP call named with the name to
/// use, and the search-walk cost of `demo-app.default`; golden.
#[test]
fn seed_findings_golden() {
    let got = findings(&analyze("json", &[], None));
    let want = json!([
        {
            "kind": "literal_pod_ip",
            "subject": "10.244.1.10:80",
            "evidence": "10.244.1.20 dialed 10.244.1.10:80 by address once; the capture holds no name for 10.244.1.10 (no DNS answer or PTR for it)",
            "advice": "dial `<service>` instead of the pod IP: a pod IP changes whenever the pod restarts or is rescheduled, the Service's DNS name does not; `<service>` from namespace default, `<service>.<namespace>` from another; `kubectl get endpointslices -A -o wide | grep -w 10.244.1.10` finds the Service",
            "impact": 10
        },
        {
            "kind": "literal_cluster_ip",
            "subject": "10.96.100.10:80",
            "evidence": "10.244.1.20 dialed 10.96.100.10:80 by address once; it is Service default/demo-app (demo-app.default.svc.cluster.local, from dns_answer)",
            "advice": "dial `demo-app` instead of the ClusterIP: a ClusterIP changes when the Service is deleted and recreated, the Service's DNS name does not",
            "impact": 5
        },
        {
            "kind": "search_walk_waste",
            "subject": "demo-app.default",
            "evidence": "1 lookup of `demo-app.default` sent 4 queries for 1 answer (demo-app.default.svc.cluster.local); 2 went to search-list candidates that did not answer",
            "advice": "write the name fully qualified with a trailing dot: every search-list candidate the resolver tries before the answer is a wasted query; here `demo-app.default.svc.cluster.local.` sends 2 queries instead of 4 per lookup, 2 saved; or, from namespace default, just `demo-app` (answered at the first search suffix, nothing wasted)",
            "impact": 2
        }
    ]);
    assert_eq!(
        Value::Array(got.clone()),
        want,
        "{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
}

/// The table opens with the same findings, before any other section.
#[test]
fn seed_table_opens_with_findings() {
    let table = analyze("table", &[], None);
    let second = table.lines().nth(2).unwrap_or("");
    assert!(second.starts_with("Findings"), "{table}");
    let f = section(&table, "Findings");
    assert!(f.contains("  1. literal_pod_ip 10.244.1.10:80\n"), "{f}");
    assert!(
        f.contains("  2. literal_cluster_ip 10.96.100.10:80\n"),
        "{f}"
    );
    assert!(
        f.contains("     fix: dial `demo-app` instead of the ClusterIP: "),
        "{f}"
    );
    assert!(
        f.contains("  3. search_walk_waste demo-app.default\n"),
        "{f}"
    );
}

/// The README shows the seed's findings as the binary prints them.
#[test]
fn readme_shows_the_real_findings() {
    let readme =
        std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let shown = section(&readme, "Findings");
    assert!(!shown.is_empty(), "README has no Findings section");
    assert_eq!(shown, section(&analyze("table", &[], None), "Findings"));
}

/// proto.pcap (lab recording, socket-LB and stale-cache scenarios): the
/// rewrite, the stale answer, the external name's search walk with an
/// ndots value, and the literal pod-IP calls.
#[test]
fn proto_capture_findings() {
    let got = findings(&analyze("json", &[], Some(&capture("proto.pcap"))));
    assert_eq!(
        kinds(&got),
        vec![
            ("literal_pod_ip".into(), "10.244.2.41:80".into()),
            ("stale_answer".into(), "db".into()),
            ("search_walk_waste".into(), "api.example.com".into()),
            ("rewritten_destination".into(), "demo-app:80".into()),
        ]
    );
    assert_eq!(
        got[1]["evidence"],
        "2 connections to 10.244.2.30, 10.244.2.31 for `db`; 1 after the latest answer stopped holding the address; 1 past the answer's TTL; the answer used was up to 6.6 s old"
    );
    assert_eq!(
        got[2]["advice"],
        "write the name fully qualified with a trailing dot: every search-list candidate the resolver tries before the answer is a wasted query; here `api.example.com.` sends 2 queries instead of 8 per lookup, 6 saved; or `dnsConfig.options: [{name: ndots, value: \"2\"}]`: names with 2 or more dots go out as written first (same 6 saved per lookup of `api.example.com`)"
    );
    assert_eq!(got[2]["impact"], 6);
    assert_eq!(
        got[3]["evidence"],
        "lookups of `demo-app` answered a ClusterIP, the wire showed pod IPs on port 80 (detected after 3 connections; 4 attributed to the name)"
    );
    assert_eq!(got[3]["impact"], 0);

    // The name as written, per connection: the gRPC calls' `:authority`,
    // the TLS call's SNI and the HTTP/1 Host headers settle it; the stale
    // `db` calls carry the address as Host, which settles nothing.
    let v: Value =
        serde_json::from_str(&analyze("json", &[], Some(&capture("proto.pcap")))).unwrap();
    let mut ev: Vec<(String, String)> = v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["dns_name"].is_string())
        .map(|c| (s(&c["dns_name"]), s(&c["name_form_evidence"])))
        .collect();
    ev.sort();
    ev.dedup();
    assert_eq!(
        ev,
        vec![
            ("api.example.com".into(), "sni".into()),
            ("db".into(), "guess".into()),
            ("demo-app".into(), "host_header".into()),
            ("echo".into(), "authority".into()),
        ]
    );
}

const POD: &str = "10.244.1.20";
const KUBE_DNS: &str = "10.96.0.10";
const FLAGS: &[&str] = &[
    "--service-cidr",
    "10.96.0.0/12",
    "--pod-cidr",
    "10.244.0.0/16",
    "--pod-ip",
    POD,
    "--namespace",
    "default",
    "--search",
    "default.svc.cluster.local,svc.cluster.local,cluster.local",
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Ethernet frames 1 ms apart, in a pcap built in memory.
struct Pcap {
    file: PcapWriter,
    t_us: u64,
}

impl Pcap {
    fn new() -> Pcap {
        Pcap {
            file: PcapWriter::new(1, 65535), // LINKTYPE_ETHERNET
            t_us: 1_700_000_000_000_000,
        }
    }

    fn frame(&mut self, f: FrameBuilder) {
        self.t_us += 1000;
        self.file
            .record(self.t_us, &f.link(LinkType::Ethernet).build());
    }

    /// One A query for `qname` (as on the wire, absolute) and its answer.
    fn query(&mut self, id: u16, qname: &str, rcode: ResponseCode, addr: Option<&str>) {
        let qname: Name = qname.parse().unwrap();
        let mut q = Message::new(id, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(qname.clone(), RecordType::A));
        let port = 40000 + id;
        self.frame(
            FrameBuilder::new(ip(POD), ip(KUBE_DNS))
                .udp(port, 53)
                .payload(&q.to_vec().unwrap()),
        );
        let mut r = Message::new(id, MessageType::Response, OpCode::Query);
        r.metadata.response_code = rcode;
        r.add_query(Query::query(qname.clone(), RecordType::A));
        if let Some(addr) = addr {
            r.add_answer(Record::from_rdata(
                qname,
                30,
                RData::A(A(addr.parse().unwrap())),
            ));
        }
        self.frame(
            FrameBuilder::new(ip(KUBE_DNS), ip(POD))
                .udp(53, port)
                .payload(&r.to_vec().unwrap()),
        );
    }

    fn syn(&mut self, sport: u16, dst: &str, dport: u16) {
        self.frame(
            FrameBuilder::new(ip(POD), ip(dst))
                .tcp(sport, dport)
                .flags(TcpFlags::SYN)
                .seq(1),
        );
    }

    fn connect(&mut self, sport: u16, dst: &str, dport: u16) {
        self.syn(sport, dst, dport);
        self.frame(
            FrameBuilder::new(ip(dst), ip(POD))
                .tcp(dport, sport)
                .flags(TcpFlags::SYN | TcpFlags::ACK)
                .seq(500)
                .ack(2),
        );
    }

    fn refused(&mut self, sport: u16, dst: &str, dport: u16) {
        self.syn(sport, dst, dport);
        self.frame(
            FrameBuilder::new(ip(dst), ip(POD))
                .tcp(dport, sport)
                .flags(TcpFlags::RST | TcpFlags::ACK)
                .ack(2),
        );
    }

    fn write(&self, tag: &str) -> (std::path::PathBuf, String) {
        let dir =
            std::env::temp_dir().join(format!("podpath-findings-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("built.pcap");
        std::fs::write(&file, self.file.bytes()).unwrap();
        let name = file.to_string_lossy().to_string();
        (dir, name)
    }
}

/// A typo'd Service name walks the whole search list to NXDOMAIN, twice;
/// a name that resolves is dialed on a port nothing listens on.
#[test]
fn built_capture_failing_lookup_and_refused_connections() {
    let mut p = Pcap::new();
    let mut id = 1;
    for _ in 0..2 {
        for cand in [
            "demo-ap.default.svc.cluster.local.",
            "demo-ap.svc.cluster.local.",
            "demo-ap.cluster.local.",
            "demo-ap.",
        ] {
            p.query(id, cand, ResponseCode::NXDomain, None);
            id += 1;
        }
    }
    p.query(
        id,
        "demo-app.default.svc.cluster.local.",
        ResponseCode::NoError,
        Some("10.96.100.10"),
    );
    p.refused(50001, "10.96.100.10", 8081);
    p.refused(50002, "10.96.100.10", 8081);
    let (dir, file) = p.write("fail");
    let got = findings(&analyze("json", FLAGS, Some(&file)));
    assert_eq!(
        Value::Array(got.clone()),
        json!([
            {
                "kind": "failing_lookup",
                "subject": "demo-ap",
                "evidence": "2 lookups of `demo-ap` (NXDOMAIN 2), 8 queries on the wire, never an answer; last candidate tried demo-ap",
                "advice": "lookups of `demo-ap` never get an answer: for NXDOMAIN check the spelling where the app configures it and that the Service exists; for SERVFAIL or timeouts check CoreDNS and its upstream; here every answer was NXDOMAIN (`kubectl get service -A | grep -w demo-ap`)",
                "impact": 10
            },
            {
                "kind": "connect_failures",
                "subject": "demo-app → 10.96.100.10:8081",
                "evidence": "2 of 2 connections to 10.96.100.10:8081 by path dns failed: 2 refused",
                "advice": "make something accept the port at the destination (the Service's `port`/`targetPort`, pods Ready and listening); for timeouts check the NetworkPolicies on both sides and that the destination still exists; here nothing accepted port 8081 at 10.96.100.10 (`kubectl get endpointslices -A -o wide | grep -w 10.96.100.10`)",
                "impact": 10
            }
        ]),
        "{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A pod that writes fully qualified names with trailing dots, dials no
/// literal and sees no failure: no finding, and the table says so.
#[test]
fn clean_capture_has_no_findings() {
    let mut p = Pcap::new();
    p.query(
        1,
        "demo-app.other.svc.cluster.local.",
        ResponseCode::NoError,
        Some("10.96.100.11"),
    );
    p.connect(50001, "10.96.100.11", 80);
    p.query(
        2,
        "api.example.com.",
        ResponseCode::NoError,
        Some("93.184.216.34"),
    );
    p.connect(50002, "93.184.216.34", 443);
    let (dir, file) = p.write("clean");
    let json = analyze("json", FLAGS, Some(&file));
    let v: Value = serde_json::from_str(&json).unwrap();
    // The capture did what it should: two named connections, two lookups.
    assert_eq!(v["connections"].as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(v["lookups"].as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(findings(&json), Vec::<Value>::new());
    let table = analyze("table", FLAGS, Some(&file));
    assert!(
        table.contains("Findings (most costly first: occurrences × cost; evidence from the capture only)\n  (none)\n"),
        "{table}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// rich-any.pcap (lab recording: typo'd name, refused, timed-out and
/// unreachable calls, literals over IPv4 and IPv6, a corp cluster domain):
/// every finding, in order.
#[test]
fn rich_capture_findings() {
    let got = findings(&analyze("json", &[], Some(&capture("rich-any.pcap"))));
    let want: Vec<(String, String)> = [
        ("literal_pod_ip", "10.244.2.10 ports 81, 8125"),
        ("literal_pod_ip", "10.244.2.50:80"),
        ("literal_pod_ip", "[fd00:10:244::2:10]:80"),
        ("search_walk_waste", "api.example.com"),
        ("search_walk_waste", "cart.shop.svc.corp.internal"),
        ("failing_lookup", "nosuch"),
        ("connect_failures", "10.244.2.10:81"),
        ("connect_failures", "10.244.2.10:8125"),
        ("connect_failures", "10.244.2.50:80"),
        ("connect_failures", "legacy → 10.96.200.30:8080"),
        ("search_walk_waste", "cart.shop"),
    ]
    .iter()
    .map(|(k, s)| (k.to_string(), s.to_string()))
    .collect();
    assert_eq!(kinds(&got), want);
    assert_eq!(
        got[5]["evidence"],
        "1 lookup of `nosuch` (NXDOMAIN 1), 8 queries on the wire, never an answer; last candidate tried nosuch"
    );
    assert_eq!(
        got[8]["evidence"],
        "1 of 1 connection to 10.244.2.50:80 by path pod_ip failed: 1 timed out"
    );
    assert_eq!(
        got[8]["advice"],
        "make something accept the port at the destination (the Service's `port`/`targetPort`, pods Ready and listening); for timeouts check the NetworkPolicies on both sides and that the destination still exists; here the SYNs to 10.244.2.50:80 went unanswered"
    );
    assert_eq!(
        got[4]["advice"],
        "write the name fully qualified with a trailing dot: every search-list candidate the resolver tries before the answer is a wasted query; here `cart.shop.svc.corp.internal.` sends 2 queries instead of 8 per lookup, 6 saved; or, from namespace shop, just `cart` (answered at the first search suffix, nothing wasted); or `dnsConfig.options: [{name: ndots, value: \"4\"}]`: names with 4 or more dots go out as written first (same 6 saved per lookup of `cart.shop.svc.corp.internal`)"
    );
}

/// A TLS record holding a ClientHello with `sni` (RFC 8446 §4.1.2; no
/// other extension).
fn client_hello(sni: &str) -> Vec<u8> {
    let n = sni.as_bytes();
    let mut ext = Vec::new();
    ext.extend_from_slice(&0u16.to_be_bytes()); // server_name
    ext.extend_from_slice(&((n.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
    ext.push(0); // host_name
    ext.extend_from_slice(&(n.len() as u16).to_be_bytes());
    ext.extend_from_slice(n);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1]; // client_hello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1]; // handshake, TLS 1.0 record version
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

impl Pcap {
    /// Client data on a connection `connect` opened.
    fn send(&mut self, sport: u16, dst: &str, dport: u16, payload: &[u8]) {
        self.frame(
            FrameBuilder::new(ip(POD), ip(dst))
                .tcp(sport, dport)
                .flags(TcpFlags::PSH | TcpFlags::ACK)
                .seq(2)
                .ack(501)
                .payload(payload),
        );
    }
}

/// Item 0: `demo-app` answered at the first search suffix and
/// `demo-app.default.svc.cluster.local.` put the same query on the wire;
/// the Host header or the SNI says which the app wrote, a walk settles it
/// by itself, and without either the reading is marked a guess.
#[test]
fn name_as_written_from_host_header_and_sni() {
    const SVC: &str = "10.96.100.10";
    const FQDN: &str = "demo-app.default.svc.cluster.local.";
    let mut p = Pcap::new();
    p.query(1, FQDN, ResponseCode::NoError, Some(SVC));
    p.connect(50001, SVC, 80);
    p.send(
        50001,
        SVC,
        80,
        b"GET / HTTP/1.1\r\nHost: demo-app.default.svc.cluster.local.\r\nUser-Agent: curl\r\n\r\n",
    );
    p.query(2, FQDN, ResponseCode::NoError, Some(SVC));
    p.connect(50002, SVC, 80);
    p.send(
        50002,
        SVC,
        80,
        b"GET / HTTP/1.1\r\nHost: demo-app:80\r\n\r\n",
    );
    p.query(3, FQDN, ResponseCode::NoError, Some(SVC));
    p.connect(50003, SVC, 443);
    p.send(
        50003,
        SVC,
        443,
        &client_hello("demo-app.default.svc.cluster.local"),
    );
    p.query(4, FQDN, ResponseCode::NoError, Some(SVC));
    p.connect(50004, SVC, 80);
    p.query(
        5,
        "demo-app.default.default.svc.cluster.local.",
        ResponseCode::NXDomain,
        None,
    );
    p.query(6, FQDN, ResponseCode::NoError, Some(SVC));
    p.connect(50005, SVC, 80);
    let (dir, file) = p.write("written");
    let v: Value = serde_json::from_str(&analyze("json", FLAGS, Some(&file))).unwrap();
    let conns: Vec<(String, String, String)> = v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                s(&c["dns_name"]),
                s(&c["written"]),
                s(&c["name_form_evidence"]),
            )
        })
        .collect();
    let fq = "demo-app.default.svc.cluster.local";
    assert_eq!(
        conns,
        vec![
            (fq.into(), FQDN.into(), "host_header".into()),
            ("demo-app".into(), "".into(), "host_header".into()),
            (fq.into(), FQDN.into(), "sni".into()),
            ("demo-app".into(), "".into(), "guess".into()),
            ("demo-app.default".into(), "".into(), "wire".into()),
        ],
        "{v:#}"
    );
    let lookups: Vec<(String, String, String, String)> = v["lookups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                s(&l["name"]),
                s(&l["form"]),
                s(&l["written"]),
                s(&l["name_form_evidence"]),
            )
        })
        .collect();
    assert_eq!(
        lookups,
        vec![
            (
                fq.into(),
                "service_fqdn".into(),
                FQDN.into(),
                "host_header".into()
            ),
            (
                "demo-app".into(),
                "short".into(),
                "".into(),
                "host_header".into()
            ),
            (fq.into(), "service_fqdn".into(), FQDN.into(), "sni".into()),
            ("demo-app".into(), "short".into(), "".into(), "guess".into()),
            (
                "demo-app.default".into(),
                "namespaced".into(),
                "".into(),
                "wire".into()
            ),
        ],
        "{v:#}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// `--names` with the lab's objects as kubectl prints them: the seed's pod
/// IP is named (the capture alone cannot), the advice names `demo-app`; the
/// ClusterIP keeps the capture's own name.
#[test]
fn names_file_names_the_seed_pod_ip() {
    let names = capture("seed-cluster.json");
    let got = findings(&analyze("json", &["--names", &names], None));
    assert_eq!(
        kinds(&got),
        vec![
            ("literal_pod_ip".into(), "10.244.1.10:80".into()),
            ("literal_cluster_ip".into(), "10.96.100.10:80".into()),
            ("search_walk_waste".into(), "demo-app.default".into()),
        ]
    );
    assert_eq!(
        got[0]["evidence"],
        "10.244.1.20 dialed 10.244.1.10:80 by address once; it is pod demo-app of Service default/demo-app (demo-app.default.svc.cluster.local, from names_file)"
    );
    assert_eq!(
        got[0]["advice"],
        "dial `demo-app` instead of the pod IP: a pod IP changes whenever the pod restarts or is rescheduled, the Service's DNS name does not"
    );
    assert!(got[1]["evidence"]
        .as_str()
        .unwrap()
        .ends_with("from dns_answer)"));
    let table = analyze("table", &["--names", &names], None);
    assert!(
        table.contains("  pod_ip     10.244.1.10  80    1     0      pod demo-app of Service default/demo-app names_file\n"),
        "{table}"
    );
    assert!(
        table.contains("Findings (most costly first: occurrences × cost; evidence from the capture and the --names file)"),
        "{table}"
    );
}

/// A names file that is not Kubernetes JSON: a clear error, exit status 1.
#[test]
fn names_file_that_is_not_json_is_an_error() {
    let dir = std::env::temp_dir().join(format!("podpath-names-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("names.json");
    std::fs::write(&file, "items: []\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .args(["analyze", "--names"])
        .arg(&file)
        .output()
        .expect("run podpath");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not Kubernetes JSON"), "{err}");
    // serde_json's cause is printed once, after the message.
    let cause = "expected value at line 1 column 1";
    assert_eq!(err.matches(cause).count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
