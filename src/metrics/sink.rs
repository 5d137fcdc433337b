//! The sink: engine events to metric updates. The families are declared
//! in the group files; this file decides which series each event counts.

use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::caps::Caps;
use super::label::{grpc_status_label, status_label, Capped, Label, Name};
use super::{
    connections, destinations, dns, http, tls, BytesLabels, ConnectionLabels,
    DestinationInfoLabels, DnsNameLabels, DnsQueryLabels, FailureLabels, GrpcLabels,
    H2StreamLabels, HttpDurationLabels, HttpLabels, InboundHttpLabels, InboundLabels,
    LiteralLabels, LookupLabels, LookupNameLabels, Metrics, PathLabels, QTypeLabels, RcodeLabels,
    ReasonLabels, RewriteLabels, StaleLabels, TableLabels, TlsLabels,
};
use crate::attribution::Path;
use crate::config::NamePolicy;
use crate::dns::DnsEvent;
use crate::engine::destinations::Naming;
use crate::engine::{AppProtocol, ConnectionView, Event, HttpView, Sink, SniCheck, TlsView};
use crate::hash::HashMap;

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
        let overflows = metrics.limits.label_overflow.clone();
        MetricsSink {
            metrics,
            caps: Caps::new(overflows, max_label_values, max_series),
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
}

