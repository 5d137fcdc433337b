//! Every metric podpath exports, grouped by concern: each group's file
//! declares its families with their names and help texts, once, and
//! registers them (`Group::register(&mut Registry) -> Group`); the sink
//! (src/metrics/sink.rs) turns engine events into updates of them.
//!
//! | group | file |
//! | --- | --- |
//! | outbound and inbound connections, connect outcomes, bytes | `connections.rs` |
//! | HTTP/1, HTTP/2, gRPC | `http.rs` |
//! | TLS ClientHellos | `tls.rs` |
//! | DNS on the wire, lookups, stale answers | `dns.rs` |
//! | literal destinations, their names, rewrites | `destinations.rs` |
//! | capture sockets, frames not decoded | `capture.rs` |
//! | caps, evictions, table sizes, memory | `limits.rs` |
//! | `run`'s own PTR lookups | `ptr.rs` |
//! | `process_*` from /proc | `process.rs` |
//!
//! Label values that come from traffic (DNS names, services, namespaces,
//! ports) pass through a per-metric cap (`caps.rs`): past
//! `max_label_values` distinct values, new ones fold into `~other`, and
//! past `max_series` series per family every traffic-derived label folds;
//! `podpath_label_overflow_total` counts each fold.

mod caps;
mod capture;
mod connections;
mod destinations;
mod dns;
mod http;
mod label;
mod limits;
mod process;
mod ptr;
mod sink;
mod tls;

pub use capture::{CaptureErrorLabels, CaptureMetrics, InterfaceLabels};
pub use connections::{
    BytesLabels, ConnectionLabels, ConnectionMetrics, FailureLabels, InboundLabels, PathLabels,
};
pub use destinations::{DestinationInfoLabels, DestinationMetrics, LiteralLabels, RewriteLabels};
pub use dns::{
    DnsMetrics, DnsQueryLabels, LookupLabels, LookupNameLabels, QTypeLabels, RcodeLabels,
    StaleLabels,
};
pub use http::{
    GrpcLabels, H2StreamLabels, HttpDurationLabels, HttpLabels, HttpMetrics, InboundHttpLabels,
};
pub use label::{Capped, Label, OVERFLOW};
pub use limits::{LimitMetrics, OverflowLabels, TableLabels};
pub use process::{peak_rss_bytes, ProcessCollector};
pub use ptr::{PtrMetrics, ResultLabels};
pub use sink::MetricsSink;
pub use tls::{DnsNameLabels, TlsLabels, TlsMetrics};

use std::fmt::Write as _;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

/// A family of histograms, all with the buckets its constructor gives.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Labels of the families counted by a fixed reason (skips, malformed DNS,
/// PTR drops).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Registers `metric` as `name` with `help`, and hands it back to be kept.
fn add<M: Metric + Clone>(
    reg: &mut Registry,
    name: &'static str,
    help: &'static str,
    metric: M,
) -> M {
    reg.register(name, help, metric.clone());
    metric
}

/// The registry and every metric family. Shared (behind an `Arc`) between
/// the engine thread, which updates it, and the HTTP server, which encodes it.
pub struct Metrics {
    registry: Registry,
    pub connections: ConnectionMetrics,
    pub http: HttpMetrics,
    pub tls: TlsMetrics,
    pub dns: DnsMetrics,
    pub destinations: DestinationMetrics,
    pub capture: CaptureMetrics,
    pub limits: LimitMetrics,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let reg = &mut registry;
        let connections = ConnectionMetrics::register(reg);
        let http = HttpMetrics::register(reg);
        let tls = TlsMetrics::register(reg);
        let dns = DnsMetrics::register(reg);
        let destinations = DestinationMetrics::register(reg);
        let capture = CaptureMetrics::register(reg);
        let limits = LimitMetrics::register(reg);
        let build: Family<BuildLabels, Gauge> = add(
            reg,
            "podpath_build_info",
            "podpath version",
            Family::default(),
        );
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        reg.register_collector(Box::new(ProcessCollector));
        Metrics {
            registry,
            connections,
            http,
            tls,
            dns,
            destinations,
            capture,
            limits,
        }
    }

    /// Registers the PTR lookup metrics; call before the registry is shared.
    pub fn register_ptr(&mut self) -> PtrMetrics {
        PtrMetrics::register(&mut self.registry)
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

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests;
