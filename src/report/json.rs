//! `--format json`: the report's records and the run's context as one
//! document, its shape derived from the types below. The field order is the
//! document's key order.

use std::collections::BTreeMap;

use serde::Serialize;

use super::findings::Finding;
use super::{
    serialize_pairs, ConnectionRecord, Context, DestinationRecord, HttpRecord, InboundRecord,
    LookupRecord, Report, RewriteRecord, TlsRecord, NAMES_FROM,
};
use crate::attribution::Inference;
use crate::engine::{EngineStats, LocalAddress};

#[derive(Serialize)]
struct Document<'a> {
    inputs: &'a [String],
    findings: Vec<Finding>,
    findings_omitted: usize,
    packets: u64,
    span_seconds: f64,
    stats: &'a EngineStats,
    dns: Dns,
    inferred: &'a [Inference],
    local_addresses: &'a [LocalAddress],
    connections: &'a [ConnectionRecord],
    inbound: &'a [InboundRecord],
    http_requests: &'a [HttpRecord],
    lookups: &'a [LookupRecord],
    tls: &'a [TlsRecord],
    h2_unread_streams: Vec<H2Unread<'a>>,
    rewrites: &'a [RewriteRecord],
    literal_destinations: Vec<&'a DestinationRecord>,
    names_from: &'static str,
    names_file: &'a Option<String>,
    #[serde(serialize_with = "serialize_pairs")]
    dns_queries: &'a BTreeMap<(&'static str, &'static str), u64>,
    dns_malformed: &'a BTreeMap<&'static str, u64>,
    dns_retransmissions: &'a BTreeMap<&'static str, u64>,
    dns_late_answers: &'a BTreeMap<&'static str, u64>,
    skipped: &'a BTreeMap<&'static str, u64>,
    evictions: &'a BTreeMap<&'static str, u64>,
    records_dropped: u64,
}

/// The DNS decoder's own counts, named for the reader.
#[derive(Serialize)]
struct Dns {
    queries_seen: u64,
    responses_seen: u64,
    queries_tracked: u64,
    retransmitted_queries: u64,
    responses_matched_or_not: u64,
    unmatched_responses: u64,
    late_answers: u64,
    timeouts: u64,
    malformed: u64,
    ignored: u64,
    tcp_retransmitted_segments: u64,
    tcp_out_of_order_segments: u64,
    tcp_gaps: u64,
    tcp_cut_streams: u64,
}

#[derive(Serialize)]
struct H2Unread<'a> {
    direction: &'a str,
    reason: &'a str,
    count: u64,
}

impl Report {
    /// The JSON document for `--format json`.
    pub fn to_json(&self, context: &Context<'_>) -> serde_json::Value {
        let findings = self.findings(context);
        let dns = &context.dns;
        let doc = Document {
            inputs: &context.inputs,
            findings: findings.findings,
            findings_omitted: findings.omitted,
            packets: context.stats.packets,
            span_seconds: context.span_secs,
            stats: context.stats,
            dns: Dns {
                queries_seen: dns.wire_messages.0,
                responses_seen: dns.wire_messages.1,
                queries_tracked: dns.tx.queries,
                retransmitted_queries: dns.tx.retransmitted_queries,
                responses_matched_or_not: dns.tx.responses,
                unmatched_responses: dns.tx.unmatched_responses,
                late_answers: dns.tx.late_answers,
                timeouts: dns.tx.timeouts,
                malformed: dns.malformed,
                ignored: dns.ignored,
                tcp_retransmitted_segments: dns.streams.retransmitted,
                tcp_out_of_order_segments: dns.streams.out_of_order,
                tcp_gaps: dns.streams.gaps,
                tcp_cut_streams: dns.streams.cut,
            },
            inferred: context.inferred,
            local_addresses: context.local,
            connections: &self.connections,
            inbound: &self.inbound,
            http_requests: &self.http_requests,
            lookups: &self.lookups,
            tls: &self.tls,
            h2_unread_streams: self
                .h2_unread
                .iter()
                .map(|((direction, reason), count)| H2Unread {
                    direction,
                    reason,
                    count: *count,
                })
                .collect(),
            rewrites: &self.rewrites,
            literal_destinations: self.destinations.values().collect(),
            names_from: NAMES_FROM,
            names_file: &self.names_file,
            dns_queries: &self.dns_queries,
            dns_malformed: &self.dns_malformed,
            dns_retransmissions: &self.dns_retransmissions,
            dns_late_answers: &self.dns_late_answers,
            skipped: &self.skipped,
            evictions: &self.evictions,
            records_dropped: self.records_dropped,
        };
        // Plain data (strings, numbers, string-keyed maps): serialising it to a
        // value cannot fail.
        serde_json::to_value(doc).unwrap_or_default()
    }
}
