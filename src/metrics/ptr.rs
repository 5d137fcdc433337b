//! `podpath run`'s own PTR lookups (src/cli/ptr.rs). Registered only when
//! they are on: `analyze` makes no network requests and shows none of these.
//! Every label value is a fixed string.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{add, ReasonLabels};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug)]
pub struct PtrMetrics {
    pub queries: Family<ResultLabels, Counter>,
    pub rate_limited: Counter,
    pub dropped: Family<ReasonLabels, Counter>,
    pub ignored_answers: Family<ReasonLabels, Counter>,
    pub cached: Gauge,
}

impl PtrMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        PtrMetrics {
            queries: add(
                reg,
                "podpath_ptr_queries",
                "PTR queries podpath itself sent to the pod's resolver to name literal destinations (never counted in podpath_dns_*), by how each ended: name, nxdomain, nodata, servfail, refused, error, truncated, timeout, send_error",
                Family::default(),
            ),
            rate_limited: add(
                reg,
                "podpath_ptr_rate_limited",
                "Literal destinations whose PTR query waited for the rate limit (sent later, not lost)",
                Counter::default(),
            ),
            dropped: add(
                reg,
                "podpath_ptr_dropped",
                "Literal destinations never asked about: queue_full (the rate-limited queue or the table of pending lookups was full) or channel_full (the hand-off from the capture thread was full)",
                Family::default(),
            ),
            ignored_answers: add(
                reg,
                "podpath_ptr_ignored_answers",
                "Datagrams on podpath's PTR socket that answer nothing in flight: unmatched (late, or another question) or malformed",
                Family::default(),
            ),
            cached: add(
                reg,
                "podpath_ptr_cached_addresses",
                "Addresses podpath's PTR lookups remember (answered, queued or in flight)",
                Gauge::default(),
            ),
        }
    }
}
