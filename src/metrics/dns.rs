//! DNS on the wire (queries, latency, retransmissions, late answers,
//! malformed messages), logical lookups, and connections that follow a
//! stale answer.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::caps::Folds;
use super::label::{counter_name, Label, Name};
use super::{add, ReasonLabels};

pub(super) const LOOKUPS: Name = counter_name!("podpath_dns_lookups");
pub(super) const STALE_CONNECTIONS: Name = counter_name!("podpath_dns_stale_connections");

const DNS_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

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

impl Folds for LookupLabels {
    fn fold(&mut self, overflow: &Label) {
        self.dns_name = overflow.clone();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupNameLabels {
    pub dns_name: Label,
    pub form: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StaleLabels {
    pub path: &'static str,
    pub dns_name: Label,
    pub reason: &'static str,
}

#[derive(Clone, Debug)]
pub struct DnsMetrics {
    pub queries: Family<DnsQueryLabels, Counter>,
    pub response_duration: Histogram,
    pub retransmissions: Family<QTypeLabels, Counter>,
    pub late_answers: Family<RcodeLabels, Counter>,
    pub lookups: Family<LookupLabels, Counter>,
    pub lookup_queries: Family<LookupNameLabels, Counter>,
    pub lookup_wasted: Family<LookupNameLabels, Counter>,
    pub malformed: Family<ReasonLabels, Counter>,
    pub stale_connections: Family<StaleLabels, Counter>,
}

impl DnsMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        DnsMetrics {
            queries: add(
                reg,
                "podpath_dns_queries",
                "Every DNS query on the wire, retransmissions included, by query type and the response code of the answer paired with it (TIMEOUT: none within the timeout)",
                Family::default(),
            ),
            response_duration: add(
                reg,
                "podpath_dns_response_duration_seconds",
                "DNS query to response latency, per query on the wire (a retransmission from its own sending)",
                Histogram::new(DNS_BUCKETS),
            ),
            retransmissions: add(
                reg,
                "podpath_dns_retransmissions",
                "DNS queries sent again with the same id and question while an earlier copy was unanswered (the resolver got no answer in time)",
                Family::default(),
            ),
            late_answers: add(
                reg,
                "podpath_dns_late_answers",
                "DNS answers that came after the query had timed out (already counted as TIMEOUT), by their response code",
                Family::default(),
            ),
            lookups: add(
                reg,
                LOOKUPS.registered,
                "Logical lookups (the resolver's search-list expansion collapsed into the name the app asked for), by name as written, form and final result",
                Family::default(),
            ),
            lookup_queries: add(
                reg,
                "podpath_dns_lookup_queries",
                "DNS queries the lookups of a name cost, retransmissions included",
                Family::default(),
            ),
            lookup_wasted: add(
                reg,
                "podpath_dns_lookup_wasted_queries",
                "DNS queries spent on search-list candidates that did not answer (ndots expansion cost)",
                Family::default(),
            ),
            malformed: add(
                reg,
                "podpath_dns_malformed",
                "DNS messages that could not be parsed, by reason",
                Family::default(),
            ),
            stale_connections: add(
                reg,
                STALE_CONNECTIONS.registered,
                "Outbound connections that follow a stale DNS answer: not_in_latest_answer (the last answer for the name no longer holds the address) or past_ttl (the answer is older than its TTL, within the grace period)",
                Family::default(),
            ),
        }
    }
}
