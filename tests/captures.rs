//! `podpath analyze` on the captures recorded in the lab (tests/captures/,
//! see lab/README.md): exact expectations from what each scenario did.

use std::process::Command;

const SEED_FLAGS: &[&str] = &[
    "--service-cidr",
    "10.96.0.0/12",
    "--pod-cidr",
    "10.244.0.0/16",
];

fn analyze(format: &str, flags: &[&str], files: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .arg("analyze")
        .args(["--format", format])
        .args(flags)
        .args(
            files
                .iter()
                .map(|f| format!("{}/tests/captures/{f}", env!("CARGO_MANIFEST_DIR"))),
        )
        .output()
        .expect("run podpath");
    assert!(
        out.status.success(),
        "podpath failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Sum of the samples whose line starts with `prefix`.
fn value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn series(text: &str, family: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .map(str::to_string)
        .collect()
}

fn assert_seed(text: &str, loopback: f64) {
    let conn = "podpath_connections_total";
    assert_eq!(
        value(text, &format!("{conn}{{path=\"loopback\",")),
        loopback,
        "{text}"
    );
    assert_eq!(value(text, &format!("{conn}{{path=\"pod_ip\",target=\"\",protocol=\"tcp\",dns_name=\"\",service=\"\",namespace=\"\",port=\"80\"}}")), 1.0);
    assert_eq!(value(text, &format!("{conn}{{path=\"cluster_ip\",target=\"\",protocol=\"tcp\",dns_name=\"\",service=\"\",namespace=\"\",port=\"80\"}}")), 1.0);
    assert_eq!(value(text, &format!("{conn}{{path=\"dns\",target=\"cluster_ip\",protocol=\"tcp\",dns_name=\"demo-app\",service=\"demo-app\",namespace=\"default\",port=\"80\"}}")), 1.0);
    assert_eq!(value(text, &format!("{conn}{{path=\"dns\",target=\"cluster_ip\",protocol=\"tcp\",dns_name=\"demo-app.default\",service=\"demo-app\",namespace=\"default\",port=\"80\"}}")), 1.0);
    assert_eq!(
        value(text, conn),
        4.0 + loopback,
        "no other connection: {:?}",
        series(text, conn)
    );
    assert_eq!(value(text, "podpath_dns_queries_total"), 6.0);
    assert_eq!(
        value(
            text,
            "podpath_dns_queries_total{qtype=\"A\",rcode=\"NOERROR\"}"
        ) + value(
            text,
            "podpath_dns_queries_total{qtype=\"AAAA\",rcode=\"NOERROR\"}"
        ),
        4.0
    );
    assert_eq!(
        value(
            text,
            "podpath_dns_queries_total{qtype=\"A\",rcode=\"NXDOMAIN\"}"
        ) + value(
            text,
            "podpath_dns_queries_total{qtype=\"AAAA\",rcode=\"NXDOMAIN\"}"
        ),
        2.0
    );
    for (path, n) in [
        ("loopback", loopback),
        ("pod_ip", 1.0),
        ("cluster_ip", 1.0),
        ("dns", 2.0),
    ] {
        assert_eq!(
            value(
                text,
                &format!("podpath_http_requests_total{{path=\"{path}\"")
            ),
            n,
            "HTTP requests on {path}"
        );
    }
    assert_eq!(value(text, "podpath_http_requests_total{path=\"dns\",service=\"demo-app\",method=\"GET\",code=\"200\",protocol=\"http1\"}"), 2.0);
    assert_eq!(
        value(
            text,
            "podpath_dns_lookups_total{dns_name=\"demo-app\",form=\"short\",result=\"NOERROR\"}"
        ),
        1.0
    );
    assert_eq!(value(text, "podpath_dns_lookups_total{dns_name=\"demo-app.default\",form=\"namespaced\",result=\"NOERROR\"}"), 1.0);
    assert_eq!(
        value(
            text,
            "podpath_dns_lookup_wasted_queries_total{dns_name=\"demo-app.default\""
        ),
        2.0
    );
    assert_eq!(
        value(
            text,
            "podpath_dns_lookup_wasted_queries_total{dns_name=\"demo-app\""
        ),
        0.0
    );
    assert_eq!(value(text, "podpath_tcp_connect_failures_total"), 0.0);
    assert_eq!(value(text, "podpath_inbound_connections_total"), 0.0);
}

#[test]
fn seed_any_sll2() {
    assert_seed(&analyze("prometheus", SEED_FLAGS, &["seed-any.pcap"]), 1.0);
}

#[test]
fn seed_any_sll1() {
    assert_seed(
        &analyze("prometheus", SEED_FLAGS, &["seed-any-sll1.pcap"]),
        1.0,
    );
}

#[test]
fn seed_eth0_is_the_same_minus_loopback() {
    assert_seed(&analyze("prometheus", SEED_FLAGS, &["seed-eth0.pcap"]), 0.0);
}

#[test]
fn embedded_default_is_the_seed_capture() {
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .args(["analyze", "--format", "prometheus"])
        .output()
        .expect("run podpath");
    assert!(out.status.success());
    assert_seed(&String::from_utf8_lossy(&out.stdout), 1.0);
}

#[test]
fn seed_json_records_connections_lookups_and_requests() {
    let json: serde_json::Value =
        serde_json::from_str(&analyze("json", SEED_FLAGS, &["seed-any.pcap"])).expect("json");
    let conns = json["connections"].as_array().expect("connections");
    let paths: Vec<(&str, Option<&str>)> = conns
        .iter()
        .map(|c| (c["path"].as_str().unwrap_or(""), c["dns_name"].as_str()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("loopback", None),
            ("pod_ip", None),
            ("cluster_ip", None),
            ("dns", Some("demo-app")),
            ("dns", Some("demo-app.default"))
        ]
    );
    assert!(conns.iter().all(|c| c["outcome"] == "connected"));
    let lookups = json["lookups"].as_array().expect("lookups");
    let l: Vec<(&str, &str, u64, u64)> = lookups
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or(""),
                l["answered_name"].as_str().unwrap_or(""),
                l["queries"].as_u64().unwrap_or(0),
                l["wasted"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        l,
        vec![
            ("demo-app", "demo-app.default.svc.cluster.local", 2, 0),
            (
                "demo-app.default",
                "demo-app.default.svc.cluster.local",
                4,
                2
            )
        ]
    );
    assert_eq!(json["http_requests"].as_array().map(Vec::len), Some(5));
    assert_eq!(json["dns"]["queries_seen"], 6);
    assert_eq!(json["dns"]["responses_seen"], 6);
}

#[test]
fn table_names_every_path_and_the_wasted_queries() {
    let table = analyze("table", SEED_FLAGS, &["seed-any.pcap"]);
    assert!(
        table.contains("total: loopback 1, pod_ip 1, cluster_ip 1, dns 2, external 0"),
        "{table}"
    );
    assert!(
        table.contains("total: 6 (NOERROR 4, NXDOMAIN 2)"),
        "{table}"
    );
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("demo-app.default "))
        .expect("lookup row");
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["demo-app.default", "namespaced", "NOERROR", "1", "4", "2"]
    );
}

