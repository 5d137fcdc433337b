//! Aggregation: the `Sink` that turns engine events into the report's
//! records and counts, bounded by `max_records`.

use std::collections::BTreeSet;

use super::written::NameEvidence;
use super::{
    ConnectionRecord, DestinationNameRecord, DestinationRecord, HttpRecord, InboundRecord,
    LookupRecord, Outcome, Report, RewriteRecord, TlsRecord, MAX_DESTINATION_SET,
};
use crate::attribution::Path;
use crate::dns::DnsEvent;
use crate::engine::{Event, FailReason, Sink};

impl Report {
    fn room(&mut self, len: usize) -> bool {
        if len >= self.max_records {
            self.records_dropped += 1;
            false
        } else {
            true
        }
    }

    /// Counts a connection by literal address (paths `pod_ip`, `cluster_ip`).
    fn literal_destination(&mut self, c: &crate::engine::ConnectionView<'_>) {
        let path = c.attribution.path;
        if !matches!(path, Path::PodIp | Path::ClusterIp) {
            return;
        }
        let ts = c.ts.as_secs_f64();
        let addr = c.dst.ip();
        if !self.destinations.contains_key(&addr) && !self.room(self.destinations.len()) {
            return;
        }
        let d = self
            .destinations
            .entry(addr)
            .or_insert_with(|| DestinationRecord {
                address: addr,
                path,
                connections: 0,
                refused: 0,
                timeouts: 0,
                ports: BTreeSet::new(),
                clients: BTreeSet::new(),
                first_ts: ts,
                last_ts: ts,
                named: None,
            });
        d.connections += 1;
        d.last_ts = ts;
        if d.ports.len() < MAX_DESTINATION_SET {
            d.ports.insert(c.dst.port());
        }
        if d.clients.len() < MAX_DESTINATION_SET {
            d.clients.insert(c.src.ip());
        }
    }

    pub(super) fn record_mut(&mut self, id: u64) -> Option<&mut ConnectionRecord> {
        let i = *self.index.get(&id)?;
        self.connections.get_mut(i)
    }

    fn outcome(&mut self, id: u64, outcome: Outcome, connect_secs: Option<f64>) {
        if let Some(&i) = self.index.get(&id) {
            if let Some(c) = self.connections.get_mut(i) {
                c.outcome = outcome;
                if connect_secs.is_some() {
                    c.connect_secs = connect_secs;
                }
            }
        }
    }
}

