//! Every metric podpath exports, declared in one place with its help text,
//! and the sink that turns engine events into them.
//!
//! Label values that come from traffic (DNS names, services, namespaces,
//! ports) pass through a per-metric cap: past `max_label_values` distinct
//! values, new ones fold into `~other`, and past `max_series` series per
//! family every traffic-derived label folds; `podpath_label_overflow_total`
//! counts each fold.

mod process;

pub use process::{peak_rss_bytes, ProcessCollector};

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::attribution::Attribution;
use crate::attribution::Path;
use crate::config::NamePolicy;
use crate::dns::DnsEvent;
use crate::engine::destinations::Naming;
use crate::engine::{AppProtocol, Event, Sink, SniCheck, TlsView};
use crate::hash::{HashMap, HashSet};

/// The value traffic-derived labels fold into past their cap.
pub const OVERFLOW: &str = "~other";

/// A cheaply cloned label value: a static string (status codes, `~other`)
/// or one shared with the caps. Compared, ordered and hashed as its text.
#[derive(Clone, Debug)]
pub struct Label(LabelText);

#[derive(Clone, Debug)]
enum LabelText {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Label {
    fn from_static(s: &'static str) -> Label {
        Label(LabelText::Static(s))
    }

    fn shared(s: Arc<str>) -> Label {
        Label(LabelText::Shared(s))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            LabelText::Static(s) => s,
            LabelText::Shared(s) => s,
        }
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Label) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Label) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

type Hist = Family<PathLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub path: &'static str,
    pub target: &'static str,
    pub protocol: &'static str,
    pub dns_name: Label,
    pub service: Label,
    pub namespace: Label,
    pub port: Label,
}

/// `podpath_literal_connections_total`: the literal paths only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LiteralLabels {
    pub path: &'static str,
    pub address: Label,
    pub port: Label,
}

