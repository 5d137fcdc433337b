//! Dialed versus seen: detecting a destination rewritten before the wire.
//!
//! Cilium's socket-level load balancing rewrites a ClusterIP to a pod IP at
//! `connect()`, and mesh sidecars (Istio, Linkerd) take the app's connection
//! and dial a pod IP themselves. Inside the pod the wire then shows a lookup
//! answering a ClusterIP, followed at once (within [`WINDOW_SECS`]) by a TCP
//! connection from the pod to a pod IP the answer did not hold: a
//! *candidate*. Only pod IPs that no answer ever held and that the pod never
//! dialed without such a lookup just before are candidates.
//!
//! One candidate can be chance: an app that dials a pod IP literal right
//! after an unrelated lookup. So a candidate's attribution is held (its
//! events kept, see [`Held`]) until the evidence is in:
//! - *refuted*: the pod dials one of the addresses the lookup answered (the
//!   Service's ClusterIP shows on the wire, so dialing that name is not
//!   rewritten). The held connection is a literal pod-IP call, and later
//!   candidates after lookups of that name are decided at once, as before
//!   holding existed: `pod_ip` until [`MIN_EVIDENCE`] pairs.
//! - *confirmed*: the same (name, port) pair seen [`MIN_EVIDENCE`] times.
//!   Every held connection of that pair, and every later one, is attributed
//!   to the looked-up name with target `pod_ip`.
//! - neither after [`HOLD_SECS`] of packet time (or when the hold table or
//!   one connection's kept events are full, or at the end of input): the
//!   lookup's own addresses were never dialed, which is what rewriting
//!   looks like, so the connection is attributed to the name.
//!
//! The price: a connection to a pod IP literal made right after a lookup
//! whose answer the pod then does not dial within [`HOLD_SECS`] is counted
//! under the looked-up name. Held connections reach the metrics up to
//! [`HOLD_SECS`] late. `analyze` and `run` decide alike (packet time).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::attribution::{AddrClass, Attribution, Attributor, Path};
use crate::dns::DnsTracker;
use crate::engine::event::{AppProtocol, Event, FailReason, H2Unread, Sink, SniCheck};
use crate::flow::FlowKey;
use crate::hash::{HashMap, HashSet};
use crate::http::Method;
use crate::tls::SniStatus;
use crate::Timestamp;

/// A connection at most this long after the answer follows from it.
pub const WINDOW_SECS: f64 = 1.0;
/// Pairs of one (name, port) seen before the pattern is believed at once.
pub const MIN_EVIDENCE: u32 = 3;
/// Longest a candidate's attribution is held (packet time).
pub const HOLD_SECS: f64 = 10.0;
/// Candidates held at once; past it the oldest is decided early.
pub const MAX_HELD: usize = 256;
/// Events kept per held connection (HTTP requests on a busy keep-alive
/// connection); past it the connection is decided early.
pub const MAX_HELD_EVENTS: usize = 64;
/// Bounds on the detector's memory.
const MAX_KEYS: usize = 256;
const MAX_LITERAL: usize = 4096;

/// What one outbound connection told the detector.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not a candidate: the attribution stands.
    Keep,
    /// Attributed to the looked-up name now. `detected` is set when this
    /// connection completed the evidence for its (name, port).
    Rewritten {
        attribution: Attribution,
        detected: Option<u32>,
    },
    /// A candidate: hold it until the evidence is in.
    Hold(Box<Candidate>),
}

/// A candidate connection's two possible attributions and what decides it.
#[derive(Debug, PartialEq, Eq)]
pub struct Candidate {
    pub rewritten: Attribution,
    key: (Arc<str>, u16),
    /// The client and the addresses its lookup answered: dialing one of
    /// them refutes the candidate.
    client: IpAddr,
    answered: Vec<IpAddr>,
}

