//! The registry's families as `podpath run` registers them (with its PTR
//! lookups on), compared with goldens: each family's HELP and TYPE line, in
//! both exposition formats. tests/exposition.rs compares whole expositions
//! of `analyze`; `PODPATH_BLESS=1` rewrites the goldens of both.

use super::*;

fn descriptors(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    lines.sort_unstable();
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// One series in each family that only `podpath run` fills (capture, PTR)
/// or that the committed captures leave empty: a family without series is
/// not in the exposition.
fn fill(m: &Metrics, ptr: &PtrMetrics) {
    let interface = || InterfaceLabels {
        interface: "eth0".into(),
    };
    m.capture.packets.get_or_create(&interface()).inc();
    m.capture.drops.get_or_create(&interface()).inc();
    m.capture.up.get_or_create(&interface()).set(1);
    m.capture
        .error_info
        .get_or_create(&CaptureErrorLabels {
            interface: "eth1".into(),
            reason: "interface_down",
        })
        .set(1);
    m.tls
        .sni_mismatches_dns
        .get_or_create(&DnsNameLabels {
            dns_name: Label::from_static("a"),
        })
        .inc();
    ptr.queries
        .get_or_create(&ResultLabels { result: "name" })
        .inc();
    ptr.dropped
        .get_or_create(&ReasonLabels {
            reason: "queue_full",
        })
        .inc();
    ptr.ignored_answers
        .get_or_create(&ReasonLabels {
            reason: "unmatched",
        })
        .inc();
}

#[test]
fn every_family_keeps_its_name_type_and_help() {
    let mut metrics = Metrics::new();
    let ptr = metrics.register_ptr();
    fill(&metrics, &ptr);
    for (openmetrics, name) in [(false, "prom"), (true, "openmetrics")] {
        let got = descriptors(&metrics.encode(openmetrics));
        let path = format!(
            "{}/tests/golden/exposition/descriptors.{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os("PODPATH_BLESS").is_some() {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap();
        assert_eq!(got, want, "{path}");
    }
}
