//! DNS: wire parsing (hickory-proto), TCP stream reassembly, query/response
//! matching, search-list collapse into lookups, and the address → name table.
//!
//! [`DnsTracker`] is a state machine driven only by packet timestamps. The
//! engine hands it DNS traffic (UDP and TCP segments to or from a DNS port,
//! and ICMP port-unreachables answering them), calls [`DnsTracker::advance`]
//! as packet time moves, and [`DnsTracker::flush`] at the end of input. It
//! gets [`DnsEvent`]s back and asks [`DnsTracker::resolve`] which name an
//! address was answered for.
//!
//! Which side is the client comes from the QR bit, not from ports.
//!
//! Wiring, for the engine:
//! - UDP with either port 53: `on_udp(ts, src, dst, udp.payload)` (the
//!   captured bytes; a message cut by the snap length is reported `Malformed`).
//! - TCP with either port 53: `on_tcp` for every segment of the connection,
//!   payload-less SYN, FIN and RST included (they start and end streams).
//! - ICMP port unreachable whose embedded original is UDP to port 53:
//!   `on_port_unreachable(ts, original_src:port, original_dst:port)`.
//! - `advance(now)` whenever packet time moves (per packet, or per batch and
//!   on `Next::Idle`); `flush` once at the end of input.
//! - `Completed` events (one per query on the wire, retransmissions
//!   included) feed `podpath_dns_queries_total{qtype, rcode}` and the
//!   response-time histogram; `LateAnswer` events the late answers;
//!   `Lookup` events the lookup metrics; `Query` events tell which local
//!   addresses send queries (the pod's own) and which are retransmissions.
//! - Attribution: `resolve(dst_ip, ts)` at the SYN; `NameInfo::name` is the
//!   `dns_name` label, `service`/`namespace` the Service's.

pub mod intern;
pub mod k8s;
pub mod lookup;
pub mod names;
pub mod resolv;
pub mod stream;
pub mod transaction;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::{kubernetes_search, PodConfig};
use crate::decode::TcpSegment;
use crate::Timestamp;

pub use lookup::{Form, Lookup, Search};
pub use names::NameInfo;
pub use resolv::ResolvConf;
pub use stream::StreamStats;
pub use transaction::{LateAnswer, Outcome, Transaction, Transport, TxStats};
pub use wire::{QType, Rcode, WireError};

use lookup::Lookups;
use names::NameTable;
use stream::Streams;
use transaction::{Matched, QueryStatus, Transactions};

/// TCP DNS directions idle this long are dropped (CoreDNS closes after 10 s).
const STREAM_IDLE_SECS: f64 = 60.0;
const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Names shared by the tracker's queries, responses and name table (`intern`).
const MAX_INTERNED: usize = 4096;

/// The tracker's settings. Names are normalised already
/// ([`crate::config::normalize_domain`]): the tracker does not clean them.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsConfig {
    /// Search domains; empty = infer from the traffic.
    pub search: Vec<String>,
    pub ndots: u8,
    /// The pod's namespace; `None` = infer. With `search` empty and this
    /// set, the search list is built as Kubernetes does.
    pub namespace: Option<String>,
    /// `None` = infer (classification falls back to `cluster.local` until then).
    pub cluster_domain: Option<String>,
    pub query_timeout_secs: f64,
    pub ttl_grace_secs: f64,
    /// Quiet time after a lookup's last query completed before it is reported.
    pub lookup_linger_secs: f64,
    pub max_pending: usize,
    pub max_names: usize,
    pub max_streams: usize,
    pub max_lookups: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            search: Vec::new(),
            ndots: 5,
            namespace: None,
            cluster_domain: None,
            query_timeout_secs: 5.0,
            ttl_grace_secs: 30.0,
            lookup_linger_secs: 1.0,
            max_pending: 4096,
            max_names: 16384,
            max_streams: 256,
            max_lookups: 1024,
        }
    }
}

