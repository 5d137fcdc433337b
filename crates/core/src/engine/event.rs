//! What the engine tells its exporters. Events borrow from engine state; an
//! exporter copies what it keeps.

use std::net::{IpAddr, SocketAddr};

use crate::attribution::{Attribution, Path};
use crate::decode::DecodeError;
use crate::defrag::DropReason;
use crate::dns::names::Stale;
use crate::dns::wire::WireError;
use crate::dns::{DnsEvent, DnsTable};
use crate::engine::destinations::Naming;
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
    pub protocol: AppProtocol,
    /// gRPC only: the `grpc-status` of the response trailers.
    pub grpc_status: Option<u32>,
}

/// The protocol a request was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppProtocol {
    Http1,
    H2,
    Grpc,
}

impl AppProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            AppProtocol::Http1 => "http1",
            AppProtocol::H2 => "h2",
            AppProtocol::Grpc => "grpc",
        }
    }
}

/// Whether a TLS server name agrees with the connection's DNS attribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SniCheck {
    /// The SNI is the looked-up name (or one of its search-list forms).
    Confirmed,
    /// The SNI names another host.
    Mismatch,
}

/// The ClientHello of an outbound connection.
#[derive(Clone, Copy, Debug)]
pub struct TlsView<'a> {
    pub conn: ConnectionView<'a>,
    /// The server name; `None` with `status` saying why.
    pub sni: Option<&'a str>,
    pub status: crate::tls::SniStatus,
    pub alpn: Option<&'a str>,
    /// Set when the connection was attributed to a DNS name and the SNI is known.
    pub dns_check: Option<SniCheck>,
}

/// An HTTP/2 stream that yields no request record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum H2Unread {
    /// A header block was read without HPACK context (joined mid-connection,
    /// a block lost to the capture, or a decoding error).
    NoHpackContext,
    /// Reset before a response.
    Reset,
}

impl H2Unread {
    pub fn as_str(self) -> &'static str {
        match self {
            H2Unread::NoHpackContext => "no_hpack_context",
            H2Unread::Reset => "reset",
        }
    }
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
    /// The `Host` header of the first HTTP/1 request (or the `:authority`
    /// of the first HTTP/2 one, `h2`) on an outbound connection attributed
    /// to a DNS name: what the app wrote, where the DNS wire is ambiguous
    /// (see `report::written`).
    RequestHost {
        conn: ConnectionView<'a>,
        host: &'a str,
        h2: bool,
    },
    /// The ClientHello of an outbound TLS connection.
    Tls(TlsView<'a>),
    /// An HTTP/2 stream whose request or response could not be read.
    H2Stream {
        outbound: bool,
        attribution: Option<&'a Attribution>,
        reason: H2Unread,
    },
    /// An outbound connection that follows a stale DNS answer (emitted
    /// right after its `Connection`).
    StaleDns {
        conn: ConnectionView<'a>,
        reason: Stale,
    },
    /// An outbound connection attributed to a looked-up name although it
    /// went to a pod IP the answer did not hold: the destination was
    /// rewritten before the wire (emitted right after its `Connection`).
    Rewritten {
        conn: ConnectionView<'a>,
    },
    /// The rewrite pattern was seen often enough to be believed (once per
    /// name and port).
    RewriteDetected {
        dns_name: &'a str,
        port: u16,
        evidence: u32,
    },
    Dns(&'a DnsEvent),
    /// The app dialed `addr` by its literal address for the first time
    /// (paths `pod_ip`, `cluster_ip`; emitted right after its `Connection`).
    /// `named`: a name is known already (a `DestinationNamed` follows).
    LiteralDestination {
        addr: IpAddr,
        path: Path,
        named: bool,
    },
    /// What a literal destination is: at its first use when known, else
    /// when a DNS answer, an app's PTR answer or podpath's own PTR lookup
    /// names it (and again when a better name replaces it).
    DestinationNamed {
        addr: IpAddr,
        naming: &'a Naming,
    },
    /// `count` frames not decoded (or, from a file source, records not
    /// read), for `reason`.
    Skipped {
        reason: SkipReason,
        count: u64,
    },
    /// `count` entries evicted from a full `table` (the DNS tracker's
    /// included: they never arrive as `Dns`).
    Evicted {
        table: Table,
        count: u64,
    },
    /// A DNS message that could not be parsed (never arrives as `Dns`).
    DnsMalformed {
        reason: WireError,
    },
}

/// Why frames were not decoded. `as_str` is the `reason` label of
/// `podpath_decode_skipped_total` and the report's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// No decoder for the link type (a file source counts these).
    UnsupportedLinkType,
    NotIp,
    /// Cut short of a header it claims (snap length, corrupt record).
    Truncated,
    Malformed,
    Ipv6ExtensionChain,
    /// Fragments of a datagram that never completed (timeout, eviction,
    /// end of input), or any fragment where nothing reassembles them.
    Fragment,
    /// Fragments of a datagram dropped for overlapping data.
    FragmentOverlap,
    /// An exact copy of a fragment already held.
    FragmentDuplicate,
    /// Fragments of a datagram dropped as malformed: too large, too many
    /// pieces, inconsistent end, cut by the snap length.
    FragmentMalformed,
    /// A capture file that ends inside a record (a file source counts these).
    TruncatedRecord,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnsupportedLinkType => "unsupported_link_type",
            SkipReason::NotIp => "not_ip",
            SkipReason::Truncated => "truncated",
            SkipReason::Malformed => "malformed",
            SkipReason::Ipv6ExtensionChain => "ipv6_extension_chain",
            SkipReason::Fragment => "fragment",
            SkipReason::FragmentOverlap => "fragment_overlap",
            SkipReason::FragmentDuplicate => "fragment_duplicate",
            SkipReason::FragmentMalformed => "fragment_malformed",
            SkipReason::TruncatedRecord => "truncated_record",
        }
    }
}