/// An event of a held connection, owned until the decision.
#[derive(Debug)]
pub enum HeldEvent {
    Connected {
        latency_secs: f64,
    },
    Failed(FailReason),
    Http {
        ts: Timestamp,
        method: Method,
        status: u16,
        latency_secs: f64,
        protocol: AppProtocol,
        grpc_status: Option<u32>,
    },
    Tls {
        sni: Option<String>,
        status: SniStatus,
        alpn: Option<String>,
        dns_check: Option<SniCheck>,
    },
    H2Stream(H2Unread),
    /// The request's Host or `:authority`: what the app wrote, if the
    /// connection turns out to be the looked-up name's.
    RequestHost {
        host: String,
        h2: bool,
    },
}

/// A held connection.
#[derive(Debug)]
pub struct Held {
    pub flow_id: u64,
    pub key: FlowKey,
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// What it is if refuted: the attribution it had (`pod_ip`).
    pub literal: Attribution,
    pub candidate: Candidate,
    pub events: Vec<HeldEvent>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// Receives the events of one held connection in its place.
pub struct Keep<'a>(pub &'a mut Held);

impl Sink for Keep<'_> {
    fn on_event(&mut self, event: &Event<'_>) {
        let h = &mut *self.0;
        let kept = match event {
            Event::Connected { latency_secs, .. } => HeldEvent::Connected {
                latency_secs: *latency_secs,
            },
            Event::ConnectFailed { reason, .. } => HeldEvent::Failed(*reason),
            Event::Bytes { sent, received, .. } => {
                h.bytes_sent += sent;
                h.bytes_received += received;
                return;
            }
            Event::Http(v) => HeldEvent::Http {
                ts: v.ts,
                method: v.method,
                status: v.status,
                latency_secs: v.latency_secs,
                protocol: v.protocol,
                grpc_status: v.grpc_status,
            },
            Event::Tls(t) => HeldEvent::Tls {
                sni: t.sni.map(str::to_string),
                status: t.status,
                alpn: t.alpn.map(str::to_string),
                dns_check: t.dns_check,
            },
            Event::H2Stream { reason, .. } => HeldEvent::H2Stream(*reason),
            Event::RequestHost { host, h2, .. } => HeldEvent::RequestHost {
                host: (*host).to_string(),
                h2: *h2,
            },
            // Nothing else comes from one connection's segments.
            _ => return,
        };
        h.events.push(kept);
    }
}

#[derive(Debug, Default)]
pub struct RewriteDetector {
    evidence: HashMap<(Arc<str>, u16), u32>,
    detected: HashSet<(Arc<str>, u16)>,
    /// Pod IPs dialed without a lookup answering a ClusterIP just before.
    literal: HashSet<IpAddr>,
    /// Names whose answered addresses the pod dialed: not rewritten here.
    refuted: HashSet<Arc<str>>,
    /// Held connections, oldest first.
    held: VecDeque<Held>,
}

impl RewriteDetector {
    /// Whether any (name, port) was detected.
    pub fn any_detected(&self) -> bool {
        !self.detected.is_empty()
    }

