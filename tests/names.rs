//! Names for literal destinations, through the `analyze` binary: golden
//! output on the seed capture, and a capture built here for the ordering
//! fix and the guessed service range (issue 11, items 2 to 4).

mod common;

use common::{analyze, capture, section};
use std::net::IpAddr;
use std::process::Command;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use podpath::decode::build::{FrameBuilder, PcapWriter};
use podpath::decode::{LinkType, TcpFlags};

const SEED_FLAGS: &[&str] = &[
    "--service-cidr",
    "10.96.0.0/12",
    "--pod-cidr",
    "10.244.0.0/16",
];

#[test]
fn seed_table_names_the_literal_cluster_ip_golden() {
    let table = analyze("table", SEED_FLAGS, Some(&capture("seed-any.pcap")));
    let got = section(&table, "Literal destinations");
    let want = "\
Literal destinations (a pod IP breaks when the pod restarts, a ClusterIP when the Service is recreated)
  PATH       ADDRESS      PORTS COUNT FAILED NAMED AS                 FROM
  pod_ip     10.244.1.10  80    1     0      (no name in the capture)
  cluster_ip 10.96.100.10 80    1     0      Service default/demo-app dns_answer
  names: DNS answers in the capture only (A/AAAA answers the pod received, before or after the call, and PTR answers the app asked for); analyze makes no network requests
";
    assert_eq!(got, want, "{table}");
}

#[test]
fn seed_json_lists_literal_destinations_golden() {
    let json: serde_json::Value = serde_json::from_str(&analyze(
        "json",
        SEED_FLAGS,
        Some(&capture("seed-any.pcap")),
    ))
    .expect("json");
    let mut got = json["literal_destinations"].clone();
    for d in got.as_array_mut().expect("array") {
        // Packet times are the recording's; the rest is exact.
        let d = d.as_object_mut().expect("object");
        assert!(d.remove("first_ts").and_then(|t| t.as_f64()).is_some());
        assert!(d.remove("last_ts").and_then(|t| t.as_f64()).is_some());
    }
    let want = serde_json::json!([
        {
            "address": "10.96.100.10", "path": "cluster_ip", "connections": 1,
            "refused": 0, "timeouts": 0, "ports": [80], "clients": ["10.244.1.20"],
            "named": {
                "kind": "service", "service": "demo-app", "namespace": "default",
                "name": "demo-app.default.svc.cluster.local", "source": "dns_answer"
            }
        },
        {
            "address": "10.244.1.10", "path": "pod_ip", "connections": 1,
            "refused": 0, "timeouts": 0, "ports": [80], "clients": ["10.244.1.20"]
        }
    ]);
    assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
    assert!(json["names_from"]
        .as_str()
        .is_some_and(|s| s.contains("no network requests")));
}

#[test]
fn seed_exposition_joins_on_the_address() {
    let text = analyze("prometheus", SEED_FLAGS, Some(&capture("seed-any.pcap")));
    let mut got: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("podpath_literal_connections_total{")
                || l.starts_with("podpath_destination_info{")
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            r#"podpath_destination_info{address="10.96.100.10",service="demo-app",namespace="default",pod="",name="demo-app.default.svc.cluster.local",source="dns_answer"} 1"#,
            r#"podpath_literal_connections_total{path="cluster_ip",address="10.96.100.10",port="80"} 1"#,
            r#"podpath_literal_connections_total{path="pod_ip",address="10.244.1.10",port="80"} 1"#,
        ],
        "{text}"
    );
}

const POD: &str = "10.42.0.9";
const KUBE_DNS: &str = "10.43.0.10";

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

    fn lookup(&mut self, id: u16, name: &str, addr: &str) {
        let qname: Name = name.parse().unwrap();
        let mut q = Message::new(id, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(qname.clone(), RecordType::A));
        let port = 40000 + id;
        self.frame(
            FrameBuilder::new(ip(POD), ip(KUBE_DNS))
                .udp(port, 53)
                .payload(&q.to_vec().unwrap()),
        );
        let mut r = Message::new(id, MessageType::Response, OpCode::Query);
        r.metadata.response_code = ResponseCode::NoError;
        r.add_query(Query::query(qname.clone(), RecordType::A));
        r.add_answer(Record::from_rdata(
            qname,
            5,
            RData::A(A(addr.parse().unwrap())),
        ));
        self.frame(
            FrameBuilder::new(ip(KUBE_DNS), ip(POD))
                .udp(53, port)
                .payload(&r.to_vec().unwrap()),
        );
    }

    fn connect(&mut self, sport: u16, dst: &str, dport: u16) {
        self.frame(
            FrameBuilder::new(ip(POD), ip(dst))
                .tcp(sport, dport)
                .flags(TcpFlags::SYN)
                .seq(1),
        );
        self.frame(
            FrameBuilder::new(ip(dst), ip(POD))
                .tcp(dport, sport)
                .flags(TcpFlags::SYN | TcpFlags::ACK)
                .seq(500),
        );
    }
}

