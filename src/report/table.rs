//! `--format table`: the report as a person reads it at a glance, one
//! section per function, in the order they are printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{ConnectionRecord, Context, DestinationRecord, Outcome, Report, NAMES_FROM};
use crate::attribution::Path;
use crate::dns::names::Stale;
use crate::engine::{AddressOrigin, SniCheck};
use crate::hash::HashMap;

impl Report {
    /// The human-readable table for `--format table`: one section after
    /// another, each written by its own function below.
    pub fn to_table(&self, context: &Context<'_>) -> String {
        let mut out = String::new();
        self.header(context, &mut out);
        self.outbound_table(context, &mut out);
        self.literal_table(&mut out);
        self.lookups_table(&mut out);
        self.dns_queries_table(&mut out);
        self.http_table(&mut out);
        self.tls_table(&mut out);
        self.stale_table(&mut out);
        self.rewrites(&mut out);
        self.inbound_table(&mut out);
        self.not_counted(context, &mut out);
        self.pod_and_cluster(context, &mut out);
        out
    }

    /// The title line and the findings, most costly first.
    fn header(&self, context: &Context<'_>, out: &mut String) {
        let _ = writeln!(
            out,
            "podpath analyze: {} ({} packets, {:.1} s)",
            context.inputs.join(", "),
            context.stats.packets,
            context.span_secs
        );
        self.findings(context)
            .write_table(out, self.names_file.is_some());
    }