/// Splits a little-endian microsecond pcap into two files, alternating packets.
fn split_pcap(bytes: &[u8], a: &std::path::Path, b: &std::path::Path) {
    let (header, mut rest) = bytes.split_at(24);
    let mut out = [header.to_vec(), header.to_vec()];
    let mut i = 0;
    while rest.len() >= 16 {
        let caplen = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let (record, tail) = rest.split_at(16 + caplen);
        out[i % 2].extend_from_slice(record);
        rest = tail;
        i += 1;
    }
    std::fs::write(a, &out[0]).unwrap();
    std::fs::write(b, &out[1]).unwrap();
}

#[test]
fn several_files_merge_in_timestamp_order() {
    let dir = std::env::temp_dir().join(format!("podpath-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = std::fs::read(format!(
        "{}/tests/captures/seed-any.pcap",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (a, b) = (dir.join("odd.pcap"), dir.join("even.pcap"));
    split_pcap(&seed, &a, &b);
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .args(["analyze", "--format", "prometheus"])
        .args(SEED_FLAGS)
        .args([&b, &a])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_seed(&String::from_utf8_lossy(&out.stdout), 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("podpath-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pcap = dir.join("notes.txt");
    std::fs::write(&not_pcap, "hello, not a capture\n").unwrap();
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    for path in [
        not_pcap.to_str().unwrap(),
        empty.to_str().unwrap(),
        "/nonexistent/x.pcap",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
            .args(["analyze", path])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{path}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{path}: {err}");
        assert!(err.contains(path), "{path}: {err}");
    }
    // The OS error is the file error's source, and the chain is printed.
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .args(["analyze", "/nonexistent/x.pcap"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        "podpath: /nonexistent/x.pcap: No such file or directory (os error 2)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .args(["analyze", "--service-cidr", "10.96.0.0/99"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap rejects a bad CIDR");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dns_names_can_be_hashed_or_dropped_from_metrics() {
    let mut flags = SEED_FLAGS.to_vec();
    flags.extend(["--dns-names", "drop"]);
    let dropped = analyze("prometheus", &flags, &["seed-any.pcap"]);
    assert!(
        !dropped.contains("dns_name=\"demo-app"),
        "a name leaked: {dropped}"
    );
    assert_eq!(value(&dropped, "podpath_connections_total{path=\"dns\",target=\"cluster_ip\",protocol=\"tcp\",dns_name=\"~redacted\""), 2.0);

    let mut flags = SEED_FLAGS.to_vec();
    flags.extend(["--dns-names", "hash", "--dns-name-salt", "s3cret"]);
    let hashed = analyze("prometheus", &flags, &["seed-any.pcap"]);
    let names: std::collections::BTreeSet<&str> = hashed
        .lines()
        .filter(|l| l.starts_with("podpath_connections_total{path=\"dns\""))
        .filter_map(|l| l.split("dns_name=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(names.len(), 2, "two distinct pseudonyms: {names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("h:") && n.len() == 14),
        "{names:?}"
    );
    // Stable: the same salt gives the same pseudonyms.
    let again = analyze("prometheus", &flags, &["seed-any.pcap"]);
    let named = |t: &str| {
        let mut v: Vec<String> = t
            .lines()
            .filter(|l| l.contains("dns_name=\"h:"))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert!(!named(&hashed).is_empty());
    assert_eq!(named(&hashed), named(&again));
    // Service names are the cluster's, not the app's lookups: kept.
    assert!(hashed.contains("service=\"demo-app\""));
}
