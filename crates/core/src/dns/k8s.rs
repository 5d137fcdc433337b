//! What a DNS name under the cluster domain names, read the way CoreDNS's
//! `kubernetes` plugin forms its records (plugin/kubernetes: `serviceFQDN`,
//! `endpointHostname`, `podFQDN`, `serviceRecordForIP`):
//!
//! ```text
//! <svc>.<ns>.svc.<domain>              Service (A/AAAA of its ClusterIP;
//!                                      PTR of a ClusterIP; A of a headless
//!                                      Service's endpoints)
//! <host>.<svc>.<ns>.svc.<domain>       an endpoint of a Service: <host> is the
//!                                      endpoint's hostname, the pod's name
//!                                      (`endpoint_pod_names`), or its dashed
//!                                      address (10-1-2-3, fd00--1; a v6 name
//!                                      ending in `-` gets a `0` appended)
//!                                      (PTR of an endpoint IP)
//! <dashed-ip>.<ns>.pod.<domain>        a pod by address (`pods insecure|verified`)
//! ```
//!
//! Anything else (SRV names `_port._proto.…`, names outside the domain, more
//! or fewer labels) is an opaque name. Pure: no I/O, no allocation beyond
//! the returned strings. The reverse-name helpers are hickory-proto's.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;

/// What a name under the cluster domain says about the address it answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DestinationName {
    /// `<svc>.<ns>.svc.<domain>`.
    Service {
        service: Arc<str>,
        namespace: Arc<str>,
    },
    /// `<host>.<svc>.<ns>.svc.<domain>`: an endpoint (pod) of a Service.
    /// `pod` is the hostname or pod name, `None` when the label is only the
    /// dashed address.
    Endpoint {
        pod: Option<Arc<str>>,
        service: Arc<str>,
        namespace: Arc<str>,
    },
    /// `<dashed-ip>.<ns>.pod.<domain>`.
    Pod { namespace: Arc<str> },
    /// Any other name (lower case, no trailing dot).
    Other(Arc<str>),
}

impl DestinationName {
    /// Reads `name` (any case, trailing dot or not) against the cluster
    /// domain `domain` (e.g. `cluster.local`).
    pub fn parse(name: &str, domain: &str) -> DestinationName {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let domain = domain.trim_matches('.');
        Self::parse_clean(&name, domain).unwrap_or_else(|| DestinationName::Other(Arc::from(name)))
    }

    fn parse_clean(name: &str, domain: &str) -> Option<DestinationName> {
        if domain.is_empty() {
            return None;
        }
        let head = name.strip_suffix(domain)?.strip_suffix('.')?;
        let (rest, kind) = head.rsplit_once('.')?;
        let labels: Vec<&str> = rest.split('.').collect();
        // Every label a plain DNS label: SRV's `_port._proto` and empty
        // labels (`a..b`) are not records the plugin forms for addresses.
        if labels
            .iter()
            .any(|l| l.is_empty() || l.len() > 63 || l.starts_with('_'))
        {
            return None;
        }
        match (kind, labels.as_slice()) {
            ("svc", [svc, ns]) => Some(DestinationName::Service {
                service: Arc::from(*svc),
                namespace: Arc::from(*ns),
            }),
            ("svc", [host, svc, ns]) => Some(DestinationName::Endpoint {
                pod: dashed_address(host).is_none().then(|| Arc::from(*host)),
                service: Arc::from(*svc),
                namespace: Arc::from(*ns),
            }),
            ("pod", [dashed, ns]) => {
                dashed_address(dashed)?;
                Some(DestinationName::Pod {
                    namespace: Arc::from(*ns),
                })
            }
            _ => None,
        }
    }

    /// Whether the name is one the cluster's DNS forms (not `Other`).
    pub fn is_cluster(&self) -> bool {
        !matches!(self, DestinationName::Other(_))
    }

    pub fn service(&self) -> Option<&Arc<str>> {
        match self {
            DestinationName::Service { service, .. }
            | DestinationName::Endpoint { service, .. } => Some(service),
            _ => None,
        }
    }

    pub fn namespace(&self) -> Option<&Arc<str>> {
        match self {
            DestinationName::Service { namespace, .. }
            | DestinationName::Endpoint { namespace, .. }
            | DestinationName::Pod { namespace } => Some(namespace),
            DestinationName::Other(_) => None,
        }
    }

