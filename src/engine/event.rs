//! What the engine tells its exporters. Events borrow from engine state; an
//! exporter copies what it keeps.

use std::net::SocketAddr;

use crate::attribution::Attribution;
use crate::dns::DnsEvent;
use crate::flow::Protocol;
use crate::http::Method;
use crate::Timestamp;

/// An outbound connection as the exporters see it.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionView<'a> {
    pub id: u64,
    pub ts: Timestamp,
    pub protocol: Protocol,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub attribution: &'a Attribution,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    Refused,
    Timeout,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Refused => "refused",
            FailReason::Timeout => "timeout",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct HttpView<'a> {
    pub ts: Timestamp,
    /// Outbound: the pod is the client. Inbound: a peer called the pod.
    pub outbound: bool,
    pub connection_id: u64,
    pub dst: SocketAddr,
    /// For outbound requests: the connection's attribution.
    pub attribution: Option<&'a Attribution>,
    pub method: Method,
    pub status: u16,
    pub latency_secs: f64,
}

#[derive(Debug)]
pub enum Event<'a> {
    /// An outbound TCP attempt (first SYN) or UDP flow (first datagram).
    Connection(ConnectionView<'a>),
    /// The SYN-ACK for an outbound attempt.
    Connected {
        conn: ConnectionView<'a>,
        latency_secs: f64,
    },
    ConnectFailed {
        conn: ConnectionView<'a>,
        reason: FailReason,
    },
    /// ICMP port unreachable answered an outbound UDP flow.
    UdpUnreachable {
        conn: ConnectionView<'a>,
    },
    /// A peer opened a connection (or UDP flow) to the pod.
    Inbound {
        ts: Timestamp,
        protocol: Protocol,
        peer: SocketAddr,
        local: SocketAddr,
    },
    /// Payload bytes on an outbound connection since the last report.
    Bytes {
        attribution: &'a Attribution,
        sent: u64,
        received: u64,
    },
    Http(HttpView<'a>),
    Dns(&'a DnsEvent),
    /// A frame that could not be decoded, by reason.
    Skipped {
        reason: &'static str,
    },
    /// An entry evicted from a full table.
    Evicted {
        table: &'static str,
    },
}

/// An exporter: receives every event, in packet-time order.
pub trait Sink {
    fn on_event(&mut self, event: &Event<'_>);
}

/// Feeds every event to several sinks.
pub struct Tee<'s>(pub Vec<&'s mut dyn Sink>);

impl Sink for Tee<'_> {
    fn on_event(&mut self, event: &Event<'_>) {
        for sink in self.0.iter_mut() {
            sink.on_event(event);
        }
    }
}

/// A sink that keeps nothing (benchmarks, tests of the engine alone).
#[derive(Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn on_event(&mut self, _event: &Event<'_>) {}
}