impl Sink for MetricsSink {
    fn on_event(&mut self, event: &Event<'_>) {
        // Borrowed field by field, so the caps can change while the
        // families are read (no `Arc` clone per event).
        let MetricsSink {
            metrics,
            caps,
            handles,
            info,
        } = self;
        let m: &Metrics = metrics;
        match event {
            Event::Connection(c) => connection(m, caps, c),
            Event::Connected { conn, latency_secs } => {
                m.connections
                    .connect_duration
                    .get_or_create(&PathLabels {
                        path: conn.attribution.path.as_str(),
                    })
                    .observe(*latency_secs);
            }
            Event::ConnectFailed { conn, reason } => {
                m.connections
                    .connect_failures
                    .get_or_create(&FailureLabels {
                        path: conn.attribution.path.as_str(),
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            Event::UdpUnreachable { conn } => {
                m.connections
                    .udp_unreachable
                    .get_or_create(&PathLabels {
                        path: conn.attribution.path.as_str(),
                    })
                    .inc();
            }
            Event::Inbound {
                protocol, local, ..
            } => {
                let port = caps.admit(
                    connections::INBOUND,
                    Capped::Port,
                    &local.port().to_string(),
                );
                m.connections
                    .inbound
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
                for (direction, n) in [("sent", *sent), ("received", *received)] {
                    if n > 0 {
                        m.connections
                            .bytes
                            .get_or_create(&BytesLabels { path, direction })
                            .inc_by(n);
                    }
                }
            }
            Event::Http(h) if h.outbound => outbound_http(m, caps, handles, h),
            Event::Http(h) => {
                let labels = InboundHttpLabels {
                    protocol: h.protocol.as_str(),
                    method: h.method.as_str(),
                    code: Label::from_static(status_label(h.status)),
                };
                match handles.inbound_http.get(&labels) {
                    Some(requests) => {
                        requests.inc();
                    }
                    None => {
                        let requests = m.http.inbound_requests.get_or_create_owned(&labels);
                        requests.inc();
                        handles.inbound_http.insert(labels, requests);
                    }
                };
                m.http.inbound_duration.observe(h.latency_secs);
            }
            Event::Tls(t) => tls_hello(m, caps, t),
            Event::H2Stream {
                outbound,
                attribution,
                reason,
            } => {
                m.http
                    .h2_streams_unread
                    .get_or_create(&H2StreamLabels {
                        direction: if *outbound { "outbound" } else { "inbound" },
                        path: attribution.map_or("", |a| a.path.as_str()),
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            Event::StaleDns { conn, reason } => {
                let a = conn.attribution;
                let dns_name = caps.admit(
                    dns::STALE_CONNECTIONS,
                    Capped::DnsName,
                    a.dns_name.as_deref().unwrap_or(""),
                );
                m.dns
                    .stale_connections
                    .get_or_create(&StaleLabels {
                        path: a.path.as_str(),
                        dns_name,
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            Event::Rewritten { conn } => {
                const M: Name = destinations::REWRITTEN_CONNECTIONS;
                let name = conn.attribution.dns_name.as_deref().unwrap_or("");
                let dns_name = caps.admit(M, Capped::DnsName, name);
                let port = caps.admit(M, Capped::Port, &conn.dst.port().to_string());
                m.destinations
                    .rewritten_connections
                    .get_or_create(&RewriteLabels { dns_name, port })
                    .inc();
            }
            Event::RewriteDetected { .. } => {
                m.destinations.rewrite_detected.set(1);
            }
            Event::DestinationNamed { addr, naming } => {
                destination_named(m, caps, info, *addr, naming)
            }
            Event::LiteralDestination { .. } | Event::RequestHost { .. } => {}
            Event::Dns(ev) => on_dns(m, caps, handles, ev),
            Event::Skipped { reason, count } => {
                m.capture
                    .decode_skipped
                    .get_or_create(&ReasonLabels {
                        reason: reason.as_str(),
                    })
                    .inc_by(*count);
            }
            Event::Evicted { table, count } => {
                m.limits
                    .table_evictions
                    .get_or_create(&TableLabels {
                        table: table.as_str(),
                    })
                    .inc_by(*count);
            }
            Event::DnsMalformed { reason } => {
                m.dns
                    .malformed
                    .get_or_create(&ReasonLabels {
                        reason: reason.as_str(),
                    })
                    .inc();
            }
        }
    }
}

/// An outbound connection: by path, and by literal address on the literal paths.
fn connection(m: &Metrics, caps: &mut Caps, c: &ConnectionView<'_>) {
    const M: Name = connections::CONNECTIONS;
    let a = c.attribution;
    let mut labels = ConnectionLabels {
        path: a.path.as_str(),
        target: a.target.map_or("", |t| t.as_str()),
        protocol: c.protocol.as_str(),
        dns_name: caps.admit(M, Capped::DnsName, a.dns_name.as_deref().unwrap_or("")),
        service: caps.admit(M, Capped::Service, a.service.as_deref().unwrap_or("")),
        namespace: caps.admit(M, Capped::Namespace, a.namespace.as_deref().unwrap_or("")),
        port: caps.admit(M, Capped::Port, &c.dst.port().to_string()),
    };
    caps.fold(M, &mut labels);
    m.connections.connections.get_or_create(&labels).inc();
    if matches!(a.path, Path::PodIp | Path::ClusterIp) {
        literal_connection(m, caps, a.path, c.dst.ip(), c.dst.port());
    }
}

/// Counts a connection by literal address (paths `pod_ip`, `cluster_ip`).
fn literal_connection(m: &Metrics, caps: &mut Caps, path: Path, addr: IpAddr, port: u16) {
    const M: Name = destinations::LITERAL_CONNECTIONS;
    let mut labels = LiteralLabels {
        path: path.as_str(),
        address: caps.admit(M, Capped::Address, &addr.to_string()),
        port: caps.admit(M, Capped::Port, &port.to_string()),
    };
    caps.fold(M, &mut labels);
    m.destinations
        .literal_connections
        .get_or_create(&labels)
        .inc();
}

/// Sets the one `podpath_destination_info` series of `addr`, replacing
/// an older name. Only for addresses that have their own
/// `podpath_literal_connections_total` series (not folded into
/// `~other`): past that cap the name has nothing to join and is counted
/// as an overflow of `podpath_destination_info`.
fn destination_named(
    m: &Metrics,
    caps: &mut Caps,
    info: &mut HashMap<IpAddr, DestinationInfoLabels>,
    addr: IpAddr,
    naming: &Naming,
) {
    const LITERAL: Name = destinations::LITERAL_CONNECTIONS;
    const M: Name = destinations::INFO;
    let address = addr.to_string();
    if !caps.admitted(LITERAL, Capped::Address, &address) {
        caps.overflowed(M, Capped::Address);
        return;
    }
    let labels = DestinationInfoLabels {
        address: caps.admit(LITERAL, Capped::Address, &address),
        service: caps.admit(M, Capped::Service, naming.service().unwrap_or("")),
        namespace: caps.admit(M, Capped::Namespace, naming.namespace().unwrap_or("")),
        pod: caps.admit(M, Capped::Pod, naming.pod().unwrap_or("")),
        name: caps.admit(M, Capped::Name, &naming.fqdn),
        source: naming.source.as_str(),
    };
    if let Some(old) = info.insert(addr, labels.clone()) {
        if old != labels {
            m.destinations.info.remove(&old);
        }
    }
    m.destinations.info.get_or_create(&labels).set(1);
}

fn outbound_http(m: &Metrics, caps: &mut Caps, handles: &mut Handles, h: &HttpView<'_>) {
    const M: Name = http::REQUESTS;
    let path = h.attribution.map_or("external", |a| a.path.as_str());
    let service = caps.admit(
        M,
        Capped::Service,
        h.attribution
            .and_then(|a| a.service.as_deref())
            .unwrap_or(""),
    );
    let protocol = h.protocol.as_str();
    let mut labels = HttpLabels {
        path,
        protocol,
        service: service.clone(),
        method: h.method.as_str(),
        code: Label::from_static(status_label(h.status)),
    };
    let grpc = |service: Label| {
        if h.protocol == AppProtocol::Grpc {
            m.http
                .grpc_requests
                .get_or_create(&GrpcLabels {
                    path,
                    service,
                    grpc_status: grpc_status_label(h.grpc_status),
                })
                .inc();
        }
    };
    if let Some((requests, duration)) = handles.http.get(&labels) {
        requests.inc();
        duration.observe(h.latency_secs);
        grpc(service);
        return;
    }
    let admitted = caps.fold(M, &mut labels);
    let requests = m.http.requests.get_or_create_owned(&labels);
    requests.inc();
    grpc(labels.service.clone());
    let duration = m.http.duration.get_or_create_owned(&HttpDurationLabels {
        path,
        protocol,
        service,
    });
    duration.observe(h.latency_secs);
    if admitted {
        handles.http.insert(labels, (requests, duration));
    }
}

fn tls_hello(m: &Metrics, caps: &mut Caps, t: &TlsView<'_>) {
    const M: Name = tls::CONNECTIONS;
    let a = t.conn.attribution;
    let sni = match t.sni {
        Some(name) => caps.admit(M, Capped::Sni, name),
        None => Label::from_static(t.status.label()),
    };
    let alpn = caps.admit(M, Capped::Alpn, t.alpn.unwrap_or(""));
    let mut labels = TlsLabels {
        path: a.path.as_str(),
        sni,
        alpn,
    };
    caps.fold(M, &mut labels);
    m.tls.connections.get_or_create(&labels).inc();
    if let Some(check) = t.dns_check {
        let (family, metric) = match check {
            SniCheck::Confirmed => (&m.tls.sni_confirms_dns, tls::SNI_CONFIRMS_DNS),
            SniCheck::Mismatch => (&m.tls.sni_mismatches_dns, tls::SNI_MISMATCHES_DNS),
        };
        let name = a.dns_name.as_deref().unwrap_or("");
        let dns_name = caps.admit(metric, Capped::DnsName, name);
        family.get_or_create(&DnsNameLabels { dns_name }).inc();
    }
}

fn on_dns(m: &Metrics, caps: &mut Caps, handles: &mut Handles, ev: &DnsEvent) {
    match ev {
        DnsEvent::Completed(t) => {
            let labels = DnsQueryLabels {
                qtype: t.qtype.as_str(),
                rcode: t.outcome.as_str(),
            };
            match handles.dns_queries.get(&labels) {
                Some(queries) => {
                    queries.inc();
                }
                None => {
                    let queries = m.dns.queries.get_or_create_owned(&labels);
                    queries.inc();
                    handles.dns_queries.insert(labels, queries);
                }
            };
            if let Some(latency) = t.latency_secs {
                m.dns.response_duration.observe(latency);
            }
        }
        DnsEvent::Lookup(l) => {
            const M: Name = dns::LOOKUPS;
            let inc = |[lookups, queries, wasted]: &[Counter; 3]| {
                lookups.inc();
                queries.inc_by(l.queries as u64);
                wasted.inc_by(l.wasted as u64);
            };
            let mut labels = LookupLabels {
                dns_name: caps.admit(M, Capped::DnsName, &l.name),
                form: l.form.as_str(),
                result: l.result.as_str(),
            };
            if let Some(handles) = handles.lookups.get(&labels) {
                inc(handles);
                return;
            }
            let key = labels.clone();
            let admitted = caps.fold(M, &mut labels);
            let names = LookupNameLabels {
                dns_name: labels.dns_name.clone(),
                form: labels.form,
            };
            let series = [
                m.dns.lookups.get_or_create_owned(&labels),
                m.dns.lookup_queries.get_or_create_owned(&names),
                m.dns.lookup_wasted.get_or_create_owned(&names),
            ];
            inc(&series);
            if admitted {
                handles.lookups.insert(key, series);
            }
        }
        DnsEvent::Query(q) if q.retransmission => {
            m.dns
                .retransmissions
                .get_or_create(&QTypeLabels {
                    qtype: q.qtype.as_str(),
                })
                .inc();
        }
        DnsEvent::LateAnswer(l) => {
            m.dns
                .late_answers
                .get_or_create(&RcodeLabels {
                    rcode: l.rcode.as_str(),
                })
                .inc();
        }
        _ => {}
    }
}