impl From<DecodeError> for SkipReason {
    fn from(e: DecodeError) -> SkipReason {
        match e {
            DecodeError::UnsupportedLinkType => SkipReason::UnsupportedLinkType,
            DecodeError::NotIp => SkipReason::NotIp,
            DecodeError::Truncated(_) => SkipReason::Truncated,
            DecodeError::Malformed(_) => SkipReason::Malformed,
            DecodeError::Fragment => SkipReason::Fragment,
            DecodeError::ExtensionChain => SkipReason::Ipv6ExtensionChain,
        }
    }
}

impl From<DropReason> for SkipReason {
    fn from(r: DropReason) -> SkipReason {
        match r {
            DropReason::Duplicate => SkipReason::FragmentDuplicate,
            DropReason::Overlap => SkipReason::FragmentOverlap,
            DropReason::Malformed => SkipReason::FragmentMalformed,
        }
    }
}

/// A bounded table that evicts when full. `as_str` is the `table` label of
/// `podpath_table_evictions_total` and the report's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Flows,
    /// IP datagrams held for reassembly.
    Fragments,
    /// Names of literal destinations.
    Destinations,
    /// Names other threads fed in, past the inbox's bound.
    NameFeed,
    /// Connections held for a rewrite decision.
    RewriteHeld,
    /// DNS: queries waiting for an answer (a query not tracked).
    Pending,
    /// DNS: address → name.
    Names,
    /// DNS: TCP streams being reassembled.
    TcpStreams,
    /// DNS: lookups in progress (reported early).
    Lookups,
}

impl Table {
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Flows => "flows",
            Table::Fragments => "fragments",
            Table::Destinations => "destinations",
            Table::NameFeed => "name_feed",
            Table::RewriteHeld => "rewrite_held",
            Table::Pending => "pending",
            Table::Names => "names",
            Table::TcpStreams => "tcp_streams",
            Table::Lookups => "lookups",
        }
    }
}

impl From<DnsTable> for Table {
    fn from(t: DnsTable) -> Table {
        match t {
            DnsTable::Pending => Table::Pending,
            DnsTable::Names => Table::Names,
            DnsTable::TcpStreams => Table::TcpStreams,
            DnsTable::Lookups => Table::Lookups,
        }
    }
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