impl DnsConfig {
    /// What the tracker reads of the pod's configuration; the rest keeps
    /// its default.
    pub fn for_pod(pod: &PodConfig) -> Self {
        DnsConfig {
            search: pod.search.clone(),
            ndots: pod.ndots,
            namespace: pod.namespace.clone(),
            cluster_domain: pod.cluster_domain.clone(),
            query_timeout_secs: pod.timeouts.dns_query,
            ttl_grace_secs: pod.timeouts.dns_ttl_grace,
            max_pending: pod.limits.max_dns_pending,
            max_names: pod.limits.max_dns_names,
            max_streams: pod.limits.max_dns_streams,
            ..DnsConfig::default()
        }
    }
}

/// A query seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryEvent {
    pub ts: Timestamp,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub qname: Arc<str>,
    pub qtype: QType,
    pub transport: Transport,
    /// Same client, server, id and question as an earlier query still
    /// unanswered (waiting, or timed out within the late window).
    pub retransmission: bool,
}

/// What one response said about addresses. Emitted as the response arrives
/// (before its `Completed`), so what it teaches applies to the connection
/// that follows it, not only after the lookup is reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub ts: Timestamp,
    /// The pod address that asked.
    pub client: IpAddr,
    /// A/AAAA: the question name; PTR: the target (lower case, no trailing dot).
    pub name: Arc<str>,
    /// A/AAAA: the last name of the CNAME chain, when there was one.
    pub canonical: Option<Arc<str>>,
    /// A/AAAA: the addresses answered (both families, at most
    /// `wire::MAX_ANSWERS`); PTR: the address asked about.
    pub addrs: Vec<IpAddr>,
    pub source: k8s::NameSource,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DnsEvent {
    Answered(Answered),
    Query(QueryEvent),
    /// A query answered, timed out, or refused by ICMP. One per query on
    /// the wire (retransmissions included): count `podpath_dns_queries_total` here.
    Completed(Transaction),
    /// An answer to a query that had already completed as `TIMEOUT`.
    LateAnswer(LateAnswer),
    Lookup(Lookup),
    /// The engine reports these as `Event::DnsMalformed`.
    Malformed {
        reason: wire::WireError,
        transport: Transport,
    },
    /// A bounded table dropped an entry. One event per entry; the engine
    /// reports these as `Event::Evicted`.
    Evicted {
        table: DnsTable,
    },
}

/// The DNS tracker's bounded tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnsTable {
    /// Queries waiting for an answer (evicted: a query not tracked).
    Pending,
    /// Address → name.
    Names,
    /// TCP streams being reassembled.
    TcpStreams,
    /// Lookups in progress (evicted: reported early).
    Lookups,
}

/// What the tracker knows about the resolver configuration, and what of it
/// was inferred from the traffic rather than configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inferred {
    pub search: Vec<String>,
    pub ndots: u8,
    pub namespace: Option<String>,
    pub cluster_domain: Option<String>,
    pub search_inferred: bool,
    pub namespace_inferred: bool,
    pub cluster_domain_inferred: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsStats {
    pub tx: TxStats,
    pub streams: StreamStats,
    pub malformed: u64,
    /// Messages with a readable header, by QR bit: (queries, responses).
    pub wire_messages: (u64, u64),
    /// Well-formed messages that are not standard queries/responses with a question.
    pub ignored: u64,
    pub names: usize,
    pub names_evicted: u64,
    pub lookups_evicted: u64,
    pub lookups_open: usize,
}

#[derive(Debug)]
pub struct DnsTracker {
    cfg: DnsConfig,
    search: Search,
    inferred: Inferred,
    tx: Transactions,
    lookups: Lookups,
    names: NameTable,
    streams: Streams,
    malformed: u64,
    ignored: u64,
    last_stream_sweep: Timestamp,
    /// (queries, responses) with a readable header, well-formed or not.
    wire_messages: (u64, u64),
    scratch: Vec<Transaction>,
    /// The message being handled, kept for its buffers.
    msg: wire::DnsMessage,
    interned: intern::Interner,
    /// Lookups being reported, kept for its buffer.
    finished: Vec<Lookup>,
}

