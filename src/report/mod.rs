//! The `analyze` reports: a table a person reads at a glance, and JSON
//! records (connections, lookups, requests). Built from engine events.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Serialize;

use crate::attribution::{AddrClass, Inference, Path};
use crate::dns::k8s::NameSource;
use crate::dns::names::Stale;
use crate::dns::DnsEvent;
use crate::engine::{AppProtocol, EngineStats, Event, FailReason, Sink, SniCheck};
use crate::flow::Protocol;
use crate::hash::HashMap;
use crate::http::Method;
use crate::tls::SniStatus;

pub mod cluster_names;
pub mod findings;
pub mod written;

mod json;
mod table;

use written::{HostSeen, NameEvidence};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Connected,
    Refused,
    Timeout,
    /// Still waiting for a SYN-ACK when the capture ended; or UDP.
    Unknown,
    /// ICMP port unreachable (UDP).
    Unreachable,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnectionRecord {
    pub id: u64,
    pub ts: f64,
    pub protocol: Protocol,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub path: Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<AddrClass>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_shared"
    )]
    pub dns_name: Option<Arc<str>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_shared"
    )]
    pub service: Option<Arc<str>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_shared"
    )]
    pub namespace: Option<Arc<str>>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_secs: Option<f64>,
    /// The connection followed a stale DNS answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_dns: Option<Stale>,
    /// Attributed to a lookup although the wire shows a rewritten destination.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rewritten: bool,
    /// The name as written, when it differs from `dns_name` (a trailing dot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// What settled `dns_name`'s form (see `written`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_form_evidence: Option<NameEvidence>,
    #[serde(skip)]
    pub host_seen: Option<HostSeen>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TlsRecord {
    pub connection_id: u64,
    pub ts: f64,
    pub dst: SocketAddr,
    pub path: Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    pub sni_status: SniStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_check: Option<SniCheck>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RewriteRecord {
    pub dns_name: String,
    pub port: u16,
    pub evidence: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct InboundRecord {
    pub ts: f64,
    pub protocol: Protocol,
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

#[derive(Clone, Debug, Serialize)]
pub struct HttpRecord {
    pub ts: f64,
    pub direction: &'static str,
    pub connection_id: u64,
    pub dst: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Path>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_shared"
    )]
    pub service: Option<Arc<str>>,
    pub method: Method,
    pub status: u16,
    pub latency_secs: f64,
    pub protocol: AppProtocol,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LookupRecord {
    pub ts: f64,
    pub client: IpAddr,
    #[serde(serialize_with = "serialize_str")]
    pub name: Arc<str>,
    pub form: &'static str,
    pub result: &'static str,
    pub queries: u32,
    /// Of `queries`, copies sent again with the same id.
    pub retransmissions: u32,
    pub wasted: u32,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_shared"
    )]
    pub answered_name: Option<Arc<str>>,
    pub addresses: Vec<IpAddr>,
    /// The name as written, when it differs from `name` (a trailing dot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// What settled the form (see `written`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_form_evidence: Option<NameEvidence>,
}

/// Ports and clients kept per literal destination.
const MAX_DESTINATION_SET: usize = 16;

/// An address the app dialed literally (path `pod_ip` or `cluster_ip`):
/// who dialed it, how often, and what it is when the capture named it.
#[derive(Clone, Debug, Serialize)]
pub struct DestinationRecord {
    pub address: IpAddr,
    pub path: Path,
    /// Outbound connections to it (exact, not limited by the record cap).
    pub connections: u64,
    pub refused: u64,
    pub timeouts: u64,
    /// Destination ports (at most 16).
    pub ports: BTreeSet<u16>,
    /// The pod addresses that dialed it (at most 16).
    pub clients: BTreeSet<IpAddr>,
    pub first_ts: f64,
    pub last_ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named: Option<DestinationNameRecord>,
}

/// What a literal destination is, from the cluster DNS name the capture
/// held for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DestinationNameRecord {
    /// `service`, `endpoint` (a pod backing a Service), `pod`, `other`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The endpoint's hostname or pod name, when the name carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The DNS name itself.
    pub name: String,
    pub source: NameSource,
}