impl Sink for Report {
    fn on_event(&mut self, event: &Event<'_>) {
        match event {
            Event::Connection(c) => {
                self.literal_destination(c);
                if !self.room(self.connections.len()) {
                    return;
                }
                let a = c.attribution;
                self.index.insert(c.id, self.connections.len());
                self.connections.push(ConnectionRecord {
                    id: c.id,
                    ts: c.ts.as_secs_f64(),
                    protocol: c.protocol,
                    src: c.src,
                    dst: c.dst,
                    path: a.path,
                    target: a.target,
                    dns_name: a.dns_name.clone(),
                    service: a.service.clone(),
                    namespace: a.namespace.clone(),
                    outcome: Outcome::Unknown,
                    connect_secs: None,
                    stale_dns: None,
                    rewritten: false,
                    written: None,
                    name_form_evidence: None,
                    host_seen: None,
                });
            }
            Event::Connected { conn, latency_secs } => {
                self.outcome(conn.id, Outcome::Connected, Some(*latency_secs))
            }
            Event::ConnectFailed { conn, reason } => {
                if let Some(d) = self.destinations.get_mut(&conn.dst.ip()) {
                    if conn.attribution.path == d.path {
                        match reason {
                            FailReason::Refused => d.refused += 1,
                            FailReason::Timeout => d.timeouts += 1,
                        }
                    }
                }
                let o = match reason {
                    FailReason::Refused => Outcome::Refused,
                    FailReason::Timeout => Outcome::Timeout,
                };
                self.outcome(conn.id, o, None)
            }
            Event::UdpUnreachable { conn } => self.outcome(conn.id, Outcome::Unreachable, None),
            Event::Inbound {
                ts,
                protocol,
                peer,
                local,
            } => {
                if self.room(self.inbound.len()) {
                    self.inbound.push(InboundRecord {
                        ts: ts.as_secs_f64(),
                        protocol: *protocol,
                        peer: *peer,
                        local: *local,
                    });
                }
            }
            Event::Http(h) => {
                if self.room(self.http_requests.len()) {
                    self.http_requests.push(HttpRecord {
                        ts: h.ts.as_secs_f64(),
                        direction: if h.outbound { "outbound" } else { "inbound" },
                        connection_id: h.connection_id,
                        dst: h.dst,
                        path: h.attribution.map(|a| a.path),
                        service: h.attribution.and_then(|a| a.service.clone()),
                        method: h.method,
                        status: h.status,
                        latency_secs: h.latency_secs,
                        protocol: h.protocol,
                        grpc_status: h.grpc_status,
                    });
                }
            }
            Event::RequestHost { conn, host, h2 } => {
                let from = if *h2 {
                    NameEvidence::Authority
                } else {
                    NameEvidence::HostHeader
                };
                self.host_seen(conn.id, host, from)
            }
            Event::Tls(t) => {
                if let Some(sni) = t.sni {
                    self.host_seen(t.conn.id, sni, NameEvidence::Sni);
                }
                if self.room(self.tls.len()) {
                    let a = t.conn.attribution;
                    self.tls.push(TlsRecord {
                        connection_id: t.conn.id,
                        ts: t.conn.ts.as_secs_f64(),
                        dst: t.conn.dst,
                        path: a.path,
                        dns_name: a.dns_name.as_deref().map(str::to_string),
                        sni: t.sni.map(str::to_string),
                        sni_status: t.status,
                        alpn: t.alpn.map(str::to_string),
                        dns_check: t.dns_check,
                    });
                }
            }
            Event::H2Stream {
                outbound, reason, ..
            } => {
                let d = if *outbound { "outbound" } else { "inbound" };
                *self.h2_unread.entry((d, reason.as_str())).or_default() += 1;
            }
            Event::StaleDns { conn, reason } => {
                if let Some(c) = self.record_mut(conn.id) {
                    c.stale_dns = Some(*reason);
                }
            }
            Event::Rewritten { conn } => {
                if let Some(c) = self.record_mut(conn.id) {
                    c.rewritten = true;
                }
            }
            Event::RewriteDetected {
                dns_name,
                port,
                evidence,
            } => {
                if self.room(self.rewrites.len()) {
                    self.rewrites.push(RewriteRecord {
                        dns_name: dns_name.to_string(),
                        port: *port,
                        evidence: *evidence,
                    });
                }
            }
            Event::Dns(ev) => self.on_dns(ev),
            Event::Skipped { reason, count } => {
                *self.skipped.entry(reason.as_str()).or_default() += count
            }
            Event::Evicted { table, count } => {
                *self.evictions.entry(table.as_str()).or_default() += count
            }
            Event::DnsMalformed { reason } => {
                *self.dns_malformed.entry(reason.as_str()).or_default() += 1
            }
            Event::Bytes { .. } => {}
            Event::LiteralDestination { .. } => {}
            Event::DestinationNamed { addr, naming } => {
                if let Some(d) = self.destinations.get_mut(addr) {
                    d.named = Some(DestinationNameRecord {
                        kind: naming.what.kind(),
                        service: naming.service().map(str::to_string),
                        namespace: naming.namespace().map(str::to_string),
                        pod: naming.pod().map(str::to_string),
                        name: naming.fqdn.to_string(),
                        source: naming.source,
                    });
                }
            }
        }
    }
}

impl Report {
    fn on_dns(&mut self, ev: &DnsEvent) {
        match ev {
            DnsEvent::Completed(t) => {
                *self
                    .dns_queries
                    .entry((t.qtype.as_str(), t.outcome.as_str()))
                    .or_default() += 1;
            }
            DnsEvent::Lookup(l) if self.room(self.lookups.len()) => {
                self.lookups.push(LookupRecord {
                    ts: l.started.as_secs_f64(),
                    client: l.client,
                    name: l.name.clone(),
                    form: l.form.as_str(),
                    result: l.result.as_str(),
                    queries: l.queries,
                    retransmissions: l.retransmissions,
                    wasted: l.wasted,
                    answered_name: Some(l.fqdn.clone()),
                    addresses: l.addresses.to_vec(),
                    written: None,
                    name_form_evidence: None,
                });
            }
            DnsEvent::Query(q) if q.retransmission => {
                *self
                    .dns_retransmissions
                    .entry(q.qtype.as_str())
                    .or_default() += 1
            }
            DnsEvent::LateAnswer(l) => {
                *self.dns_late_answers.entry(l.rcode.as_str()).or_default() += 1
            }
            _ => {}
        }
    }
}
