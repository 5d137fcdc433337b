//! TLS ClientHellos: server name, ALPN, and whether the SNI agrees with the
//! connection's DNS attribution.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::add;
use super::caps::Folds;
use super::label::{counter_name, Label, Name};

pub(super) const CONNECTIONS: Name = counter_name!("podpath_tls_connections");
pub(super) const SNI_CONFIRMS_DNS: Name = counter_name!("podpath_tls_sni_confirms_dns");
pub(super) const SNI_MISMATCHES_DNS: Name = counter_name!("podpath_tls_sni_mismatches_dns");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabels {
    pub path: &'static str,
    pub sni: Label,
    pub alpn: Label,
}

impl Folds for TlsLabels {
    fn fold(&mut self, overflow: &Label) {
        self.sni = overflow.clone();
        self.alpn = overflow.clone();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsNameLabels {
    pub dns_name: Label,
}

#[derive(Clone, Debug)]
pub struct TlsMetrics {
    pub connections: Family<TlsLabels, Counter>,
    pub sni_confirms_dns: Family<DnsNameLabels, Counter>,
    pub sni_mismatches_dns: Family<DnsNameLabels, Counter>,
}

impl TlsMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        TlsMetrics {
            connections: add(
                reg,
                CONNECTIONS.registered,
                "Outbound TLS connections by path, server name from the ClientHello (~none: no SNI; ~unknown: the hello was cut by the capture snap length or a lost segment before the SNI) and first ALPN protocol offered",
                Family::default(),
            ),
            sni_confirms_dns: add(
                reg,
                SNI_CONFIRMS_DNS.registered,
                "Outbound TLS connections attributed to a DNS name whose SNI is that name (or its search-list form): the attribution is confirmed",
                Family::default(),
            ),
            sni_mismatches_dns: add(
                reg,
                SNI_MISMATCHES_DNS.registered,
                "Outbound TLS connections attributed to a DNS name whose SNI names another host",
                Family::default(),
            ),
        }
    }
}