impl DestinationNameRecord {
    /// `Service default/demo-app`, `pod demo-app-1 of Service default/demo-app`,
    /// `pod default/demo-app-1`, `a pod in namespace default`, or the name.
    pub fn describe(&self) -> String {
        let ns = self.namespace.as_deref().unwrap_or("");
        match (self.kind, &self.service, &self.pod) {
            ("service", Some(s), _) => format!("Service {ns}/{s}"),
            ("endpoint", Some(s), Some(p)) => format!("pod {p} of Service {ns}/{s}"),
            ("endpoint", Some(s), None) => format!("a pod of Service {ns}/{s}"),
            ("pod", _, Some(p)) => format!("pod {ns}/{p}"),
            ("pod", _, _) => format!("a pod in namespace {ns}"),
            _ => self.name.clone(),
        }
    }
}

/// Everything `analyze` reports, built from events.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub connections: Vec<ConnectionRecord>,
    pub inbound: Vec<InboundRecord>,
    pub http_requests: Vec<HttpRecord>,
    pub lookups: Vec<LookupRecord>,
    pub tls: Vec<TlsRecord>,
    /// HTTP/2 streams without a request record, by (direction, reason).
    pub h2_unread: BTreeMap<(&'static str, &'static str), u64>,
    pub rewrites: Vec<RewriteRecord>,
    /// Literal destinations by address (at most `max_records`).
    #[serde(skip)]
    pub destinations: BTreeMap<IpAddr, DestinationRecord>,
    /// (qtype, rcode) → queries.
    #[serde(serialize_with = "serialize_pairs")]
    pub dns_queries: BTreeMap<(&'static str, &'static str), u64>,
    pub dns_malformed: BTreeMap<&'static str, u64>,
    /// qtype → queries sent again with the same id (included in `dns_queries`).
    pub dns_retransmissions: BTreeMap<&'static str, u64>,
    /// rcode → answers that came after their query had timed out.
    pub dns_late_answers: BTreeMap<&'static str, u64>,
    pub skipped: BTreeMap<&'static str, u64>,
    pub evictions: BTreeMap<&'static str, u64>,
    /// Records not kept because the report reached its cap (counts still exact in metrics).
    pub records_dropped: u64,
    /// `analyze --names`: the file that named destinations the capture did not.
    #[serde(skip)]
    pub names_file: Option<String>,
    #[serde(skip)]
    index: HashMap<u64, usize>,
    #[serde(skip)]
    max_records: usize,
}

/// Names shared with the engine (`Arc<str>`), serialised as strings: the
/// records keep a reference instead of a copy of each name.
fn serialize_shared<S: serde::Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&**v),
        None => s.serialize_none(),
    }
}

fn serialize_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

fn serialize_pairs<S: serde::Serializer>(
    map: &BTreeMap<(&'static str, &'static str), u64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Row<'a> {
        qtype: &'a str,
        rcode: &'a str,
        count: u64,
    }
    s.collect_seq(map.iter().map(|((q, r), c)| Row {
        qtype: q,
        rcode: r,
        count: *c,
    }))
}

impl Report {
    pub fn new(max_records: usize) -> Report {
        Report {
            max_records,
            ..Report::default()
        }
    }

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

    fn record_mut(&mut self, id: u64) -> Option<&mut ConnectionRecord> {
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
            Event::Skipped { reason } => *self.skipped.entry(reason).or_default() += 1,
            Event::Evicted { table } => *self.evictions.entry(table).or_default() += 1,
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
            DnsEvent::Malformed { reason, .. } => {
                *self.dns_malformed.entry(reason).or_default() += 1
            }
            DnsEvent::Evicted { table } => *self.evictions.entry(table).or_default() += 1,
            _ => {}
        }
    }

    /// What to change, most costly first (see `findings`).
    pub fn findings(&self, context: &Context<'_>) -> findings::Findings {
        findings::compute(
            self,
            &findings::Caller {
                namespace: context.namespace.clone(),
            },
        )
    }
}

/// Where `analyze`'s names for literal destinations come from.
pub const NAMES_FROM: &str = "DNS answers in the capture only (A/AAAA answers the pod received, before or after the call, and PTR answers the app asked for); analyze makes no network requests";

/// What the report says about the run besides its records.
pub struct Context<'a> {
    pub inputs: Vec<String>,
    pub span_secs: f64,
    pub stats: &'a EngineStats,
    pub inferred: &'a [Inference],
    pub local: &'a [crate::engine::LocalAddress],
    /// Configuration lines worth showing (CIDRs, search list).
    pub configured: Vec<String>,
    pub dns: crate::dns::DnsStats,
    /// The pod's namespace (from its search list), for the DNS names
    /// findings advise.
    pub namespace: Option<String>,
}