/// No CIDR flags. The lookup `cart.shop.svc.corp.local → 10.43.12.7` and the
/// connection right after it: target cluster_ip (was external before the
/// answer's knowledge applied at once). Then a Service dialed by its
/// literal ClusterIP (statsd): cluster_ip by the service range guessed
/// around the DNS server, said to be a guess.
#[test]
fn built_capture_without_cidrs_knows_cluster_ips() {
    let mut p = Pcap::new();
    p.lookup(1, "cart.shop.svc.corp.local.", "10.43.12.7");
    p.connect(50001, "10.43.12.7", 8080);
    p.connect(50002, "10.43.200.17", 8125);
    p.lookup(2, "statsd.monitoring.svc.corp.local.", "10.43.200.17");
    let dir = std::env::temp_dir().join(format!("podpath-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("built.pcap");
    std::fs::write(&file, p.file.bytes()).unwrap();
    let file = file.to_string_lossy().to_string();

    let json: serde_json::Value =
        serde_json::from_str(&analyze("json", &[], Some(&file))).expect("json");
    let conns = json["connections"].as_array().expect("connections");
    let got: Vec<(&str, &str, &str)> = conns
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap_or(""),
                c["target"].as_str().unwrap_or(""),
                c["service"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("dns", "cluster_ip", "cart"), ("cluster_ip", "", "")]
    );
    let dest = &json["literal_destinations"][0];
    assert_eq!(dest["address"], "10.43.200.17");
    assert_eq!(dest["named"]["service"], "statsd");
    assert_eq!(dest["named"]["namespace"], "monitoring");
    let table = analyze("table", &[], Some(&file));
    assert!(
        table.contains("inferred service_cidr = 10.43.0.0/16 from the range around the cluster DNS Service 10.43.0.10 (guess: pass --service-cidr)"),
        "{table}"
    );
    assert!(
        table.contains(
            "cluster_ip 10.43.200.17 8125  1     0      Service monitoring/statsd dns_answer"
        ),
        "{table}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The README shows `analyze`'s literal-destination table on the embedded
/// seed capture: it must be what the binary prints.
#[test]
fn readme_shows_the_real_literal_table() {
    let readme =
        std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let shown = section(&readme, "Literal destinations");
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .arg("analyze")
        .output()
        .expect("run podpath");
    let printed = section(
        &String::from_utf8_lossy(&out.stdout),
        "Literal destinations",
    );
    assert!(!shown.is_empty());
    assert_eq!(shown, printed);
}

/// What `podpath run` knows at start (resolv.conf), given to analyze: the
/// seed capture without CIDR flags gets both literal paths right, the
/// ClusterIP dialed before any DNS query included, and says it guessed.
#[test]
fn resolv_conf_nameserver_seeds_the_service_range_guess() {
    let dir = std::env::temp_dir().join(format!("podpath-resolv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
    )
    .unwrap();
    let flags = ["--resolv-conf", resolv.to_str().unwrap()];
    let table = analyze("table", &flags, Some(&capture("seed-any.pcap")));
    assert!(
        table.contains("total: loopback 1, pod_ip 1, cluster_ip 1, dns 2, external 0"),
        "{table}"
    );
    assert!(
        table.contains("inferred service_cidr = 10.96.0.0/12 from the range around the cluster DNS Service 10.96.0.10 (guess: pass --service-cidr)"),
        "{table}"
    );
    // Without it, the ClusterIP call precedes the first query: external.
    let table = analyze("table", &[], Some(&capture("seed-any.pcap")));
    assert!(
        table.contains("total: loopback 1, pod_ip 1, cluster_ip 0, dns 2, external 1"),
        "{table}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The ndots `analyze` reports it was configured with (its table's
/// `search: … (ndots:N)` line), on the seed capture with a resolv.conf
/// saying `ndots:2`, `flags` and `env`.
fn ndots_with(resolv: &std::path::Path, flags: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .env_remove("PODPATH_NDOTS")
        .envs(env.iter().copied())
        .args(["analyze", "--format", "table", "--resolv-conf"])
        .arg(resolv)
        .args(flags)
        .arg(capture("seed-any.pcap"))
        .output()
        .expect("run podpath");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).expect("utf-8");
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("search: "))
        .unwrap_or_else(|| panic!("no search line in\n{table}"));
    let (_, ndots) = line.rsplit_once("(ndots:").expect("ndots shown");
    ndots.trim_end_matches(')').to_string()
}

/// A value given (flag, or `PODPATH_NDOTS`) beats resolv.conf even when it
/// equals the default: `--ndots 5` used to be taken for "not given".
#[test]
fn given_ndots_beats_resolv_conf() {
    let dir = std::env::temp_dir().join(format!("podpath-ndots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:2\n",
    )
    .unwrap();
    assert_eq!(ndots_with(&resolv, &[], &[]), "2");
    assert_eq!(ndots_with(&resolv, &["--ndots", "5"], &[]), "5");
    assert_eq!(ndots_with(&resolv, &[], &[("PODPATH_NDOTS", "5")]), "5");
    // The flag over the variable.
    assert_eq!(
        ndots_with(&resolv, &["--ndots", "3"], &[("PODPATH_NDOTS", "5")]),
        "3"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
