//! Dialed versus seen: detecting a destination rewritten before the wire.
//!
//! Cilium's socket-level load balancing rewrites a ClusterIP to a pod IP at
//! `connect()`, and mesh sidecars (Istio, Linkerd) take the app's connection
//! and dial a pod IP themselves. Inside the pod the wire then shows a lookup
//! answering a ClusterIP, followed at once by a connection from the pod to a
//! pod IP the answer did not hold. One such pair can be chance; the same
//! (name, port) pair seen [`MIN_EVIDENCE`] times is believed. From then on
//! (including the connection that completes the evidence) such connections
//! are attributed to the looked-up name with target `pod_ip`.
//!
//! False positives are kept low by only considering pod IPs that no answer
//! ever held and that the pod never dialed without a fresh lookup before.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::attribution::{AddrClass, Attribution, Attributor, Path};
use crate::dns::DnsTracker;
use crate::hash::{HashMap, HashSet};
use crate::Timestamp;

/// A connection at most this long after the answer follows from it.
pub const WINDOW_SECS: f64 = 1.0;
/// Pairs seen before the pattern is believed.
pub const MIN_EVIDENCE: u32 = 3;
/// Bounds on the detector's memory.
const MAX_KEYS: usize = 256;
const MAX_LITERAL: usize = 4096;

/// What one outbound connection told the detector.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The connection's attribution, rewritten to the looked-up name.
    pub attribution: Attribution,
    /// Set when this connection completed the evidence.
    pub detected: Option<u32>,
}

#[derive(Debug, Default)]
pub struct RewriteDetector {
    evidence: HashMap<(Arc<str>, u16), u32>,
    detected: HashSet<(Arc<str>, u16)>,
    /// Pod IPs dialed without a lookup answering a ClusterIP just before.
    literal: HashSet<IpAddr>,
}

impl RewriteDetector {
    /// Whether any (name, port) was detected.
    pub fn any_detected(&self) -> bool {
        !self.detected.is_empty()
    }

    /// An outbound TCP connection `src` → `dst` at `now`, attributed as
    /// `current`. Returns the rewritten attribution when the pattern holds
    /// for its (name, port).
    pub fn on_connection(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        current: &Attribution,
        dns: &DnsTracker,
        attributor: &Attributor,
    ) -> Option<Verdict> {
        if current.path != Path::PodIp {
            return None;
        }
        let addr = dst.ip();
        if self.literal.contains(&addr) || dns.ever_answered(addr) {
            return None;
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
            return None;
        };
        let key = (answer.name.clone(), dst.port());
        if !self.evidence.contains_key(&key) && self.evidence.len() >= MAX_KEYS {
            return None;
        }
        let n = self.evidence.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        let n = *n;
        let mut detected = None;
        if !self.detected.contains(&key) {
            if n < MIN_EVIDENCE || self.detected.len() >= MAX_KEYS {
                return None;
            }
            self.detected.insert(key);
            detected = Some(n);
        }
        Some(Verdict {
            attribution: Attribution {
                path: Path::Dns,
                target: Some(AddrClass::PodIp),
                dns_name: Some(answer.name.clone()),
                service: answer.service.clone().or_else(|| current.service.clone()),
                namespace: answer
                    .namespace
                    .clone()
                    .or_else(|| current.namespace.clone()),
            },
            detected,
        })
    }
}