    /// An outbound TCP connection `src` → `dst` at `now`, attributed as
    /// `current`.
    pub fn on_connection(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        current: &Attribution,
        dns: &DnsTracker,
        attributor: &Attributor,
    ) -> Decision {
        if current.path != Path::PodIp {
            return Decision::Keep;
        }
        let addr = dst.ip();
        if self.literal.contains(&addr) || dns.ever_answered(addr) {
            return Decision::Keep;
        }
        let answer = dns
            .recent_answers()
            .take_while(|s| now.secs_since(s.at) <= WINDOW_SECS && s.at <= now)
            .find(|s| {
                s.client == src.ip()
                    && !s.addrs.contains(&addr)
                    && s.addrs.iter().any(|&a| {
                        let class = attributor.classify(a);
                        class == AddrClass::ClusterIp
                            || (s.service.is_some() && class != AddrClass::PodIp)
                    })
            });
        let Some(answer) = answer else {
            if self.literal.len() >= MAX_LITERAL {
                self.literal.clear();
            }
            self.literal.insert(addr);
            return Decision::Keep;
        };
        let key = (answer.name.clone(), dst.port());
        if !self.evidence.contains_key(&key) && self.evidence.len() >= MAX_KEYS {
            return Decision::Keep;
        }
        let n = self.evidence.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        let n = *n;
        let rewritten = Attribution {
            path: Path::Dns,
            target: Some(AddrClass::PodIp),
            dns_name: Some(answer.name.clone()),
            service: answer.service.clone().or_else(|| current.service.clone()),
            namespace: answer
                .namespace
                .clone()
                .or_else(|| current.namespace.clone()),
        };
        if self.detected.contains(&key) {
            return Decision::Rewritten {
                attribution: rewritten,
                detected: None,
            };
        }
        if n >= MIN_EVIDENCE && self.detected.len() < MAX_KEYS {
            self.detected.insert(key);
            return Decision::Rewritten {
                attribution: rewritten,
                detected: Some(n),
            };
        }
        if self.refuted.contains(&answer.name) {
            return Decision::Keep;
        }
        Decision::Hold(Box::new(Candidate {
            rewritten,
            key,
            client: src.ip(),
            answered: answer.addrs.clone(),
        }))
    }

    /// Holds a candidate connection. Returns the held connections that must
    /// be decided now (as not refuted) to keep the table bounded.
    pub fn hold(&mut self, held: Held) -> Option<Held> {
        self.held.push_back(held);
        if self.held.len() > MAX_HELD {
            return self.held.pop_front();
        }
        None
    }

    /// The held connection of flow `id`.
    pub fn held_mut(&mut self, id: u64) -> Option<&mut Held> {
        self.held.iter_mut().find(|h| h.flow_id == id)
    }

    /// Takes the held connection of flow `id` out.
    pub fn take(&mut self, id: u64) -> Option<Held> {
        let i = self.held.iter().position(|h| h.flow_id == id)?;
        self.held.remove(i)
    }

    /// The pod dialed `dst`: held candidates whose lookup answered it are
    /// refuted (returned), and the name is marked refuted. `name` is the
    /// connection's looked-up name when it was attributed to a ClusterIP
    /// answer: that name is not rewritten either.
    pub fn dialed(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        name: Option<&Arc<str>>,
        out: &mut Vec<Held>,
    ) {
        if let Some(name) = name {
            self.refute(name.clone());
        }
        if self.held.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.held.len() {
            let c = &self.held[i].candidate;
            if c.client == src && c.answered.contains(&dst) {
                let name = c.key.0.clone();
                self.refute(name);
                if let Some(h) = self.held.remove(i) {
                    out.push(h);
                }
            } else {
                i += 1;
            }
        }
    }

    fn refute(&mut self, name: Arc<str>) {
        if self.refuted.len() < MAX_KEYS || self.refuted.contains(&name) {
            self.refuted.insert(name);
        }
    }

    /// Held connections of (name, port) `key` once it is confirmed, oldest first.
    pub fn confirmed(&mut self, rewritten: &Attribution, port: u16, out: &mut Vec<Held>) {
        let mut i = 0;
        while i < self.held.len() {
            let c = &self.held[i].candidate;
            if c.key.1 == port && c.rewritten.dns_name == rewritten.dns_name {
                if let Some(h) = self.held.remove(i) {
                    out.push(h);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Held connections due at `now` (or all), oldest first.
    pub fn due(&mut self, now: Option<Timestamp>, out: &mut Vec<Held>) {
        while let Some(h) = self.held.front() {
            if now.is_some_and(|now| now.secs_since(h.ts) < HOLD_SECS) {
                break;
            }
            if let Some(h) = self.held.pop_front() {
                out.push(h);
            }
        }
    }
}
