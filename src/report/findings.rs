//! Findings: what to change, computed from the report's aggregates. Each
//! finding has a stable `kind`, the `subject` it is about, the `evidence`
//! the capture holds and the `advice` in the terms of a manifest or the
//! app's code. Ordered by impact (count × cost per occurrence), then kind
//! and subject, so the same capture always gives the same list.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::{DestinationRecord, LookupRecord, Outcome, Report};
use crate::attribution::Path;
use crate::dns::names::Stale;

/// Findings kept; the rest are counted in `omitted`.
pub const MAX_FINDINGS: usize = 20;

/// Earlier lookups of the same name searched for the answer a stale
/// connection used.
const MAX_LOOKBACK: usize = 64;

/// The finding kinds; their strings are stable (JSON `kind`, docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    LiteralPodIp,
    LiteralClusterIp,
    SearchWalkWaste,
    FailingLookup,
    StaleAnswer,
    ConnectFailures,
    RewrittenDestination,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::LiteralPodIp,
        Kind::LiteralClusterIp,
        Kind::SearchWalkWaste,
        Kind::FailingLookup,
        Kind::StaleAnswer,
        Kind::ConnectFailures,
        Kind::RewrittenDestination,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LiteralPodIp => "literal_pod_ip",
            Kind::LiteralClusterIp => "literal_cluster_ip",
            Kind::SearchWalkWaste => "search_walk_waste",
            Kind::FailingLookup => "failing_lookup",
            Kind::StaleAnswer => "stale_answer",
            Kind::ConnectFailures => "connect_failures",
            Kind::RewrittenDestination => "rewritten_destination",
        }
    }

    /// Cost of one occurrence (see `advice.txt`).
    fn unit_cost(self) -> u64 {
        entry(self).map_or(0, |(cost, _)| cost)
    }
}

/// The advice wording of every kind (see the file's header): one source
/// for this report, the alerts' `fix` annotations and the dashboards.
pub const ADVICE: &str = include_str!("advice.txt");

/// The cost and template of `kind` in [`ADVICE`].
fn entry(kind: Kind) -> Option<(u64, &'static str)> {
    ADVICE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(head, t)| {
            let (k, cost) = head.split_once(' ')?;
            (k == kind.as_str()).then_some((cost.parse().ok()?, t))
        })
        .next()
}

/// The template of `kind` in [`ADVICE`].
pub fn template(kind: Kind) -> Option<&'static str> {
    entry(kind).map(|(_, t)| t)
}

/// `kind`'s advice with its placeholders filled, then `extra` (what this
/// capture adds: the numbers, a command that finds the name).
fn advice(kind: Kind, fill: &[(&str, &str)], extra: &str) -> String {
    let mut out = template(kind).unwrap_or("").to_string();
    for (key, value) in fill {
        out = out.replace(&format!("{{{key}}}"), value);
    }
    if !extra.is_empty() {
        out.push_str("; ");
        out.push_str(extra);
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub subject: String,
    pub evidence: String,
    pub advice: String,
    /// Occurrences × the kind's cost per occurrence: the order of the list.
    pub impact: u64,
}

impl Finding {
    fn new(kind: Kind, count: u64, subject: String, evidence: String, advice: String) -> Self {
        Finding {
            kind,
            subject,
            evidence,
            advice,
            impact: count.saturating_mul(kind.unit_cost()),
        }
    }
}

/// The findings of a report, most costly first, at most `MAX_FINDINGS`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub findings: Vec<Finding>,
    /// Findings over the cap.
    pub omitted: usize,
}

/// What the findings need besides the report: the caller's namespace (the
/// first search suffix `<ns>.svc.<domain>`), to write the DNS name it
/// should use (`demo-app` from the same namespace, `demo-app.other` across).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub namespace: Option<String>,
}

impl Caller {
    /// The name to dial Service `svc` in namespace `ns` by, from here.
    fn service_name(&self, svc: &str, ns: &str) -> String {
        if self.namespace.as_deref() == Some(ns) {
            svc.to_string()
        } else {
            format!("{svc}.{ns}")
        }
    }
}

