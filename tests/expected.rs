//! Every lab capture against its ground truth (`tests/captures/*.expected.json`,
//! written by lab/expected.py from what the scenario did and cross-checked
//! with tshark by lab/check-captures.py): connections with their path, name,
//! target, service and outcome; DNS queries by type and rcode; lookups; HTTP
//! requests; inbound calls. Compared as multisets, exactly.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

type Bag = BTreeMap<String, u64>;

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn bag(items: impl Iterator<Item = (String, u64)>) -> Bag {
    let mut b = Bag::new();
    for (k, n) in items {
        *b.entry(k).or_default() += n;
    }
    b
}

fn count(v: &Value) -> u64 {
    v.get("count").and_then(Value::as_u64).unwrap_or(1)
}

fn outcome(o: &str) -> &str {
    match o {
        "established" => "connected",
        "icmp_port_unreachable" => "unreachable",
        other => other,
    }
}

fn conn_key(c: &Value, expected: bool) -> String {
    let port = if expected {
        s(&c["port"])
    } else {
        s(&c["dst"]).rsplit(':').next().unwrap_or("").to_string()
    };
    let proto = s(&c["protocol"]);
    let out = s(&c["outcome"]);
    // podpath reports a UDP flow's outcome only when ICMP answered it.
    let out = if proto == "udp" && out == "unknown" {
        "connected".to_string()
    } else {
        outcome(&out).to_string()
    };
    let out = if expected && proto == "udp" && out != "unreachable" {
        "connected".to_string()
    } else {
        out
    };
    format!(
        "{} name={} target={} svc={} ns={} port={} {} {}",
        s(&c["path"]),
        s(&c["dns_name"]),
        s(&c["target"]),
        s(&c["service"]),
        s(&c["namespace"]),
        port,
        proto,
        out
    )
}

fn check(name: &str) {
    let dir = format!("{}/tests/captures", env!("CARGO_MANIFEST_DIR"));
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/{name}.expected.json")).unwrap(),
    )
    .unwrap();
    let cfg = &exp["config"];
    let mut args: Vec<String> = vec!["analyze".into(), "--format".into(), "json".into()];
    for c in cfg["service_cidr"].as_array().unwrap() {
        args.extend(["--service-cidr".into(), s(c)]);
    }
    for c in cfg["pod_cidr"].as_array().unwrap() {
        args.extend(["--pod-cidr".into(), s(c)]);
    }
    args.push(format!("{dir}/{}", s(&exp["capture"])));
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = |v: &Value, k: &str| v[k].as_array().cloned().unwrap_or_default();

    assert_eq!(
        got["packets"].as_u64(),
        exp["packets"].as_u64(),
        "{name}: packets"
    );

    let want = bag(arr(&exp, "connections")
        .iter()
        .map(|c| (conn_key(c, true), count(c))));
    let have = bag(arr(&got, "connections")
        .iter()
        .map(|c| (conn_key(c, false), 1)));
    assert_eq!(have, want, "{name}: connections");

    let want = bag(arr(&exp, "dns_queries")
        .iter()
        .map(|q| (format!("{} {}", s(&q["qtype"]), s(&q["rcode"])), count(q))));
    let have = bag(arr(&got, "dns_queries")
        .iter()
        .map(|q| (format!("{} {}", s(&q["qtype"]), s(&q["rcode"])), count(q))));
    assert_eq!(have, want, "{name}: DNS queries");

    let lk = |l: &Value| {
        format!(
            "{} {} {} q={} w={}",
            s(&l["name"]),
            s(&l["form"]),
            s(&l["result"]),
            s(&l["queries"]),
            s(&l["wasted"])
        )
    };
    let want = bag(arr(&exp, "lookups").iter().map(|l| (lk(l), count(l))));
    let have = bag(arr(&got, "lookups").iter().map(|l| (lk(l), 1)));
    assert_eq!(have, want, "{name}: lookups");

    let hk = |h: &Value| {
        format!(
            "{} svc={} {} {}",
            s(&h["path"]),
            s(&h["service"]),
            s(&h["method"]),
            s(&h["code"])
        )
    };
    let want = bag(arr(&exp, "http_requests").iter().map(|h| (hk(h), count(h))));
    let have = bag(arr(&got, "http_requests")
        .iter()
        .filter(|h| h["direction"] == "outbound")
        .map(|h| {
            (
                format!(
                    "{} svc={} {} {}",
                    s(&h["path"]),
                    s(&h["service"]),
                    s(&h["method"]),
                    s(&h["status"])
                ),
                1,
            )
        }));
    assert_eq!(have, want, "{name}: outbound HTTP requests");

    let want = bag(arr(&exp, "inbound_http_requests")
        .iter()
        .map(|h| (format!("{} {}", s(&h["method"]), s(&h["code"])), count(h))));
    let have = bag(arr(&got, "http_requests")
        .iter()
        .filter(|h| h["direction"] == "inbound")
        .map(|h| (format!("{} {}", s(&h["method"]), s(&h["status"])), 1)));
    assert_eq!(have, want, "{name}: inbound HTTP requests");

    let want = bag(arr(&exp, "inbound_connections")
        .iter()
        .map(|c| (format!("{} {}", s(&c["protocol"]), s(&c["port"])), count(c))));
    let have = bag(arr(&got, "inbound").iter().map(|c| {
        (
            format!(
                "{} {}",
                s(&c["protocol"]),
                s(&c["local"]).rsplit(':').next().unwrap_or("")
            ),
            1,
        )
    }));
    assert_eq!(have, want, "{name}: inbound connections");
    assert_eq!(
        got["stats"]["pending_at_end"], 0,
        "{name}: every attempt resolved"
    );
}

#[test]
fn seed_any_matches_its_ground_truth() {
    check("seed-any");
}

#[test]
fn seed_any_sll1_matches_its_ground_truth() {
    check("seed-any-sll1");
}

#[test]
fn seed_eth0_matches_its_ground_truth() {
    check("seed-eth0");
}

#[test]
fn rich_any_matches_its_ground_truth() {
    check("rich-any");
}
