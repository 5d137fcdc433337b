//! HTTP/1, HTTP/2 and gRPC requests, outbound and inbound.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::caps::Folds;
use super::label::{counter_name, Label, Name};
use super::{add, HistogramFamily};

/// Also the family whose `service` cap `podpath_grpc_requests_total` shares.
pub(super) const REQUESTS: Name = counter_name!("podpath_http_requests");

const HTTP_BUCKETS: [f64; 13] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
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

impl Folds for HttpLabels {
    fn fold(&mut self, overflow: &Label) {
        self.service = overflow.clone();
    }
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
pub struct H2StreamLabels {
    pub direction: &'static str,
    pub path: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug)]
pub struct HttpMetrics {
    pub requests: Family<HttpLabels, Counter>,
    pub duration: HistogramFamily<HttpDurationLabels>,
    pub inbound_requests: Family<InboundHttpLabels, Counter>,
    pub inbound_duration: Histogram,
    pub grpc_requests: Family<GrpcLabels, Counter>,
    pub h2_streams_unread: Family<H2StreamLabels, Counter>,
}

impl HttpMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        HttpMetrics {
            requests: add(
                reg,
                REQUESTS.registered,
                "Outbound HTTP requests that got a response, by path, protocol (http1, h2, grpc: HTTP/2 with content-type application/grpc), destination service, method and status code",
                Family::default(),
            ),
            duration: add(
                reg,
                "podpath_http_request_duration_seconds",
                "Outbound HTTP request latency: HTTP/1 first request byte to first response byte; HTTP/2 request HEADERS to response HEADERS",
                Family::new_with_constructor(http_histogram),
            ),
            inbound_requests: add(
                reg,
                "podpath_inbound_http_requests",
                "HTTP requests peers made to this pod, by protocol, method and status code",
                Family::default(),
            ),
            inbound_duration: add(
                reg,
                "podpath_inbound_http_request_duration_seconds",
                "Latency of HTTP/1 requests peers made to this pod",
                http_histogram(),
            ),
            grpc_requests: add(
                reg,
                "podpath_grpc_requests",
                "Outbound gRPC calls (h2c) that got a response, by path, destination service and grpc-status from the trailers (none: no grpc-status seen)",
                Family::default(),
            ),
            h2_streams_unread: add(
                reg,
                "podpath_h2_streams_unread",
                "HTTP/2 streams not in the request metrics: no_hpack_context (joined mid-connection, or a header block lost to the capture, so the HPACK table is unknown) or reset (ended before a response)",
                Family::default(),
            ),
        }
    }
}