pub fn compute(report: &Report, caller: &Caller) -> Findings {
    let mut all = Vec::new();
    literals(report, caller, &mut all);
    search_walks(&report.lookups, caller, &mut all);
    failing_lookups(&report.lookups, &mut all);
    stale_answers(report, &mut all);
    connect_failures(report, &mut all);
    rewrites(report, &mut all);
    all.sort_by(|a, b| {
        (std::cmp::Reverse(a.impact), a.kind, &a.subject).cmp(&(
            std::cmp::Reverse(b.impact),
            b.kind,
            &b.subject,
        ))
    });
    let omitted = all.len().saturating_sub(MAX_FINDINGS);
    all.truncate(MAX_FINDINGS);
    Findings {
        findings: all,
        omitted,
    }
}

fn times(n: u64) -> String {
    if n == 1 {
        "once".to_string()
    } else {
        format!("{n} times")
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn join_addrs<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn literals(report: &Report, caller: &Caller, out: &mut Vec<Finding>) {
    for d in report.destinations.values() {
        let kind = match d.path {
            Path::PodIp => Kind::LiteralPodIp,
            Path::ClusterIp => Kind::LiteralClusterIp,
            _ => continue,
        };
        let ports = join_addrs(&d.ports);
        let subject = if d.ports.len() == 1 {
            SocketAddr::new(d.address, *d.ports.first().unwrap_or(&0)).to_string()
        } else {
            format!("{} ports {ports}", d.address)
        };
        let mut evidence = format!(
            "{} dialed {} by address {}",
            join_addrs(&d.clients),
            subject,
            times(d.connections)
        );
        let failed = d.refused + d.timeouts;
        if failed > 0 {
            let _ = write!(evidence, " ({failed} failed)");
        }
        let advice = match d.named.as_ref() {
            Some(n) => {
                let _ = write!(
                    evidence,
                    "; it is {} ({}, from {})",
                    n.describe(),
                    n.name,
                    n.source.as_str()
                );
                let dial = match (&n.service, &n.namespace) {
                    (Some(svc), Some(ns)) => caller.service_name(svc, ns),
                    _ => format!("{}.", n.name.trim_end_matches('.')),
                };
                advice(kind, &[("dial", &dial)], "")
            }
            None => {
                let _ = write!(
                    evidence,
                    "; the capture holds no name for {} (no DNS answer or PTR for it)",
                    d.address
                );
                unnamed_advice(kind, d, caller)
            }
        };
        out.push(Finding::new(kind, d.connections, subject, evidence, advice));
    }
}

fn unnamed_advice(kind: Kind, d: &DestinationRecord, caller: &Caller) -> String {
    let ns = caller.namespace.as_deref().unwrap_or("<ns>");
    let find = match kind {
        Kind::LiteralPodIp => format!(
            "`kubectl get endpointslices -A -o wide | grep -w {}`",
            d.address
        ),
        _ => format!("`kubectl get services -A | grep -w {}`", d.address),
    };
    advice(
        kind,
        &[("dial", "<service>")],
        &format!("`<service>` from namespace {ns}, `<service>.<namespace>` from another; {find} finds the Service"),
    )
}

/// Lookups grouped by (name, answered name), in name order.
fn by_name(
    lookups: &[LookupRecord],
    keep: impl Fn(&LookupRecord) -> bool,
) -> BTreeMap<(&str, &str), Vec<&LookupRecord>> {
    let mut g: BTreeMap<(&str, &str), Vec<&LookupRecord>> = BTreeMap::new();
    for l in lookups.iter().filter(|l| keep(l)) {
        g.entry((&l.name, l.answered_name.as_deref().unwrap_or("")))
            .or_default()
            .push(l);
    }
    g
}

/// `6`, or `1.5` when the lookups differ.
fn per_lookup(total: u64, lookups: u64) -> String {
    if lookups == 0 {
        return "0".into();
    }
    if total % lookups == 0 {
        (total / lookups).to_string()
    } else {
        format!("{:.1}", total as f64 / lookups as f64)
    }
}

fn search_walks(lookups: &[LookupRecord], caller: &Caller, out: &mut Vec<Finding>) {
    let answered = |l: &LookupRecord| l.result == "NOERROR" && l.wasted > 0;
    for ((name, fqdn), ls) in by_name(lookups, answered) {
        let n = ls.len() as u64;
        let queries: u64 = ls.iter().map(|l| u64::from(l.queries)).sum();
        let wasted: u64 = ls.iter().map(|l| u64::from(l.wasted)).sum();
        let needed = queries - wasted;
        let evidence = format!(
            "{} of `{name}` sent {} for {} ({fqdn}); {} went to search-list candidates that did not answer",
            plural(n, "lookup", "lookups"),
            plural(queries, "query", "queries"),
            plural(n, "answer", "answers"),
            wasted
        );
        let saved = per_lookup(wasted, n);
        let mut extra = format!(
            "here `{fqdn}.` sends {} queries instead of {} per lookup, {saved} saved",
            per_lookup(needed, n),
            per_lookup(queries, n)
        );
        // A Service in the caller's own namespace answers its short name
        // at the first search suffix: no query wasted, and portable.
        let mut labels = fqdn.split('.');
        if let (Some(svc), Some(ns), Some("svc")) = (labels.next(), labels.next(), labels.next()) {
            if caller.namespace.as_deref() == Some(ns) && name != svc {
                let _ = write!(
                    extra,
                    "; or, from namespace {ns}, just `{svc}` (answered at the first search suffix, nothing wasted)"
                );
            }
        }
        // ndots:k sends a name with k dots as written first. Only right when
        // the answer is the name as written (an external name) and k ≥ 2:
        // ndots:1 would send `svc.ns` to the internet first.
        let dots = name.matches('.').count();
        if fqdn == name && dots >= 2 {
            let _ = write!(
                extra,
                "; or `dnsConfig.options: [{{name: ndots, value: \"{dots}\"}}]`: names with {dots} or more dots go out as written first (same {saved} saved per lookup of `{name}`)"
            );
        }
        let advice = advice(Kind::SearchWalkWaste, &[], &extra);
        out.push(Finding::new(
            Kind::SearchWalkWaste,
            wasted,
            name.to_string(),
            evidence,
            advice,
        ));
    }
}

fn failing_lookups(lookups: &[LookupRecord], out: &mut Vec<Finding>) {
    let mut ok: BTreeMap<&str, ()> = BTreeMap::new();
    for l in lookups.iter().filter(|l| l.result == "NOERROR") {
        ok.insert(&l.name, ());
    }
    let mut failing: BTreeMap<&str, Vec<&LookupRecord>> = BTreeMap::new();
    for l in lookups
        .iter()
        .filter(|l| l.result != "NOERROR" && !ok.contains_key(&*l.name))
    {
        failing.entry(&l.name).or_default().push(l);
    }
    for (name, ls) in failing {
        let n = ls.len() as u64;
        let queries: u64 = ls.iter().map(|l| u64::from(l.queries)).sum();
        let mut results: BTreeMap<&str, u64> = BTreeMap::new();
        for l in &ls {
            *results.entry(l.result).or_default() += 1;
        }
        let results: Vec<String> = results.iter().map(|(r, c)| format!("{r} {c}")).collect();
        let last = ls
            .last()
            .and_then(|l| l.answered_name.as_deref())
            .unwrap_or(name);
        let evidence = format!(
            "{} of `{name}` ({}), {} on the wire, never an answer; last candidate tried {last}",
            plural(n, "lookup", "lookups"),
            results.join(", "),
            plural(queries, "query", "queries"),
        );
        let nx = ls.iter().all(|l| l.result == "NXDOMAIN");
        let extra = if nx {
            format!(
                "here every answer was NXDOMAIN (`kubectl get service -A | grep -w {}`)",
                name.split('.').next().unwrap_or(name)
            )
        } else {
            String::new()
        };
        let advice = advice(Kind::FailingLookup, &[("dns_name", name)], &extra);
        out.push(Finding::new(
            Kind::FailingLookup,
            n,
            name.to_string(),
            evidence,
            advice,
        ));
    }
}

fn stale_answers(report: &Report, out: &mut Vec<Finding>) {
    #[derive(Default)]
    struct G {
        n: u64,
        not_latest: u64,
        past_ttl: u64,
        addrs: std::collections::BTreeSet<IpAddr>,
        max_age: f64,
    }
    let mut g: BTreeMap<&str, G> = BTreeMap::new();
    let mut by_ts: Vec<&LookupRecord> = Vec::new();
    if report.connections.iter().any(|c| c.stale_dns.is_some()) {
        by_ts = report.lookups.iter().collect();
        by_ts.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    }
    for c in &report.connections {
        let Some(reason) = c.stale_dns else { continue };
        let name = c.dns_name.as_deref().unwrap_or("");
        let e = g.entry(name).or_default();
        e.n += 1;
        match reason {
            Stale::NotInLatestAnswer => e.not_latest += 1,
            Stale::PastTtl => e.past_ttl += 1,
        }
        e.addrs.insert(c.dst.ip());
        // Age of the newest answer that held the address when it was
        // dialed: a bounded walk back from the connection (the report holds
        // up to `max_records` of each, a full scan per connection would be
        // quadratic).
        let before = by_ts.partition_point(|l| l.ts <= c.ts);
        let age = by_ts[..before]
            .iter()
            .rev()
            .filter(|l| &*l.name == name)
            .take(MAX_LOOKBACK)
            .find(|l| l.addresses.contains(&c.dst.ip()))
            .map_or(f64::INFINITY, |l| c.ts - l.ts);
        if age.is_finite() {
            e.max_age = e.max_age.max(age);
        }
    }
    for (name, e) in g {
        let mut evidence = format!(
            "{} to {} for `{name}`",
            plural(e.n, "connection", "connections"),
            join_addrs(&e.addrs)
        );
        if e.not_latest > 0 {
            let _ = write!(
                evidence,
                "; {} after the latest answer stopped holding the address",
                e.not_latest
            );
        }
        if e.past_ttl > 0 {
            let _ = write!(evidence, "; {} past the answer's TTL", e.past_ttl);
        }
        if e.max_age > 0.0 {
            let _ = write!(
                evidence,
                "; the answer used was up to {:.1} s old",
                e.max_age
            );
        }
        let advice = advice(Kind::StaleAnswer, &[("dns_name", name)], "");
        out.push(Finding::new(
            Kind::StaleAnswer,
            e.n,
            name.to_string(),
            evidence,
            advice,
        ));
    }
}

fn connect_failures(report: &Report, out: &mut Vec<Finding>) {
    // (destination, path, name) → [attempts, refused, timed out, unreachable]
    type Key<'r> = (SocketAddr, Path, &'r str);
    let mut g: BTreeMap<Key<'_>, [u64; 4]> = BTreeMap::new();
    for c in &report.connections {
        let e = g
            .entry((c.dst, c.path, c.dns_name.as_deref().unwrap_or("")))
            .or_default();
        e[0] += 1;
        match c.outcome {
            Outcome::Refused => e[1] += 1,
            Outcome::Timeout => e[2] += 1,
            Outcome::Unreachable => e[3] += 1,
            _ => {}
        }
    }
    g.retain(|_, e| e[1] + e[2] + e[3] > 0);
    for ((dst, path, name), e) in g {
        let failed = e[1] + e[2] + e[3];
        let subject = if name.is_empty() {
            dst.to_string()
        } else {
            format!("{name} → {dst}")
        };
        let mut parts = Vec::new();
        for (n, what) in [
            (e[1], "refused"),
            (e[2], "timed out"),
            (e[3], "unreachable"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let evidence = format!(
            "{failed} of {} to {dst} by path {} failed: {}",
            plural(e[0], "connection", "connections"),
            path.as_str(),
            parts.join(", ")
        );
        let extra = if e[1] + e[3] > 0 {
            format!(
                "here nothing accepted port {} at {} (`kubectl get endpointslices -A -o wide | grep -w {}`)",
                dst.port(),
                dst.ip(),
                dst.ip()
            )
        } else {
            format!("here the SYNs to {dst} went unanswered")
        };
        let advice = advice(Kind::ConnectFailures, &[], &extra);
        out.push(Finding::new(
            Kind::ConnectFailures,
            failed,
            subject,
            evidence,
            advice,
        ));
    }
}

fn rewrites(report: &Report, out: &mut Vec<Finding>) {
    for r in &report.rewrites {
        let n = report
            .connections
            .iter()
            .filter(|c| {
                c.rewritten && c.dns_name.as_deref() == Some(&r.dns_name) && c.dst.port() == r.port
            })
            .count() as u64;
        let evidence = format!(
            "lookups of `{}` answered a ClusterIP, the wire showed pod IPs on port {} (detected after {} connections; {} attributed to the name)",
            r.dns_name,
            r.port,
            r.evidence,
            n
        );
        let advice = advice(Kind::RewrittenDestination, &[("dns_name", &r.dns_name)], "");
        out.push(Finding::new(
            Kind::RewrittenDestination,
            n,
            format!("{}:{}", r.dns_name, r.port),
            evidence,
            advice,
        ));
    }
}

impl Findings {
    /// The table report's opening section.
    pub fn write_table(&self, out: &mut String, names_file: bool) {
        let from = if names_file {
            "the capture and the --names file"
        } else {
            "the capture only"
        };
        let _ = writeln!(
            out,
            "\nFindings (most costly first: occurrences × cost; evidence from {from})"
        );
        if self.findings.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for (i, f) in self.findings.iter().enumerate() {
            let _ = writeln!(out, "  {}. {} {}", i + 1, f.kind.as_str(), f.subject);
            let _ = writeln!(out, "     evidence: {}", f.evidence);
            let _ = writeln!(out, "     fix: {}", f.advice);
        }
        if self.omitted > 0 {
            let _ = writeln!(out, "  … and {} more (capped)", self.omitted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind has one template, and every placeholder is one the
    /// readers know how to fill.
    #[test]
    fn advice_file_covers_every_kind() {
        for kind in Kind::ALL {
            let n = ADVICE
                .lines()
                .filter(|l| l.starts_with(&format!("{} ", kind.as_str())))
                .count();
            assert_eq!(n, 1, "{}", kind.as_str());
            assert!(
                entry(kind).is_some(),
                "{}: no `kind cost: template` line",
                kind.as_str()
            );
            let t = template(kind).unwrap();
            let stripped = t.replace("{dial}", "").replace("{dns_name}", "");
            assert!(!stripped.contains('{'), "unknown placeholder in {t}");
        }
        let lines = ADVICE.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(lines, Kind::ALL.len());
    }

    fn destination(last: u8, path: Path, connections: u64) -> DestinationRecord {
        DestinationRecord {
            address: IpAddr::from([10, 244, 0, last]),
            path,
            connections,
            refused: 0,
            timeouts: 0,
            ports: [80].into(),
            clients: [IpAddr::from([10, 244, 9, 9])].into(),
            first_ts: 0.0,
            last_ts: 0.0,
            named: None,
        }
    }

    /// 25 literal destinations: the 20 most costly are kept, by impact
    /// (a pod IP costs twice a ClusterIP), ties by subject; the rest counted.
    #[test]
    fn capped_and_ordered_by_impact() {
        let mut r = Report::new(1000);
        for i in 0..25u8 {
            let path = if i % 2 == 0 {
                Path::PodIp
            } else {
                Path::ClusterIp
            };
            let d = destination(i, path, u64::from(i % 5) + 1);
            r.destinations.insert(d.address, d);
        }
        let f = compute(&r, &Caller::default());
        assert_eq!(f.findings.len(), MAX_FINDINGS);
        assert_eq!(f.omitted, 5);
        let impacts: Vec<u64> = f.findings.iter().map(|f| f.impact).collect();
        let mut sorted = impacts.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(impacts, sorted);
        // Five connections to a pod IP: 50, first; ties in subject (text) order.
        assert_eq!(impacts[0], 50);
        assert_eq!(f.findings[0].subject, "10.244.0.14:80");
        assert_eq!(f.findings[1].subject, "10.244.0.24:80");
        // The same report gives the same list.
        assert_eq!(compute(&r, &Caller::default()), f);
    }

    #[test]
    fn advice_fills_placeholders_and_appends() {
        assert_eq!(
            advice(Kind::LiteralClusterIp, &[("dial", "demo-app.other")], "x"),
            "dial `demo-app.other` instead of the ClusterIP: a ClusterIP changes when the Service is deleted and recreated, the Service's DNS name does not; x"
        );
    }
}
