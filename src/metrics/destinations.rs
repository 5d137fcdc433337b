//! Destinations the app dialed by literal address and what they are, and
//! destinations rewritten before the wire (socket load balancing, meshes).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::add;
use super::caps::Folds;
use super::label::{counter_name, gauge_name, Label, Name};

pub(super) const LITERAL_CONNECTIONS: Name = counter_name!("podpath_literal_connections");
pub(super) const INFO: Name = gauge_name!("podpath_destination_info");
pub(super) const REWRITTEN_CONNECTIONS: Name = counter_name!("podpath_rewritten_connections");

/// `podpath_literal_connections_total`: the literal paths only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LiteralLabels {
    pub path: &'static str,
    pub address: Label,
    pub port: Label,
}

impl Folds for LiteralLabels {
    fn fold(&mut self, overflow: &Label) {
        self.address = overflow.clone();
        self.port = overflow.clone();
    }
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
pub struct RewriteLabels {
    pub dns_name: Label,
    pub port: Label,
}

#[derive(Clone, Debug)]
pub struct DestinationMetrics {
    pub literal_connections: Family<LiteralLabels, Counter>,
    pub info: Family<DestinationInfoLabels, Gauge>,
    pub rewritten_connections: Family<RewriteLabels, Counter>,
    pub rewrite_detected: Gauge,
}

impl DestinationMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        DestinationMetrics {
            literal_connections: add(
                reg,
                LITERAL_CONNECTIONS.registered,
                "Outbound connections the app made by literal address (paths pod_ip and cluster_ip), by address and port: join with podpath_destination_info on address for what the address is",
                Family::default(),
            ),
            info: add(
                reg,
                INFO.registered,
                "1 for each address the app dialed literally once a name for it is known: the Service, namespace and pod (endpoint hostname) the cluster DNS name says, the name itself, and where it came from (dns_answer: an A/AAAA answer the pod received; app_ptr: a PTR answer the app asked for; ptr: podpath's own PTR lookup)",
                Family::default(),
            ),
            rewritten_connections: add(
                reg,
                REWRITTEN_CONNECTIONS.registered,
                "Outbound connections to a pod IP right after a lookup answering a ClusterIP, once the pattern was detected: the destination was rewritten before the wire (socket load balancing or a mesh sidecar); attributed to the looked-up name",
                Family::default(),
            ),
            rewrite_detected: add(
                reg,
                "podpath_destination_rewrite_detected",
                "1 once lookups answering a ClusterIP were repeatedly followed by connections to pod IPs: this pod's traffic is rewritten before the wire (Cilium socket LB, Istio/Linkerd sidecar)",
                Gauge::default(),
            ),
        }
    }
}