impl DnsTracker {
    pub fn new(mut cfg: DnsConfig) -> Self {
        if !(cfg.query_timeout_secs.is_finite() && cfg.query_timeout_secs > 0.0) {
            cfg.query_timeout_secs = DnsConfig::default().query_timeout_secs;
        }
        let mut search = cfg.search.clone();
        let mut domain = cfg.cluster_domain.clone();
        let mut namespace = cfg.namespace.clone();
        if search.is_empty() {
            if let (Some(ns), Some(d)) = (&namespace, &domain) {
                search = kubernetes_search(ns, d);
            }
        }
        // A configured search list `<ns>.svc.<domain> …` tells what was not configured.
        let from_search = search.first().and_then(|s| {
            let (ns, d) = s.split_once(".svc.")?;
            (!ns.is_empty() && !ns.contains('.') && !d.is_empty())
                .then(|| (ns.to_string(), d.to_string()))
        });
        let mut namespace_inferred = false;
        let mut cluster_domain_inferred = false;
        if let Some((ns, d)) = from_search {
            if namespace.is_none() {
                namespace = Some(ns);
                namespace_inferred = true;
            }
            if domain.is_none() {
                domain = Some(d);
                cluster_domain_inferred = true;
            }
        }
        let inferred = Inferred {
            search: search.clone(),
            ndots: cfg.ndots,
            namespace,
            cluster_domain: domain.clone(),
            search_inferred: false,
            namespace_inferred,
            cluster_domain_inferred,
        };
        DnsTracker {
            search: Search {
                domains: search.iter().map(|s| Arc::from(s.as_str())).collect(),
                ndots: cfg.ndots,
                cluster_domain: Arc::from(domain.as_deref().unwrap_or(DEFAULT_CLUSTER_DOMAIN)),
            },
            inferred,
            tx: Transactions::new(cfg.query_timeout_secs, cfg.max_pending),
            lookups: Lookups::new(
                cfg.max_lookups,
                cfg.lookup_linger_secs,
                cfg.query_timeout_secs * 2.0 + 10.0,
            ),
            names: NameTable::new(cfg.max_names, cfg.ttl_grace_secs),
            streams: Streams::new(cfg.max_streams),
            malformed: 0,
            ignored: 0,
            last_stream_sweep: Timestamp::ZERO,
            wire_messages: (0, 0),
            scratch: Vec::new(),
            msg: wire::DnsMessage::empty(),
            interned: intern::Interner::new(MAX_INTERNED),
            finished: Vec::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &DnsConfig {
        &self.cfg
    }

    /// A UDP datagram `src` → `dst` whose payload is a DNS message.
    pub fn on_udp(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        out: &mut Vec<DnsEvent>,
    ) {
        self.on_message(ts, src, dst, payload, Transport::Udp, out);
    }

    /// A TCP segment `src` → `dst` of a DNS-over-TCP connection.
    pub fn on_tcp(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        seg: &TcpSegment<'_>,
        out: &mut Vec<DnsEvent>,
    ) {
        // The stream table is taken out for the call so that messages are
        // parsed straight from its buffer (`Streams::new` does not allocate).
        let mut streams = std::mem::replace(&mut self.streams, Streams::new(1));
        let outcome = streams.segment(ts, src, dst, seg, |m| {
            self.on_message(ts, src, dst, m, Transport::Tcp, out)
        });
        self.streams = streams;
        if outcome.evicted {
            out.push(DnsEvent::Evicted {
                table: DnsTable::TcpStreams,
            });
        }
    }

    /// An ICMP port unreachable answering a datagram `client` sent to
    /// `server`: the queries pending between them complete as `UNREACHABLE`.
    pub fn on_port_unreachable(
        &mut self,
        ts: Timestamp,
        client: SocketAddr,
        server: SocketAddr,
        out: &mut Vec<DnsEvent>,
    ) {
        let mut done = std::mem::take(&mut self.scratch);
        self.tx.unreachable(client, server, &mut done);
        self.complete_all(ts, &mut done, out);
        self.scratch = done;
    }

    /// Packet time moved to `now`: fires query timeouts, reports finished
    /// lookups, drops expired names and idle TCP streams.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<DnsEvent>) {
        self.expire_queries(now, out);
        let mut lookups = std::mem::take(&mut self.finished);
        self.lookups.expire(now, &self.search, &mut lookups);
        out.extend(lookups.drain(..).map(DnsEvent::Lookup));
        self.finished = lookups;
        self.names.expire(now);
        if now.secs_since(self.last_stream_sweep) >= 1.0 {
            self.last_stream_sweep = now;
            self.streams.expire(now, STREAM_IDLE_SECS);
        }
    }

    /// Completes the queries whose timeout passed at `now`.
    fn expire_queries(&mut self, now: Timestamp, out: &mut Vec<DnsEvent>) {
        let mut done = std::mem::take(&mut self.scratch);
        self.tx.expire(now, &mut done);
        for tx in done.drain(..) {
            // A copy still waiting keeps the lookup's question open.
            if !tx.others_waiting {
                // The lookup saw the timeout when it happened, not when `advance` ran.
                let at = tx.sent.add_secs(self.cfg.query_timeout_secs).min(now);
                self.lookups.on_completed(at, &tx, &[]);
            }
            out.push(DnsEvent::Completed(tx));
        }
        self.scratch = done;
    }

    /// End of input. Every pending query completes as `TIMEOUT` (the capture
    /// holds no answer for it, however recently it was sent), then every
    /// open lookup is reported. The name table is kept for `resolve`.
    pub fn flush(&mut self, out: &mut Vec<DnsEvent>) {
        let mut done = std::mem::take(&mut self.scratch);
        self.tx.flush(&mut done);
        for tx in &done {
            let end = tx.sent.add_secs(self.cfg.query_timeout_secs);
            self.lookups.on_completed(end, tx, &[]);
        }
        out.extend(done.drain(..).map(DnsEvent::Completed));
        self.scratch = done;
        let mut lookups = Vec::new();
        self.lookups.flush(&self.search, &mut lookups);
        out.extend(lookups.into_iter().map(DnsEvent::Lookup));
        self.streams.flush();
    }

    /// The name `addr` was last answered for, if that answer is still within
    /// TTL + grace at `now`.
    pub fn resolve(&self, addr: IpAddr, now: Timestamp) -> Option<&NameInfo> {
        self.names.resolve(addr, now)
    }

    /// Whether a connection to `addr` now follows a stale answer.
    pub fn staleness(&self, addr: IpAddr, now: Timestamp) -> Option<names::Stale> {
        self.names.staleness(addr, now)
    }

    /// Recent answer sets, newest first.
    pub fn recent_answers(&self) -> impl Iterator<Item = &names::AnswerSet> {
        self.names.recent()
    }

    /// Whether any answer held `addr` (bounded memory).
    pub fn ever_answered(&self, addr: IpAddr) -> bool {
        self.names.ever_answered(addr)
    }

    pub fn inferred(&self) -> Inferred {
        self.inferred.clone()
    }

    /// The search configuration lookups are currently read against.
    pub fn search(&self) -> &Search {
        &self.search
    }

    pub fn stats(&self) -> DnsStats {
        DnsStats {
            tx: self.tx.stats(),
            streams: self.streams.stats(),
            malformed: self.malformed,
            wire_messages: self.wire_messages,
            ignored: self.ignored,
            names: self.names.len(),
            names_evicted: self.names.evicted(),
            lookups_evicted: self.lookups.evicted(),
            lookups_open: self.lookups.open(),
        }
    }

    fn complete_all(
        &mut self,
        ts: Timestamp,
        done: &mut Vec<Transaction>,
        out: &mut Vec<DnsEvent>,
    ) {
        for tx in done.drain(..) {
            self.lookups.on_completed(ts, &tx, &[]);
            out.push(DnsEvent::Completed(tx));
        }
    }

    fn on_message(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        bytes: &[u8],
        transport: Transport,
        out: &mut Vec<DnsEvent>,
    ) {
        // Count every message whose header is readable, by its QR bit, as
        // packet tools do: malformed ones included.
        if let Some(&flags) = bytes.get(2) {
            if bytes.len() >= 12 {
                if flags & 0x80 != 0 {
                    self.wire_messages.1 += 1;
                } else {
                    self.wire_messages.0 += 1;
                }
            }
        }
        let mut msg = std::mem::replace(&mut self.msg, wire::DnsMessage::empty());
        match wire::parse_into(bytes, &mut msg) {
            Ok(()) => self.on_parsed(ts, src, dst, &msg, transport, out),
            Err(e) => {
                self.malformed += 1;
                out.push(DnsEvent::Malformed {
                    reason: e,
                    transport,
                });
            }
        }
        self.msg = msg;
    }

    fn on_parsed(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &wire::DnsMessage,
        transport: Transport,
        out: &mut Vec<DnsEvent>,
    ) {
        // Only standard queries (opcode 0) are lookups; NOTIFY, UPDATE, … are not.
        if msg.opcode != 0 {
            self.ignored += 1;
            return;
        }
        if msg.is_response {
            self.on_response(ts, dst, src, msg, out);
            return;
        }
        let Some(q) = &msg.question else {
            self.ignored += 1;
            return;
        };
        let qname = self.interned.get(&q.name);
        self.infer(&qname);
        let overflow = self.tx.stats().overflow;
        let status = self
            .tx
            .query(ts, src, dst, msg.id, qname.clone(), q.qtype, transport);
        // A query not tracked (table full, or too many copies of it waiting)
        // never completes: counted here instead.
        if self.tx.stats().overflow > overflow {
            out.push(DnsEvent::Evicted {
                table: DnsTable::Pending,
            });
        }
        let retransmission = status == QueryStatus::Retransmission;
        if retransmission {
            self.lookups
                .on_retransmission(ts, src.ip(), &qname, q.qtype);
        } else {
            let mut early = std::mem::take(&mut self.finished);
            if self
                .lookups
                .on_query(ts, src.ip(), &qname, q.qtype, &self.search, &mut early)
            {
                out.push(DnsEvent::Evicted {
                    table: DnsTable::Lookups,
                });
            }
            out.extend(early.drain(..).map(DnsEvent::Lookup));
            self.finished = early;
        }
        out.push(DnsEvent::Query(QueryEvent {
            ts,
            client: src,
            server: dst,
            qname,
            qtype: q.qtype,
            transport,
            retransmission,
        }));
    }

    fn on_response(
        &mut self,
        ts: Timestamp,
        client: SocketAddr,
        server: SocketAddr,
        msg: &wire::DnsMessage,
        out: &mut Vec<DnsEvent>,
    ) {
        // Timeouts due by now happen first: the response may be late.
        self.expire_queries(ts, out);
        let mut late_taken = None;
        let tx = match self.tx.response(ts, client, server, msg) {
            Matched::Answer(tx) => Some(tx),
            Matched::Late { late, waiting } => {
                // A copy still waits: the resolver takes this answer, so the
                // lookup does, though no copy is counted as answered.
                if waiting {
                    late_taken = Some(Transaction {
                        client: late.client,
                        server: late.server,
                        id: late.id,
                        qname: late.qname.clone(),
                        qtype: late.qtype,
                        transport: late.transport,
                        sent: ts,
                        outcome: Outcome::Rcode(msg.rcode),
                        latency_secs: None,
                        answered: msg.rcode == wire::Rcode::NOERROR && msg.answer_count > 0,
                        truncated: msg.truncated,
                        others_waiting: true,
                    });
                }
                out.push(DnsEvent::LateAnswer(late));
                None
            }
            Matched::Unmatched => None,
        };
        let Some(q) = &msg.question else {
            if let Some(tx) = tx.as_ref().or(late_taken.as_ref()) {
                self.lookups.on_completed(ts, tx, &[]);
            }
            if let Some(tx) = tx {
                out.push(DnsEvent::Completed(tx));
            }
            return;
        };
        if q.qtype == QType::PTR {
            let domain = &self.search.cluster_domain;
            if let Some(named) = ptr_answer(ts, client.ip(), &q.name, &msg.answers, domain) {
                out.push(DnsEvent::Answered(named));
            }
        }
        let (answers, canonical) = names::chase(&q.name, &msg.answers);
        let addrs: Vec<IpAddr> = answers.iter().map(|(a, _)| *a).collect();
        let app_name = tx
            .as_ref()
            .or(late_taken.as_ref())
            .and_then(|tx| self.lookups.on_completed(ts, tx, &addrs));
        if !answers.is_empty() {
            let fqdn = self.interned.get(&q.name);
            // Without a lookup (the query was not seen), read the name back
            // from the FQDN the way a first query would be read.
            let name = app_name.unwrap_or_else(|| {
                let (stem, _, _) = lookup::interpret(&fqdn, &self.search);
                self.interned.get(stem)
            });
            let domain = self.search.cluster_domain.clone();
            let svc = names::service_of(&fqdn, &domain).or_else(|| {
                canonical
                    .as_deref()
                    .and_then(|c| names::service_of(c, &domain))
            });
            let (service, namespace) = match svc {
                Some((s, n)) => (Some(Arc::from(s)), Some(Arc::from(n))),
                None => (None, None),
            };
            let mut set = names::AnswerSet {
                at: ts,
                client: client.ip(),
                name: name.clone(),
                fqdn: fqdn.clone(),
                service: service.clone(),
                namespace: namespace.clone(),
                addrs: Vec::new(),
            };
            for v6 in [false, true] {
                set.addrs = addrs
                    .iter()
                    .copied()
                    .filter(|a| a.is_ipv6() == v6)
                    .collect();
                self.names.record_answer(set.clone());
            }
            out.push(DnsEvent::Answered(Answered {
                ts,
                client: client.ip(),
                name: fqdn.clone(),
                canonical: canonical.as_deref().map(Arc::from),
                addrs: addrs.clone(),
                source: k8s::NameSource::DnsAnswer,
            }));
            for (addr, ttl) in answers {
                let info = NameInfo {
                    name: name.clone(),
                    fqdn: fqdn.clone(),
                    service: service.clone(),
                    namespace: namespace.clone(),
                    answered_at: ts,
                    expires: ts,
                    ttl,
                };
                for _ in 0..self.names.insert(ts, addr, ttl, info) {
                    out.push(DnsEvent::Evicted {
                        table: DnsTable::Names,
                    });
                }
            }
        }
        if let Some(tx) = tx {
            out.push(DnsEvent::Completed(tx));
        }
    }

    /// Learns namespace, cluster domain and search list from the first query
    /// of the shape `<x>.<ns>.svc.<domain>` (the rightmost `.svc.` splits it),
    /// when they were not configured.
    fn infer(&mut self, qname: &str) {
        if !self.search.domains.is_empty() {
            return;
        }
        let Some(pos) = qname.rfind(".svc.") else {
            return;
        };
        let (Some(left), Some(domain)) = (qname.get(..pos), qname.get(pos + 5..)) else {
            return;
        };
        let Some((_, ns)) = left.rsplit_once('.') else {
            return;
        };
        if ns.is_empty() || domain.is_empty() {
            return;
        }
        if let Some(configured) = &self.inferred.cluster_domain {
            if configured != domain {
                return;
            }
        }
        if let Some(configured) = &self.inferred.namespace {
            if configured != ns {
                return;
            }
        }
        let search = kubernetes_search(ns, domain);
        self.search.domains = search.iter().map(|s| Arc::from(s.as_str())).collect();
        self.search.cluster_domain = Arc::from(domain);
        self.inferred.search = search;
        self.inferred.search_inferred = true;
        if self.inferred.namespace.is_none() {
            self.inferred.namespace = Some(ns.to_string());
            self.inferred.namespace_inferred = true;
        }
        if self.inferred.cluster_domain.is_none() {
            self.inferred.cluster_domain = Some(domain.to_string());
            self.inferred.cluster_domain_inferred = true;
        }
    }
}

/// What a PTR response the app asked for names: the address of the
/// question and the first PTR target of the question's owner that the
/// cluster's DNS forms (`dns::k8s`), else the first target. CoreDNS answers
/// an endpoint IP with one name per Service it backs.
fn ptr_answer(
    ts: Timestamp,
    client: IpAddr,
    qname: &str,
    answers: &[wire::Answer],
    domain: &str,
) -> Option<Answered> {
    let addr = k8s::address_of_reverse(qname)?;
    let targets = answers.iter().filter_map(|a| match &a.data {
        wire::AnswerData::Ptr(t) if a.name == qname && !t.is_empty() => Some(t.as_str()),
        _ => None,
    });
    let mut first = None;
    let mut cluster = None;
    for t in targets {
        first.get_or_insert(t);
        if cluster.is_none() && k8s::DestinationName::parse(t, domain).is_cluster() {
            cluster = Some(t);
        }
    }
    let name = cluster.or(first)?;
    Some(Answered {
        ts,
        client,
        name: Arc::from(name),
        canonical: None,
        addrs: vec![addr],
        source: k8s::NameSource::AppPtr,
    })
}

/// The search list kubelet writes into a pod's resolv.conf.
#[cfg(test)]
mod tests;