    pub fn pod(&self) -> Option<&Arc<str>> {
        match self {
            DestinationName::Endpoint { pod, .. } => pod.as_ref(),
            _ => None,
        }
    }

    /// A stable label for the kind: `service`, `endpoint`, `pod`, `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            DestinationName::Service { .. } => "service",
            DestinationName::Endpoint { .. } => "endpoint",
            DestinationName::Pod { .. } => "pod",
            DestinationName::Other(_) => "other",
        }
    }
}

/// The address in a dashed label: `10-1-2-3` (IPv4, dots → dashes) or
/// `fd00--1` / `fd00--0` (IPv6, colons → dashes; CoreDNS appends `0` to a
/// name that would end in `-`).
pub fn dashed_address(label: &str) -> Option<IpAddr> {
    if label.len() > 45 || !label.contains('-') {
        return None;
    }
    let dots = label.replace('-', ".");
    if let Ok(v4) = dots.parse::<std::net::Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let colons = label.replace('-', ":");
    if let Ok(v6) = colons.parse::<std::net::Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    // `fd00::` is written `fd00--0`: the appended 0 would read as a group.
    colons
        .strip_suffix('0')
        .and_then(|c| c.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// The PTR question for `addr`: `4.3.2.1.in-addr.arpa.` or the 32-nibble
/// `….ip6.arpa.` name (RFC 1035 §3.5, RFC 3596 §2.5).
pub fn reverse_name(addr: IpAddr) -> String {
    Name::from(addr).to_ascii()
}

/// The address a PTR question asks about; `None` unless the name is a full
/// `in-addr.arpa` (4 labels) or `ip6.arpa` (32 nibbles) name.
pub fn address_of_reverse(qname: &str) -> Option<IpAddr> {
    let fqdn;
    let qname = if qname.ends_with('.') {
        qname
    } else {
        fqdn = format!("{qname}.");
        &fqdn
    };
    let net = Name::from_ascii(qname).ok()?.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// Where a name for a destination came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    /// An A/AAAA answer the pod received (before or after the connection).
    DnsAnswer,
    /// A PTR answer to a question the application asked.
    AppPtr,
    /// podpath's own PTR lookup to the pod's resolver (`podpath run` only).
    Ptr,
    /// The cluster's objects exported to a file (`analyze --names` only).
    NamesFile,
}

impl NameSource {
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::DnsAnswer => "dns_answer",
            NameSource::AppPtr => "app_ptr",
            NameSource::Ptr => "ptr",
            NameSource::NamesFile => "names_file",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(n: &str) -> DestinationName {
        DestinationName::parse(n, "cluster.local")
    }

    fn svc(s: &str, ns: &str) -> DestinationName {
        DestinationName::Service {
            service: s.into(),
            namespace: ns.into(),
        }
    }

    #[test]
    fn service_names() {
        assert_eq!(
            parse("demo-app.default.svc.cluster.local."),
            svc("demo-app", "default")
        );
        assert_eq!(
            parse("Demo-App.Default.SVC.cluster.local"),
            svc("demo-app", "default")
        );
        assert_eq!(
            DestinationName::parse("cart.shop.svc.corp.local", "corp.local."),
            svc("cart", "shop")
        );
        // The same name under another domain is opaque.
        assert_eq!(
            DestinationName::parse("cart.shop.svc.corp.local", "cluster.local"),
            DestinationName::Other("cart.shop.svc.corp.local".into())
        );
    }

    #[test]
    fn endpoint_names() {
        assert_eq!(
            parse("web-0.web.shop.svc.cluster.local."),
            DestinationName::Endpoint {
                pod: Some("web-0".into()),
                service: "web".into(),
                namespace: "shop".into()
            }
        );
        for dashed in ["10-244-1-7", "fd00-10-244--7", "fd00--0"] {
            let n = parse(&format!("{dashed}.demo-app.default.svc.cluster.local"));
            assert_eq!(
                n,
                DestinationName::Endpoint {
                    pod: None,
                    service: "demo-app".into(),
                    namespace: "default".into()
                },
                "{dashed}"
            );
            assert_eq!(n.service().map(|s| &**s), Some("demo-app"));
            assert_eq!(n.namespace().map(|s| &**s), Some("default"));
            assert_eq!(n.pod(), None);
        }
    }

    #[test]
    fn pod_names() {
        assert_eq!(
            parse("10-244-0-5.default.pod.cluster.local"),
            DestinationName::Pod {
                namespace: "default".into()
            }
        );
        // A pod record's first label must be an address.
        assert!(!parse("web.default.pod.cluster.local").is_cluster());
    }

    #[test]
    fn other_names() {
        for n in [
            "example.com",
            "cluster.local",
            "svc.cluster.local",
            "default.svc.cluster.local",
            "_http._tcp.web.shop.svc.cluster.local",
            "a.b.c.d.svc.cluster.local",
            "x..svc.cluster.local",
            "demo-app.default.svc.cluster.localx",
            "xcluster.local",
            "",
            ".",
        ] {
            let got = parse(n);
            assert!(!got.is_cluster(), "{n}: {got:?}");
            assert_eq!(got.kind(), "other");
        }
        assert_eq!(
            parse("API.Example.COM."),
            DestinationName::Other("api.example.com".into())
        );
    }

    #[test]
    fn dashed_addresses() {
        assert_eq!(
            dashed_address("10-1-2-3"),
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(dashed_address("fd00--1"), Some("fd00::1".parse().unwrap()));
        assert_eq!(dashed_address("fd00--0"), Some("fd00::".parse().unwrap()));
        assert_eq!(dashed_address("web-0"), None);
        assert_eq!(dashed_address("10-1-2"), None);
        assert_eq!(dashed_address("1234"), None);
    }

    #[test]
    fn reverse_names_both_ways() {
        for a in ["10.43.12.7", "fd00:10:96::a", "::1"] {
            let addr: IpAddr = a.parse().unwrap();
            let name = reverse_name(addr);
            assert!(name.ends_with(".arpa."), "{name}");
            assert_eq!(address_of_reverse(&name), Some(addr));
            assert_eq!(address_of_reverse(name.trim_end_matches('.')), Some(addr));
        }
        assert_eq!(
            reverse_name("10.43.12.7".parse().unwrap()),
            "7.12.43.10.in-addr.arpa."
        );
        // Partial (zone) names and non-reverse names name no address.
        assert_eq!(address_of_reverse("43.10.in-addr.arpa."), None);
        assert_eq!(address_of_reverse("example.com."), None);
        assert_eq!(address_of_reverse("300.1.1.10.in-addr.arpa."), None);
        assert_eq!(address_of_reverse("..in-addr.arpa"), None);
    }

    /// CoreDNS's `endpointHostname` for an address without a hostname.
    fn coredns_dashed(addr: IpAddr) -> String {
        match addr {
            IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
            IpAddr::V6(v6) => {
                let d = v6.to_string().replace(':', "-");
                if d.ends_with('-') {
                    d + "0"
                } else {
                    d
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_without_panic(name in ".{0,80}", domain in ".{0,20}") {
            let n = DestinationName::parse(&name, &domain);
            proptest::prop_assert_eq!(n.is_cluster(), n.namespace().is_some());
        }

        #[test]
        fn service_and_endpoint_names_round_trip(
            service in "[a-z][a-z0-9-]{0,20}",
            ns in "[a-z][a-z0-9-]{0,20}",
            v6 in proptest::prelude::any::<bool>(),
            bits in proptest::prelude::any::<u128>(),
        ) {
            let want = svc(&service, &ns);
            proptest::prop_assert_eq!(parse(&format!("{service}.{ns}.svc.cluster.local.")), want);
            let addr = if v6 {
                IpAddr::V6(bits.into())
            } else {
                IpAddr::V4((bits as u32).into())
            };
            let dashed = coredns_dashed(addr);
            proptest::prop_assert_eq!(dashed_address(&dashed), Some(addr), "{}", dashed);
            let n = parse(&format!("{dashed}.{service}.{ns}.svc.cluster.local"));
            proptest::prop_assert_eq!(n.pod(), None);
            proptest::prop_assert_eq!(n.service().map(|s| s.to_string()), Some(service.clone()));
            proptest::prop_assert_eq!(address_of_reverse(&reverse_name(addr)), Some(addr));
        }
    }
}