/// `podpath_destination_info`: what a literal destination is (one series
/// per address at a time; join on `address`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationInfoLabels {
    pub address: Label,
    pub service: Label,
    pub namespace: Label,
    pub pod: Label,
    pub name: Label,
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InboundLabels {
    pub protocol: &'static str,
    pub port: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub path: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    pub path: &'static str,
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub path: &'static str,
    pub service: Label,
    pub method: &'static str,
    pub code: Label,
    /// `http1`, `h2` or `grpc` (last, so label sets read as before).
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpDurationLabels {
    pub path: &'static str,
    pub service: Label,
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InboundHttpLabels {
    pub method: &'static str,
    pub code: Label,
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    pub path: &'static str,
    pub service: Label,
    pub grpc_status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabels {
    pub path: &'static str,
    pub sni: Label,
    pub alpn: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsNameLabels {
    pub dns_name: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct H2StreamLabels {
    pub direction: &'static str,
    pub path: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StaleLabels {
    pub path: &'static str,
    pub dns_name: Label,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RewriteLabels {
    pub dns_name: Label,
    pub port: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsQueryLabels {
    pub qtype: &'static str,
    pub rcode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QTypeLabels {
    pub qtype: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RcodeLabels {
    pub rcode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    pub dns_name: Label,
    pub form: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupNameLabels {
    pub dns_name: Label,
    pub form: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverflowLabels {
    pub metric: &'static str,
    pub label: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub table: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InterfaceLabels {
    pub interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CaptureErrorLabels {
    pub interface: String,
    /// `crate::capture::health::FailReason::as_str`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
}

const CONNECT_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const HTTP_BUCKETS: [f64; 13] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const DNS_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

fn connect_histogram() -> Histogram {
    Histogram::new(CONNECT_BUCKETS)
}
fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// The registry and every metric family. Shared (behind an `Arc`) between
/// the engine thread, which updates it, and the HTTP server, which encodes it.
pub struct Metrics {
    registry: Registry,
    pub connections: Family<ConnectionLabels, Counter>,
    pub literal_connections: Family<LiteralLabels, Counter>,
    pub destination_info: Family<DestinationInfoLabels, Gauge>,
    pub inbound_connections: Family<InboundLabels, Counter>,
    pub connect_failures: Family<FailureLabels, Counter>,
    pub connect_duration: Hist,
    pub udp_unreachable: Family<PathLabels, Counter>,
    pub connection_bytes: Family<BytesLabels, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<HttpDurationLabels, Histogram, fn() -> Histogram>,
    pub inbound_http_requests: Family<InboundHttpLabels, Counter>,
    pub inbound_http_duration: Histogram,
    pub grpc_requests: Family<GrpcLabels, Counter>,
    pub h2_streams_unread: Family<H2StreamLabels, Counter>,
    pub tls_connections: Family<TlsLabels, Counter>,
    pub tls_sni_confirms_dns: Family<DnsNameLabels, Counter>,
    pub tls_sni_mismatches_dns: Family<DnsNameLabels, Counter>,
    pub dns_stale_connections: Family<StaleLabels, Counter>,
    pub rewritten_connections: Family<RewriteLabels, Counter>,
    pub rewrite_detected: Gauge,
    pub dns_queries: Family<DnsQueryLabels, Counter>,
    pub dns_response_duration: Histogram,
    pub dns_retransmissions: Family<QTypeLabels, Counter>,
    pub dns_late_answers: Family<RcodeLabels, Counter>,
    pub dns_lookups: Family<LookupLabels, Counter>,
    pub dns_lookup_queries: Family<LookupNameLabels, Counter>,
    pub dns_lookup_wasted: Family<LookupNameLabels, Counter>,
    pub dns_malformed: Family<ReasonLabels, Counter>,
    pub label_overflow: Family<OverflowLabels, Counter>,
    pub decode_skipped: Family<ReasonLabels, Counter>,
    pub table_evictions: Family<TableLabels, Counter>,
    pub capture_packets: Family<InterfaceLabels, Counter>,
    pub capture_drops: Family<InterfaceLabels, Counter>,
    /// Per interface; interfaces are chosen at start, so the series are few.
    pub capture_up: Family<InterfaceLabels, Gauge>,
    /// One series per failing interface, removed when it captures again.
    pub capture_error_info: Family<CaptureErrorLabels, Gauge>,
    pub table_capacity: Family<TableLabels, Gauge>,
    pub memory_limit: Gauge,
    pub memory_budget: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            connections: Family::default(),
            literal_connections: Family::default(),
            destination_info: Family::default(),
            inbound_connections: Family::default(),
            connect_failures: Family::default(),
            connect_duration: Family::new_with_constructor(connect_histogram as fn() -> Histogram),
            udp_unreachable: Family::default(),
            connection_bytes: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram as fn() -> Histogram),
            inbound_http_requests: Family::default(),
            inbound_http_duration: Histogram::new(HTTP_BUCKETS),
            grpc_requests: Family::default(),
            h2_streams_unread: Family::default(),
            tls_connections: Family::default(),
            tls_sni_confirms_dns: Family::default(),
            tls_sni_mismatches_dns: Family::default(),
            dns_stale_connections: Family::default(),
            rewritten_connections: Family::default(),
            rewrite_detected: Gauge::default(),
            dns_queries: Family::default(),
            dns_response_duration: Histogram::new(DNS_BUCKETS),
            dns_retransmissions: Family::default(),
            dns_late_answers: Family::default(),
            dns_lookups: Family::default(),
            dns_lookup_queries: Family::default(),
            dns_lookup_wasted: Family::default(),
            dns_malformed: Family::default(),
            label_overflow: Family::default(),
            decode_skipped: Family::default(),
            table_evictions: Family::default(),
            capture_packets: Family::default(),
            capture_drops: Family::default(),
            capture_up: Family::default(),
            capture_error_info: Family::default(),
            table_capacity: Family::default(),
            memory_limit: Gauge::default(),
            memory_budget: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "podpath_connections",
            "Outbound TCP connection attempts (first SYN) and UDP flows, by the path the app used: loopback, pod_ip, cluster_ip, dns or external",
            m.connections.clone(),
        );
        r.register(
            "podpath_literal_connections",
            "Outbound connections the app made by literal address (paths pod_ip and cluster_ip), by address and port: join with podpath_destination_info on address for what the address is",
            m.literal_connections.clone(),
        );
        r.register(
            "podpath_destination_info",
            "1 for each address the app dialed literally once a name for it is known: the Service, namespace and pod (endpoint hostname) the cluster DNS name says, the name itself, and where it came from (dns_answer: an A/AAAA answer the pod received; app_ptr: a PTR answer the app asked for; ptr: podpath's own PTR lookup)",
            m.destination_info.clone(),
        );
        r.register(
            "podpath_inbound_connections",
            "TCP connections and UDP flows that peers opened to this pod",
            m.inbound_connections.clone(),
        );
        r.register(
            "podpath_tcp_connect_failures",
            "Outbound TCP attempts that failed: refused (RST answered the SYN) or timeout (no SYN-ACK)",
            m.connect_failures.clone(),
        );
        r.register(
            "podpath_tcp_connect_duration_seconds",
            "Outbound TCP connect latency, SYN to SYN-ACK",
            m.connect_duration.clone(),
        );
        r.register(
            "podpath_udp_port_unreachable",
            "Outbound UDP flows answered by ICMP port unreachable",
            m.udp_unreachable.clone(),
        );
        r.register(
            "podpath_connection_bytes",
            "Payload bytes on outbound connections, sent and received",
            m.connection_bytes.clone(),
        );
        r.register(
            "podpath_http_requests",
            "Outbound HTTP requests that got a response, by path, protocol (http1, h2, grpc: HTTP/2 with content-type application/grpc), destination service, method and status code",
            m.http_requests.clone(),
        );
        r.register(
            "podpath_http_request_duration_seconds",
            "Outbound HTTP request latency: HTTP/1 first request byte to first response byte; HTTP/2 request HEADERS to response HEADERS",
            m.http_duration.clone(),
        );
        r.register(
            "podpath_inbound_http_requests",
            "HTTP requests peers made to this pod, by protocol, method and status code",
            m.inbound_http_requests.clone(),
        );
        r.register(
            "podpath_grpc_requests",
            "Outbound gRPC calls (h2c) that got a response, by path, destination service and grpc-status from the trailers (none: no grpc-status seen)",
            m.grpc_requests.clone(),
        );
        r.register(
            "podpath_h2_streams_unread",
            "HTTP/2 streams not in the request metrics: no_hpack_context (joined mid-connection, or a header block lost to the capture, so the HPACK table is unknown) or reset (ended before a response)",
            m.h2_streams_unread.clone(),
        );
        r.register(
            "podpath_tls_connections",
            "Outbound TLS connections by path, server name from the ClientHello (~none: no SNI; ~unknown: the hello was cut by the capture snap length or a lost segment before the SNI) and first ALPN protocol offered",
            m.tls_connections.clone(),
        );
        r.register(
            "podpath_tls_sni_confirms_dns",
            "Outbound TLS connections attributed to a DNS name whose SNI is that name (or its search-list form): the attribution is confirmed",
            m.tls_sni_confirms_dns.clone(),
        );
        r.register(
            "podpath_tls_sni_mismatches_dns",
            "Outbound TLS connections attributed to a DNS name whose SNI names another host",
            m.tls_sni_mismatches_dns.clone(),
        );
        r.register(
            "podpath_dns_stale_connections",
            "Outbound connections that follow a stale DNS answer: not_in_latest_answer (the last answer for the name no longer holds the address) or past_ttl (the answer is older than its TTL, within the grace period)",
            m.dns_stale_connections.clone(),
        );
        r.register(
            "podpath_rewritten_connections",
            "Outbound connections to a pod IP right after a lookup answering a ClusterIP, once the pattern was detected: the destination was rewritten before the wire (socket load balancing or a mesh sidecar); attributed to the looked-up name",
            m.rewritten_connections.clone(),
        );
        r.register(
            "podpath_destination_rewrite_detected",
            "1 once lookups answering a ClusterIP were repeatedly followed by connections to pod IPs: this pod's traffic is rewritten before the wire (Cilium socket LB, Istio/Linkerd sidecar)",
            m.rewrite_detected.clone(),
        );
        r.register(
            "podpath_inbound_http_request_duration_seconds",
            "Latency of HTTP/1 requests peers made to this pod",
            m.inbound_http_duration.clone(),
        );
        r.register(
            "podpath_dns_queries",
            "Every DNS query on the wire, retransmissions included, by query type and the response code of the answer paired with it (TIMEOUT: none within the timeout)",
            m.dns_queries.clone(),
        );
        r.register(
            "podpath_dns_response_duration_seconds",
            "DNS query to response latency, per query on the wire (a retransmission from its own sending)",
            m.dns_response_duration.clone(),
        );
        r.register(
            "podpath_dns_retransmissions",
            "DNS queries sent again with the same id and question while an earlier copy was unanswered (the resolver got no answer in time)",
            m.dns_retransmissions.clone(),
        );
        r.register(
            "podpath_dns_late_answers",
            "DNS answers that came after the query had timed out (already counted as TIMEOUT), by their response code",
            m.dns_late_answers.clone(),
        );
        r.register(
            "podpath_dns_lookups",
            "Logical lookups (the resolver's search-list expansion collapsed into the name the app asked for), by name as written, form and final result",
            m.dns_lookups.clone(),
        );
        r.register(
            "podpath_dns_lookup_queries",
            "DNS queries the lookups of a name cost, retransmissions included",
            m.dns_lookup_queries.clone(),
        );
        r.register(
            "podpath_dns_lookup_wasted_queries",
            "DNS queries spent on search-list candidates that did not answer (ndots expansion cost)",
            m.dns_lookup_wasted.clone(),
        );
        r.register(
            "podpath_dns_malformed",
            "DNS messages that could not be parsed, by reason",
            m.dns_malformed.clone(),
        );
        r.register(
            "podpath_label_overflow",
            "Label values folded into ~other by the per-metric cardinality caps",
            m.label_overflow.clone(),
        );
        r.register(
            "podpath_decode_skipped",
            "Frames not decoded, by reason (non-IP, truncated, malformed, fragment, unsupported link type)",
            m.decode_skipped.clone(),
        );
        r.register(
            "podpath_table_evictions",
            "Entries evicted from a full state table",
            m.table_evictions.clone(),
        );
        r.register(
            "podpath_capture_packets",
            "Packets the kernel passed to podpath's capture socket, per interface",
            m.capture_packets.clone(),
        );
        r.register(
            "podpath_capture_drops",
            "Packets the kernel dropped because podpath's capture socket buffer was full, per interface",
            m.capture_drops.clone(),
        );
        r.register(
            "podpath_capture_up",
            "1 while podpath captures on the interface, 0 while it cannot (podpath_capture_error_info says why; it retries with backoff and keeps serving)",
            m.capture_up.clone(),
        );
        r.register(
            "podpath_capture_error_info",
            "Why capture on an interface is down, while it is: reason permission_denied (no CAP_NET_RAW), interface_missing, interface_down, ring_refused (--capture-mode ring) or socket_error",
            m.capture_error_info.clone(),
        );
        r.register(
            "podpath_table_capacity",
            "Entries a bounded table holds at most (series: per metric family; label_values: per label), as sized at start from the memory budget",
            m.table_capacity.clone(),
        );
        r.register(
            "podpath_memory_limit_bytes",
            "The container's memory limit read from its cgroup (0: none found)",
            m.memory_limit.clone(),
        );
        r.register(
            "podpath_memory_budget_bytes",
            "Memory the tables were sized to stay within (0: not sized, --memory-budget off or no limit)",
            m.memory_budget.clone(),
        );
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register("podpath_build_info", "podpath version", build);
        r.register_collector(Box::new(process::ProcessCollector));
        Metrics { registry, ..m }
    }

    /// The exposition text: OpenMetrics when `openmetrics`, else the
    /// Prometheus text format 0.0.4.
    pub fn encode(&self, openmetrics: bool) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let result = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        if let Err(e) = result {
            let _ = writeln!(out, "# encoding error: {e}");
        }
        out
    }
}

/// `podpath run`'s own PTR lookups (src/cli/ptr.rs). Registered only when
/// they are on: `analyze` makes no network requests and shows none of these.
/// Every label value is a fixed string.
#[derive(Clone, Debug, Default)]
pub struct PtrMetrics {
    pub queries: Family<ResultLabels, Counter>,
    pub rate_limited: Counter,
    pub dropped: Family<ReasonLabels, Counter>,
    pub ignored_answers: Family<ReasonLabels, Counter>,
    pub cached: Gauge,
}

impl Metrics {
    /// Registers the PTR lookup metrics; call before the registry is shared.
    pub fn register_ptr(&mut self) -> PtrMetrics {
        let m = PtrMetrics::default();
        let r = &mut self.registry;
        r.register(
            "podpath_ptr_queries",
            "PTR queries podpath itself sent to the pod's resolver to name literal destinations (never counted in podpath_dns_*), by how each ended: name, nxdomain, nodata, servfail, refused, error, truncated, timeout, send_error",
            m.queries.clone(),
        );
        r.register(
            "podpath_ptr_rate_limited",
            "Literal destinations whose PTR query waited for the rate limit (sent later, not lost)",
            m.rate_limited.clone(),
        );
        r.register(
            "podpath_ptr_dropped",
            "Literal destinations never asked about: queue_full (the rate-limited queue or the table of pending lookups was full) or channel_full (the hand-off from the capture thread was full)",
            m.dropped.clone(),
        );
        r.register(
            "podpath_ptr_ignored_answers",
            "Datagrams on podpath's PTR socket that answer nothing in flight: unmatched (late, or another question) or malformed",
            m.ignored_answers.clone(),
        );
        r.register(
            "podpath_ptr_cached_addresses",
            "Addresses podpath's PTR lookups remember (answered, queued or in flight)",
            m.cached.clone(),
        );
        m
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Distinct values admitted for one label of one metric.
#[derive(Debug)]
struct Cap {
    values: HashSet<Arc<str>>,
}

/// Caps for every traffic-derived label, and the interned empty/overflow values.
#[derive(Debug)]
pub struct Caps {
    caps: HashMap<(&'static str, &'static str), Cap>,
    max_values: usize,
    max_series: usize,
    series: HashMap<&'static str, HashSet<u64>>,
    /// Fingerprints label sets for `series` (randomly seeded: see `crate::hash`).
    fingerprint: crate::hash::RandomState,
    empty: Label,
    overflow: Label,
    names: NamePolicy,
    salt: String,
}

impl Caps {
    pub fn new(max_values: usize, max_series: usize) -> Caps {
        Caps {
            caps: HashMap::default(),
            max_values: max_values.max(1),
            max_series: max_series.max(1),
            series: HashMap::default(),
            fingerprint: Default::default(),
            empty: Label::from_static(""),
            overflow: Label::from_static(OVERFLOW),
            names: NamePolicy::Keep,
            salt: String::new(),
        }
    }

    /// Applies `policy` to every `dns_name` and `sni` label.
    pub fn with_names(mut self, policy: NamePolicy, salt: &str) -> Caps {
        self.names = policy;
        self.salt = salt.to_string();
        self
    }

    /// The label value to use for `value`: itself while under the cap (or
    /// already admitted), `~other` past it (counted).
    fn admit(
        &mut self,
        metrics: &Metrics,
        metric: &'static str,
        label: &'static str,
        value: &str,
    ) -> Label {
        if value.is_empty() {
            return self.empty.clone();
        }
        let redacted;
        let value =
            if matches!(label, "dns_name" | "sni" | "name") && self.names != NamePolicy::Keep {
                redacted = self.names.apply(value, &self.salt);
                &*redacted
            } else {
                value
            };
        let cap = self.caps.entry((metric, label)).or_insert_with(|| Cap {
            values: HashSet::default(),
        });
        if let Some(v) = cap.values.get(value) {
            return Label::shared(v.clone());
        }
        if cap.values.len() >= self.max_values {
            metrics
                .label_overflow
                .get_or_create(&OverflowLabels { metric, label })
                .inc();
            return self.overflow.clone();
        }
        let v: Arc<str> = Arc::from(value);
        cap.values.insert(v.clone());
        Label::shared(v)
    }

    /// Whether `value` was admitted (not folded) for `metric`'s `label`.
    fn admitted(&self, metric: &'static str, label: &'static str, value: &str) -> bool {
        self.caps
            .get(&(metric, label))
            .is_some_and(|c| c.values.contains(value))
    }

    /// Whether `labels` may be a series of `metric`: it already is one, or
    /// the family is under `max_series`. Series are remembered by hash.
    fn admit_series<L: Hash>(&mut self, metric: &'static str, labels: &L) -> bool {
        let key = self.fingerprint.hash_one(labels);
        let seen = self.series.entry(metric).or_default();
        if seen.contains(&key) {
            return true;
        }
        if seen.len() >= self.max_series {
            return false;
        }
        seen.insert(key);
        true
    }
}

/// Exports engine events as Prometheus metrics.
pub struct MetricsSink {
    metrics: Arc<Metrics>,
    caps: Caps,
    handles: Handles,
    /// The `podpath_destination_info` series of each address (at most one;
    /// only addresses admitted to `podpath_literal_connections_total`, so
    /// bounded by its address cap).
    info: HashMap<IpAddr, DestinationInfoLabels>,
}

/// Handles (shared atomics) of series already created, by label set, for
/// the events that come per request or per query: a repeated label set then
/// costs one foldhash lookup instead of the caps' series check plus
/// prometheus-client's SipHash map under its lock, per family. Only label
/// sets admitted as series (not folded) are held, so each map is bounded
/// like its family (`max_series`, or statically bounded label values).
#[derive(Default)]
struct Handles {
    http: HashMap<HttpLabels, (Counter, Histogram)>,
    inbound_http: HashMap<InboundHttpLabels, Counter>,
    dns_queries: HashMap<DnsQueryLabels, Counter>,
    /// `podpath_dns_lookups_total`, `…_lookup_queries_total`, `…_lookup_wasted_queries_total`.
    lookups: HashMap<LookupLabels, [Counter; 3]>,
}

impl MetricsSink {
    pub fn new(metrics: Arc<Metrics>, max_label_values: usize, max_series: usize) -> Self {
        MetricsSink {
            metrics,
            caps: Caps::new(max_label_values, max_series),
            handles: Handles::default(),
            info: HashMap::default(),
        }
    }

    /// How `dns_name` and `sni` label values are exported.
    pub fn with_names(mut self, policy: NamePolicy, salt: &str) -> Self {
        self.caps = self.caps.with_names(policy, salt);
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn connection_labels(
        &mut self,
        a: &Attribution,
        protocol: &'static str,
        port: u16,
    ) -> ConnectionLabels {
        const M: &str = "podpath_connections_total";
        let m = &*self.metrics;
        let port = port.to_string();
        let mut labels = ConnectionLabels {
            path: a.path.as_str(),
            target: a.target.map_or("", |t| t.as_str()),
            protocol,
            dns_name: self
                .caps
                .admit(m, M, "dns_name", a.dns_name.as_deref().unwrap_or("")),
            service: self
                .caps
                .admit(m, M, "service", a.service.as_deref().unwrap_or("")),
            namespace: self
                .caps
                .admit(m, M, "namespace", a.namespace.as_deref().unwrap_or("")),
            port: self.caps.admit(m, M, "port", &port),
        };
        if !self.caps.admit_series(M, &labels) {
            let o = &self.caps.overflow;
            for l in [
                &mut labels.dns_name,
                &mut labels.service,
                &mut labels.namespace,
                &mut labels.port,
            ] {
                if !l.as_str().is_empty() {
                    *l = o.clone();
                }
            }
            m.label_overflow
                .get_or_create(&OverflowLabels {
                    metric: M,
                    label: "series",
                })
                .inc();
        }
        labels
    }

    /// Counts a connection by literal address (paths `pod_ip`, `cluster_ip`).
    fn literal_connection(&mut self, path: Path, addr: IpAddr, port: u16) {
        const M: &str = "podpath_literal_connections_total";
        let m = &*self.metrics;
        let mut labels = LiteralLabels {
            path: path.as_str(),
            address: self.caps.admit(m, M, "address", &addr.to_string()),
            port: self.caps.admit(m, M, "port", &port.to_string()),
        };
        if !self.caps.admit_series(M, &labels) {
            labels.address = self.caps.overflow.clone();
            labels.port = self.caps.overflow.clone();
            m.label_overflow
                .get_or_create(&OverflowLabels {
                    metric: M,
                    label: "series",
                })
                .inc();
        }
        m.literal_connections.get_or_create(&labels).inc();
    }

    /// Sets the one `podpath_destination_info` series of `addr`, replacing
    /// an older name. Only for addresses that have their own
    /// `podpath_literal_connections_total` series (not folded into
    /// `~other`): past that cap the name has nothing to join and is counted
    /// as an overflow of `podpath_destination_info`.
    fn destination_named(&mut self, addr: IpAddr, naming: &Naming) {
        const LITERAL: &str = "podpath_literal_connections_total";
        const M: &str = "podpath_destination_info";
        let m = &*self.metrics;
        let address = addr.to_string();
        if !self.caps.admitted(LITERAL, "address", &address) {
            m.label_overflow
                .get_or_create(&OverflowLabels {
                    metric: M,
                    label: "address",
                })
                .inc();
            return;
        }
        let labels = DestinationInfoLabels {
            address: self.caps.admit(m, LITERAL, "address", &address),
            service: self
                .caps
                .admit(m, M, "service", naming.service().unwrap_or("")),
            namespace: self
                .caps
                .admit(m, M, "namespace", naming.namespace().unwrap_or("")),
            pod: self.caps.admit(m, M, "pod", naming.pod().unwrap_or("")),
            name: self.caps.admit(m, M, "name", &naming.fqdn),
            source: naming.source.as_str(),
        };
        if let Some(old) = self.info.insert(addr, labels.clone()) {
            if old != labels {
                m.destination_info.remove(&old);
            }
        }
        m.destination_info.get_or_create(&labels).set(1);
    }

    fn service_label(&mut self, metric: &'static str, a: Option<&Attribution>) -> Label {
        let service = a.and_then(|a| a.service.as_deref()).unwrap_or("");
        self.caps.admit(&self.metrics, metric, "service", service)
    }
}

impl Sink for MetricsSink {
    fn on_event(&mut self, event: &Event<'_>) {
        let m = self.metrics.clone();
        match event {
            Event::Connection(c) => {
                let labels =
                    self.connection_labels(c.attribution, c.protocol.as_str(), c.dst.port());
                m.connections.get_or_create(&labels).inc();
                let path = c.attribution.path;
                if matches!(path, Path::PodIp | Path::ClusterIp) {
                    self.literal_connection(path, c.dst.ip(), c.dst.port());
                }
            }
            Event::Connected { conn, latency_secs } => {
                m.connect_duration
                    .get_or_create(&PathLabels {
                        path: conn.attribution.path.as_str(),
                    })
                    .observe(*latency_secs);
            }
            Event::ConnectFailed { conn, reason } => {
                m.connect_failures
                    .get_or_create(&FailureLabels {
                        path: conn.attribution.path.as_str(),
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            Event::UdpUnreachable { conn } => {
                m.udp_unreachable
                    .get_or_create(&PathLabels {
                        path: conn.attribution.path.as_str(),
                    })
                    .inc();
            }
            Event::Inbound {
                protocol, local, ..
            } => {
                let port = local.port().to_string();
                let port = self
                    .caps
                    .admit(&m, "podpath_inbound_connections_total", "port", &port);
                m.inbound_connections
                    .get_or_create(&InboundLabels {
                        protocol: protocol.as_str(),
                        port,
                    })
                    .inc();
            }
            Event::Bytes {
                attribution,
                sent,
                received,
            } => {
                let path = attribution.path.as_str();
                if *sent > 0 {
                    m.connection_bytes
                        .get_or_create(&BytesLabels {
                            path,
                            direction: "sent",
                        })
                        .inc_by(*sent);
                }
                if *received > 0 {
                    m.connection_bytes
                        .get_or_create(&BytesLabels {
                            path,
                            direction: "received",
                        })
                        .inc_by(*received);
                }
            }
            Event::Http(h) => {
                let code = status_label(h.status);
                if h.outbound {
                    const M: &str = "podpath_http_requests_total";
                    let path = h.attribution.map_or("external", |a| a.path.as_str());
                    let service = self.service_label(M, h.attribution);
                    let protocol = h.protocol.as_str();
                    let mut labels = HttpLabels {
                        path,
                        protocol,
                        service: service.clone(),
                        method: h.method.as_str(),
                        code: Label::from_static(code),
                    };
                    let grpc = h.protocol == AppProtocol::Grpc;
                    if let Some((requests, duration)) = self.handles.http.get(&labels) {
                        requests.inc();
                        duration.observe(h.latency_secs);
                        if grpc {
                            m.grpc_requests
                                .get_or_create(&GrpcLabels {
                                    path,
                                    service,
                                    grpc_status: grpc_status_label(h.grpc_status),
                                })
                                .inc();
                        }
                        return;
                    }
                    let admitted = self.caps.admit_series(M, &labels);
                    if !admitted {
                        labels.service = self.caps.overflow.clone();
                        m.label_overflow
                            .get_or_create(&OverflowLabels {
                                metric: M,
                                label: "series",
                            })
                            .inc();
                    }
                    let requests = m.http_requests.get_or_create_owned(&labels);
                    requests.inc();
                    if grpc {
                        m.grpc_requests
                            .get_or_create(&GrpcLabels {
                                path,
                                service: labels.service.clone(),
                                grpc_status: grpc_status_label(h.grpc_status),
                            })
                            .inc();
                    }
                    let duration = m.http_duration.get_or_create_owned(&HttpDurationLabels {
                        path,
                        protocol,
                        service,
                    });
                    duration.observe(h.latency_secs);
                    if admitted {
                        self.handles.http.insert(labels, (requests, duration));
                    }
                } else {
                    let labels = InboundHttpLabels {
                        protocol: h.protocol.as_str(),
                        method: h.method.as_str(),
                        code: Label::from_static(code),
                    };
                    match self.handles.inbound_http.get(&labels) {
                        Some(requests) => {
                            requests.inc();
                        }
                        None => {
                            let requests = m.inbound_http_requests.get_or_create_owned(&labels);
                            requests.inc();
                            self.handles.inbound_http.insert(labels, requests);
                        }
                    };
                    m.inbound_http_duration.observe(h.latency_secs);
                }
            }
            Event::Tls(t) => self.on_tls(&m, t),
            Event::H2Stream {
                outbound,
                attribution,
                reason,
            } => {
                m.h2_streams_unread
                    .get_or_create(&H2StreamLabels {
                        direction: if *outbound { "outbound" } else { "inbound" },
                        path: attribution.map_or("", |a| a.path.as_str()),
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            Event::StaleDns { conn, reason } => {
                const M: &str = "podpath_dns_stale_connections_total";
                let a = conn.attribution;
                let dns_name =
                    self.caps
                        .admit(&m, M, "dns_name", a.dns_name.as_deref().unwrap_or(""));
                m.dns_stale_connections
                    .get_or_create(&StaleLabels {
                        path: a.path.as_str(),
                        dns_name,
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            Event::Rewritten { conn } => {
                const M: &str = "podpath_rewritten_connections_total";
                let name = conn.attribution.dns_name.as_deref().unwrap_or("");
                let dns_name = self.caps.admit(&m, M, "dns_name", name);
                let port = self.caps.admit(&m, M, "port", &conn.dst.port().to_string());
                m.rewritten_connections
                    .get_or_create(&RewriteLabels { dns_name, port })
                    .inc();
            }
            Event::RewriteDetected { .. } => {
                m.rewrite_detected.set(1);
            }
            Event::DestinationNamed { addr, naming } => self.destination_named(*addr, naming),
            Event::LiteralDestination { .. } | Event::RequestHost { .. } => {}
            Event::Dns(ev) => self.on_dns(&m, ev),
            Event::Skipped { reason } => {
                m.decode_skipped
                    .get_or_create(&ReasonLabels { reason })
                    .inc();
            }
            Event::Evicted { table } => {
                m.table_evictions
                    .get_or_create(&TableLabels { table })
                    .inc();
            }
        }
    }
}

impl MetricsSink {
    fn on_tls(&mut self, m: &Metrics, t: &TlsView<'_>) {
        const M: &str = "podpath_tls_connections_total";
        let a = t.conn.attribution;
        let sni = match t.sni {
            Some(name) => self.caps.admit(m, M, "sni", name),
            None => Label::from_static(t.status.label()),
        };
        let alpn = self.caps.admit(m, M, "alpn", t.alpn.unwrap_or(""));
        let mut labels = TlsLabels {
            path: a.path.as_str(),
            sni,
            alpn,
        };
        if !self.caps.admit_series(M, &labels) {
            labels.sni = self.caps.overflow.clone();
            labels.alpn = self.caps.overflow.clone();
            m.label_overflow
                .get_or_create(&OverflowLabels {
                    metric: M,
                    label: "series",
                })
                .inc();
        }
        m.tls_connections.get_or_create(&labels).inc();
        if let Some(check) = t.dns_check {
            let (family, metric) = match check {
                SniCheck::Confirmed => (
                    &m.tls_sni_confirms_dns,
                    "podpath_tls_sni_confirms_dns_total",
                ),
                SniCheck::Mismatch => (
                    &m.tls_sni_mismatches_dns,
                    "podpath_tls_sni_mismatches_dns_total",
                ),
            };
            let name = a.dns_name.as_deref().unwrap_or("");
            let dns_name = self.caps.admit(m, metric, "dns_name", name);
            family.get_or_create(&DnsNameLabels { dns_name }).inc();
        }
    }

    fn on_dns(&mut self, m: &Metrics, ev: &DnsEvent) {
        match ev {
            DnsEvent::Completed(t) => {
                let labels = DnsQueryLabels {
                    qtype: t.qtype.as_str(),
                    rcode: t.outcome.as_str(),
                };
                match self.handles.dns_queries.get(&labels) {
                    Some(queries) => {
                        queries.inc();
                    }
                    None => {
                        let queries = m.dns_queries.get_or_create_owned(&labels);
                        queries.inc();
                        self.handles.dns_queries.insert(labels, queries);
                    }
                };
                if let Some(latency) = t.latency_secs {
                    m.dns_response_duration.observe(latency);
                }
            }
            DnsEvent::Lookup(l) => {
                const M: &str = "podpath_dns_lookups_total";
                let mut name = self.caps.admit(m, M, "dns_name", &l.name);
                let form = l.form.as_str();
                let result = l.result.as_str();
                let inc = |[lookups, queries, wasted]: &[Counter; 3]| {
                    lookups.inc();
                    queries.inc_by(l.queries as u64);
                    wasted.inc_by(l.wasted as u64);
                };
                let key = LookupLabels {
                    dns_name: name.clone(),
                    form,
                    result,
                };
                if let Some(handles) = self.handles.lookups.get(&key) {
                    inc(handles);
                    return;
                }
                let admitted = self.caps.admit_series(M, &(&name, form, result));
                if !admitted {
                    name = self.caps.overflow.clone();
                    m.label_overflow
                        .get_or_create(&OverflowLabels {
                            metric: M,
                            label: "series",
                        })
                        .inc();
                }
                let labels = LookupNameLabels {
                    dns_name: name.clone(),
                    form,
                };
                let handles = [
                    m.dns_lookups.get_or_create_owned(&LookupLabels {
                        dns_name: name,
                        form,
                        result,
                    }),
                    m.dns_lookup_queries.get_or_create_owned(&labels),
                    m.dns_lookup_wasted.get_or_create_owned(&labels),
                ];
                inc(&handles);
                if admitted {
                    self.handles.lookups.insert(key, handles);
                }
            }
            DnsEvent::Query(q) if q.retransmission => {
                m.dns_retransmissions
                    .get_or_create(&QTypeLabels {
                        qtype: q.qtype.as_str(),
                    })
                    .inc();
            }
            DnsEvent::LateAnswer(l) => {
                m.dns_late_answers
                    .get_or_create(&RcodeLabels {
                        rcode: l.rcode.as_str(),
                    })
                    .inc();
            }
            DnsEvent::Malformed { reason, .. } => {
                m.dns_malformed
                    .get_or_create(&ReasonLabels { reason })
                    .inc();
            }
            DnsEvent::Evicted { table } => {
                m.table_evictions
                    .get_or_create(&TableLabels { table })
                    .inc();
            }
            _ => {}
        }
    }
}

/// HTTP status codes as static label values: the 100–599 range is bounded,
/// anything else is `other`.
fn status_label(status: u16) -> &'static str {
    static CODES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let codes = CODES.get_or_init(|| (100..600).map(|c: u16| c.to_string()).collect());
    match status.checked_sub(100).and_then(|i| codes.get(i as usize)) {
        Some(s) => s.as_str(),
        None => "other",
    }
}

/// gRPC status codes 0–16 as static label values; anything else is
/// `other`, no status `none`.
fn grpc_status_label(status: Option<u32>) -> &'static str {
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    match status {
        None => "none",
        Some(c) => CODES.get(c as usize).copied().unwrap_or("other"),
    }
}

#[cfg(test)]
mod tests;
