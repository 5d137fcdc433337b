//! Outbound connections by path, inbound ones, connect outcomes and bytes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::caps::Folds;
use super::label::{counter_name, Label, Name};
use super::{add, HistogramFamily};

pub(super) const CONNECTIONS: Name = counter_name!("podpath_connections");
pub(super) const INBOUND: Name = counter_name!("podpath_inbound_connections");

const CONNECT_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn connect_histogram() -> Histogram {
    Histogram::new(CONNECT_BUCKETS)
}

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

impl Folds for ConnectionLabels {
    /// Only labels that have a value fold: an empty `service` stays empty.
    fn fold(&mut self, overflow: &Label) {
        for l in [
            &mut self.dns_name,
            &mut self.service,
            &mut self.namespace,
            &mut self.port,
        ] {
            if !l.as_str().is_empty() {
                *l = overflow.clone();
            }
        }
    }
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

#[derive(Clone, Debug)]
pub struct ConnectionMetrics {
    pub connections: Family<ConnectionLabels, Counter>,
    pub inbound: Family<InboundLabels, Counter>,
    pub connect_failures: Family<FailureLabels, Counter>,
    pub connect_duration: HistogramFamily<PathLabels>,
    pub udp_unreachable: Family<PathLabels, Counter>,
    pub bytes: Family<BytesLabels, Counter>,
}

impl ConnectionMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        ConnectionMetrics {
            connections: add(
                reg,
                CONNECTIONS.registered,
                "Outbound TCP connection attempts (first SYN) and UDP flows, by the path the app used: loopback, pod_ip, cluster_ip, dns or external",
                Family::default(),
            ),
            inbound: add(
                reg,
                INBOUND.registered,
                "TCP connections and UDP flows that peers opened to this pod",
                Family::default(),
            ),
            connect_failures: add(
                reg,
                "podpath_tcp_connect_failures",
                "Outbound TCP attempts that failed: refused (RST answered the SYN) or timeout (no SYN-ACK)",
                Family::default(),
            ),
            connect_duration: add(
                reg,
                "podpath_tcp_connect_duration_seconds",
                "Outbound TCP connect latency, SYN to SYN-ACK",
                Family::new_with_constructor(connect_histogram),
            ),
            udp_unreachable: add(
                reg,
                "podpath_udp_port_unreachable",
                "Outbound UDP flows answered by ICMP port unreachable",
                Family::default(),
            ),
            bytes: add(
                reg,
                "podpath_connection_bytes",
                "Payload bytes on outbound connections, sent and received",
                Family::default(),
            ),
        }
    }
}
