//! The `analyze` reports: a table a person reads at a glance, and JSON
//! records (connections, lookups, requests). Built from engine events.
//!
//! This file holds the records and the `Report` that owns them;
//! `aggregate` builds them from events (the `Sink`), `table` and `json`
//! only read them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Serialize;

use crate::attribution::{AddrClass, Inference, Path};
use crate::dns::k8s::NameSource;
use crate::dns::names::Stale;
use crate::engine::{AppProtocol, EngineStats, SniCheck};
use crate::flow::Protocol;
use crate::hash::HashMap;
use crate::http::Method;
use crate::tls::SniStatus;

pub mod cluster_names;
pub mod findings;
pub mod written;

mod aggregate;
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
}

impl Report {
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