    /// Outbound connections grouped by path and destination, with the totals by path.
    fn outbound_table(&self, context: &Context<'_>, out: &mut String) {
        type ConnKey<'r> = (Path, &'static str, &'static str, u16, &'r str, String);
        let mut groups: BTreeMap<ConnKey<'_>, [u64; 4]> = BTreeMap::new();
        for c in &self.connections {
            let key = (
                c.path,
                c.target.map_or("", |t| t.as_str()),
                c.protocol.as_str(),
                c.dst.port(),
                c.dns_name.as_deref().unwrap_or(""),
                match (&c.service, &c.namespace) {
                    (Some(s), Some(n)) => format!("{s}.{n}"),
                    (Some(s), None) => s.to_string(),
                    _ => String::new(),
                },
            );
            let g = groups.entry(key).or_default();
            g[0] += 1;
            match c.outcome {
                Outcome::Refused => g[1] += 1,
                Outcome::Timeout => g[2] += 1,
                Outcome::Unreachable => g[3] += 1,
                _ => {}
            }
        }
        let _ = writeln!(out, "\nOutbound connections by path");
        let mut rows = vec![vec![
            "PATH".to_string(),
            "TARGET".into(),
            "PROTO".into(),
            "PORT".into(),
            "DNS NAME".into(),
            "SERVICE".into(),
            "COUNT".into(),
            "REFUSED".into(),
            "TIMEOUT".into(),
        ]];
        for ((path, target, proto, port, name, svc), g) in &groups {
            rows.push(vec![
                path.as_str().into(),
                (*target).into(),
                (*proto).into(),
                port.to_string(),
                (*name).into(),
                svc.clone(),
                g[0].to_string(),
                g[1].to_string(),
                g[2].to_string(),
            ]);
        }
        write_table(out, &rows);
        let mut by_path: BTreeMap<Path, u64> = BTreeMap::new();
        for c in &self.connections {
            *by_path.entry(c.path).or_default() += 1;
        }
        let summary: Vec<String> = Path::ALL
            .iter()
            .map(|p| format!("{} {}", p.as_str(), by_path.get(p).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(out, "  total: {}", summary.join(", "));
        if context.stats.pending_at_end > 0 {
            let _ = writeln!(
                out,
                "  {} attempt(s) still unanswered when the capture ended (neither connected nor timed out)",
                context.stats.pending_at_end
            );
        }
    }

    /// DNS lookups by the name the app asked for, most wasted queries first.
    fn lookups_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nDNS lookups (search-list expansion collapsed to the name the app asked for)"
        );
        let mut lk: BTreeMap<(&str, &'static str, &'static str), [u64; 3]> = BTreeMap::new();
        for l in &self.lookups {
            let g = lk.entry((&l.name, l.form, l.result)).or_default();
            g[0] += 1;
            g[1] += l.queries as u64;
            g[2] += l.wasted as u64;
        }
        let mut rows = vec![vec![
            "NAME".to_string(),
            "FORM".into(),
            "RESULT".into(),
            "LOOKUPS".into(),
            "QUERIES".into(),
            "WASTED".into(),
        ]];
        let mut order: Vec<_> = lk.into_iter().collect();
        order.sort_by(|a, b| b.1[2].cmp(&a.1[2]).then(a.0.cmp(&b.0)));
        for ((name, form, result), g) in order {
            rows.push(vec![
                name.into(),
                form.into(),
                result.into(),
                g[0].to_string(),
                g[1].to_string(),
                g[2].to_string(),
            ]);
        }
        write_table(out, &rows);
    }

    /// DNS queries on the wire by (qtype, rcode), with retransmissions and late answers when there are any.
    fn dns_queries_table(&self, out: &mut String) {
        let _ = writeln!(out, "\nDNS queries on the wire");
        let mut rows = vec![vec!["QTYPE".to_string(), "RCODE".into(), "COUNT".into()]];
        for ((q, r), n) in &self.dns_queries {
            rows.push(vec![(*q).into(), (*r).into(), n.to_string()]);
        }
        write_table(out, &rows);
        let total: u64 = self.dns_queries.values().sum();
        let mut by_rcode: BTreeMap<&str, u64> = BTreeMap::new();
        for ((_, r), n) in &self.dns_queries {
            *by_rcode.entry(r).or_default() += n;
        }
        let rc: Vec<String> = by_rcode.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(out, "  total: {total} ({})", rc.join(", "));
        // Shown only when there are some: most captures have none.
        let retransmitted: u64 = self.dns_retransmissions.values().sum();
        if retransmitted > 0 {
            let _ = writeln!(
                out,
                "  retransmissions (same id sent again, in the total): {retransmitted}"
            );
        }
        if !self.dns_late_answers.is_empty() {
            let late: u64 = self.dns_late_answers.values().sum();
            let rc: Vec<String> = self
                .dns_late_answers
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "  late answers (after the query timed out): {late} ({})",
                rc.join(", ")
            );
        }
    }

    /// HTTP requests grouped by direction, path, service, method and status.
    fn http_table(&self, out: &mut String) {
        let _ = writeln!(out, "\nHTTP requests");
        type HttpKey<'r> = (
            &'static str,
            &'static str,
            &'static str,
            &'r str,
            &'static str,
            u16,
            String,
        );
        // Grouped in a hash map (one lookup per request, no string copies),
        // then ordered.
        let mut by_key: HashMap<HttpKey<'_>, (u64, f64)> = HashMap::default();
        for h in &self.http_requests {
            let g = by_key
                .entry((
                    h.direction,
                    h.path.map_or("", |p| p.as_str()),
                    h.protocol.as_str(),
                    h.service.as_deref().unwrap_or(""),
                    h.method.as_str(),
                    h.status,
                    h.grpc_status.map(|g| g.to_string()).unwrap_or_default(),
                ))
                .or_default();
            g.0 += 1;
            g.1 = g.1.max(h.latency_secs);
        }
        let hg: BTreeMap<HttpKey<'_>, (u64, f64)> = by_key.into_iter().collect();
        let mut rows = vec![vec![
            "DIRECTION".to_string(),
            "PATH".into(),
            "PROTO".into(),
            "SERVICE".into(),
            "METHOD".into(),
            "CODE".into(),
            "GRPC".into(),
            "COUNT".into(),
            "MAX LATENCY".into(),
        ]];
        for ((d, p, proto, s, m, c, g), (n, max)) in hg {
            rows.push(vec![
                d.into(),
                p.into(),
                proto.into(),
                s.into(),
                m.into(),
                c.to_string(),
                g,
                n.to_string(),
                format!("{:.1} ms", max * 1000.0),
            ]);
        }
        write_table(out, &rows);
        for ((d, r), n) in &self.h2_unread {
            let _ = writeln!(out, "  {d} HTTP/2 streams not read ({r}): {n}");
        }
    }

    /// TLS connections by SNI and ALPN, when there are any.
    fn tls_table(&self, out: &mut String) {
        if !self.tls.is_empty() {
            let _ = writeln!(
                out,
                "\nTLS connections (SNI from the ClientHello; ~unknown: cut before the SNI)"
            );
            type TlsKey = (Path, String, String, String, &'static str);
            let mut tg: BTreeMap<TlsKey, u64> = BTreeMap::new();
            for t in &self.tls {
                let sni = t
                    .sni
                    .clone()
                    .unwrap_or_else(|| t.sni_status.label().to_string());
                let check = match t.dns_check {
                    Some(SniCheck::Confirmed) => "confirmed",
                    Some(SniCheck::Mismatch) => "mismatch",
                    None => "",
                };
                let key = (
                    t.path,
                    sni,
                    t.alpn.clone().unwrap_or_default(),
                    t.dns_name.clone().unwrap_or_default(),
                    check,
                );
                *tg.entry(key).or_default() += 1;
            }
            let mut rows = vec![vec![
                "PATH".to_string(),
                "SNI".into(),
                "ALPN".into(),
                "DNS NAME".into(),
                "SNI VS DNS".into(),
                "COUNT".into(),
            ]];
            for ((p, sni, alpn, name, check), n) in tg {
                rows.push(vec![
                    p.as_str().into(),
                    sni,
                    alpn,
                    name,
                    check.into(),
                    n.to_string(),
                ]);
            }
            write_table(out, &rows);
        }
    }

    /// Connections that followed a stale DNS answer, when there are any.
    fn stale_table(&self, out: &mut String) {
        let stale: Vec<&ConnectionRecord> = self
            .connections
            .iter()
            .filter(|c| c.stale_dns.is_some())
            .collect();
        if !stale.is_empty() {
            let _ = writeln!(out, "\nConnections that followed a stale DNS answer");
            let mut sg: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
            for c in stale {
                let reason = c.stale_dns.map_or("", Stale::as_str);
                *sg.entry((c.dns_name.as_deref().unwrap_or("").to_string(), reason))
                    .or_default() += 1;
            }
            let mut rows = vec![vec![
                "DNS NAME".to_string(),
                "REASON".into(),
                "COUNT".into(),
            ]];
            for ((name, reason), n) in sg {
                rows.push(vec![name, reason.into(), n.to_string()]);
            }
            write_table(out, &rows);
        }
    }

    /// Rewritten connections by (name, port), with the detection if the
    /// pattern reached the evidence threshold.
    fn rewrites(&self, out: &mut String) {
        let mut rw: BTreeMap<(&str, u16), u64> = BTreeMap::new();
        for c in self.connections.iter().filter(|c| c.rewritten) {
            let name = c.dns_name.as_deref().unwrap_or("");
            *rw.entry((name, c.dst.port())).or_default() += 1;
        }
        for r in &self.rewrites {
            rw.entry((r.dns_name.as_str(), r.port)).or_default();
        }
        if !rw.is_empty() {
            let _ = writeln!(
                out,
                "\nDestination rewriting (lookups answering a ClusterIP followed by connections to pod IPs)"
            );
            for ((name, port), n) in rw {
                let detected = self
                    .rewrites
                    .iter()
                    .find(|r| r.dns_name == name && r.port == port);
                let how = match detected {
                    Some(r) => format!("detected after {} connections", r.evidence),
                    None => "below the detection threshold, no answer of the lookups dialed".into(),
                };
                let _ = writeln!(
                    out,
                    "  {name} port {port}: {how}; {n} connection(s) attributed to the name"
                );
            }
        }
    }

    /// Inbound connections by protocol and local port, when there are any.
    fn inbound_table(&self, out: &mut String) {
        if !self.inbound.is_empty() {
            let _ = writeln!(out, "\nInbound connections (peers calling this pod)");
            let mut ig: BTreeMap<(&'static str, u16), u64> = BTreeMap::new();
            for i in &self.inbound {
                *ig.entry((i.protocol.as_str(), i.local.port())).or_default() += 1;
            }
            let mut rows = vec![vec!["PROTO".to_string(), "PORT".into(), "COUNT".into()]];
            for ((p, port), n) in ig {
                rows.push(vec![p.into(), port.to_string(), n.to_string()]);
            }
            write_table(out, &rows);
        }
    }

    /// What the report does not count, and why.
    fn not_counted(&self, context: &Context<'_>, out: &mut String) {
        if !self.skipped.is_empty() || !self.dns_malformed.is_empty() || !self.evictions.is_empty()
        {
            let _ = writeln!(out, "\nNot counted");
            for (r, n) in &self.skipped {
                let _ = writeln!(out, "  frames skipped ({r}): {n}");
            }
            for (r, n) in &self.dns_malformed {
                let _ = writeln!(out, "  malformed DNS ({r}): {n}");
            }
            for (t, n) in &self.evictions {
                let _ = writeln!(out, "  evicted from {t} table: {n}");
            }
        }
        if self.records_dropped > 0 {
            let _ = writeln!(
                out,
                "  report records over the cap: {}",
                self.records_dropped
            );
        }
        if context.stats.time_went_backwards > 0 {
            let _ = writeln!(
                out,
                "  packets with a timestamp earlier than one already seen: {}",
                context.stats.time_went_backwards
            );
        }
    }

    /// What the report knows about the pod and the cluster, and from where.
    fn pod_and_cluster(&self, context: &Context<'_>, out: &mut String) {
        let _ = writeln!(out, "\nPod and cluster");
        for l in context
            .local
            .iter()
            .filter(|l| l.from == AddressOrigin::Configured)
        {
            let _ = writeln!(out, "  pod address {} (configured)", l.addr);
        }
        for i in context.inferred {
            let _ = writeln!(out, "  inferred {} = {} from {}", i.what, i.value, i.from);
        }
        for line in &context.configured {
            let _ = writeln!(out, "  {line}");
        }
    }

    /// The fragile-addressing table: every address dialed literally, with
    /// what it is when the capture named it.
    fn literal_table(&self, out: &mut String) {
        if self.destinations.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nLiteral destinations (a pod IP breaks when the pod restarts, a ClusterIP when the Service is recreated)"
        );
        let mut rows = vec![vec![
            "PATH".to_string(),
            "ADDRESS".into(),
            "PORTS".into(),
            "COUNT".into(),
            "FAILED".into(),
            "NAMED AS".into(),
            "FROM".into(),
        ]];
        let mut order: Vec<&DestinationRecord> = self.destinations.values().collect();
        order.sort_by(|a, b| {
            (a.path, std::cmp::Reverse(a.connections), a.address).cmp(&(
                b.path,
                std::cmp::Reverse(b.connections),
                b.address,
            ))
        });
        for d in order {
            let ports: Vec<String> = d.ports.iter().map(u16::to_string).collect();
            let (named, from) = match &d.named {
                Some(n) => (n.describe(), n.source.as_str()),
                None => ("(no name in the capture)".to_string(), ""),
            };
            rows.push(vec![
                d.path.as_str().into(),
                d.address.to_string(),
                ports.join(","),
                d.connections.to_string(),
                (d.refused + d.timeouts).to_string(),
                named,
                from.into(),
            ]);
        }
        write_table(out, &rows);
        let _ = writeln!(out, "  names: {NAMES_FROM}");
        if let Some(f) = &self.names_file {
            let _ = writeln!(
                out,
                "  and, where the capture holds none, the cluster objects in {f} (--names)"
            );
        }
    }
}

fn write_table(out: &mut String, rows: &[Vec<String>]) {
    if rows.len() <= 1 {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |v| v.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            let w = widths.get(c).copied().unwrap_or(0);
            let _ = write!(line, " {cell:<w$}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
