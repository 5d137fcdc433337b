//! Path attribution: which way the app reached a destination.
//!
//! `loopback` (127/8, ::1) · `dns` (the address came from an answer to a
//! lookup this pod made, within TTL + grace) · `cluster_ip` (a Service's
//! virtual IP) · `pod_ip` (another pod, by literal address) · `external`.
//! For `dns` the `target` says what the answer pointed at.
//!
//! Inside the pod the wire shows the address the app dialed: kube-proxy's DNAT
//! happens in the node's namespace, after the packet left the pod, and replies
//! come back from the ClusterIP (conntrack). So the destination of the SYN is
//! the app's choice.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use crate::hash::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    Loopback,
    PodIp,
    ClusterIp,
    Dns,
    External,
}

impl Path {
    pub const ALL: [Path; 5] = [
        Path::Loopback,
        Path::PodIp,
        Path::ClusterIp,
        Path::Dns,
        Path::External,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Path::Loopback => "loopback",
            Path::PodIp => "pod_ip",
            Path::ClusterIp => "cluster_ip",
            Path::Dns => "dns",
            Path::External => "external",
        }
    }
}

/// What kind of address a destination is, regardless of how the app found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrClass {
    Loopback,
    PodIp,
    ClusterIp,
    External,
}

impl AddrClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AddrClass::Loopback => "loopback",
            AddrClass::PodIp => "pod_ip",
            AddrClass::ClusterIp => "cluster_ip",
            AddrClass::External => "external",
        }
    }

    fn as_path(self) -> Path {
        match self {
            AddrClass::Loopback => Path::Loopback,
            AddrClass::PodIp => Path::PodIp,
            AddrClass::ClusterIp => Path::ClusterIp,
            AddrClass::External => Path::External,
        }
    }
}

/// The verdict for one outbound connection. Cheap to clone (shared names).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attribution {
    pub path: Path,
    /// For `dns`: what the answer pointed at.
    pub target: Option<AddrClass>,
    /// For `dns`: the name as the app wrote it.
    pub dns_name: Option<Arc<str>>,
    /// Destination Service and its namespace, when an answer told us.
    pub service: Option<Arc<str>>,
    pub namespace: Option<Arc<str>>,
}

/// What a DNS answer said about an address, as handed to [`Attributor::attribute`].
#[derive(Clone, Copy, Debug)]
pub struct Resolved<'a> {
    pub name: &'a Arc<str>,
    pub service: Option<&'a Arc<str>>,
    pub namespace: Option<&'a Arc<str>>,
}

#[derive(Clone, Debug)]
struct Known {
    class: AddrClass,
    service: Option<Arc<str>>,
    namespace: Option<Arc<str>>,
}

/// Where a piece of cluster knowledge came from, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inference {
    pub what: String,
    pub value: String,
    pub from: String,
}

/// Classifies addresses and attributes connections. Holds the configured
/// CIDRs and what DNS answers taught about individual addresses (bounded).
#[derive(Debug)]
pub struct Attributor {
    service_cidrs: Vec<IpNet>,
    pod_cidrs: Vec<IpNet>,
    pod_cidrs_inferred: bool,
    service_cidrs_inferred: bool,
    known: HashMap<IpAddr, Known>,
    max_known: usize,
    inferences: Vec<Inference>,
}

impl Attributor {
    pub fn new(service_cidrs: Vec<IpNet>, pod_cidrs: Vec<IpNet>, max_known: usize) -> Self {
        Attributor {
            service_cidrs,
            pod_cidrs,
            pod_cidrs_inferred: false,
            service_cidrs_inferred: false,
            known: HashMap::default(),
            max_known,
            inferences: Vec::new(),
        }
    }

    pub fn inferences(&self) -> &[Inference] {
        &self.inferences
    }

    pub fn service_cidrs(&self) -> &[IpNet] {
        &self.service_cidrs
    }

    pub fn pod_cidrs(&self) -> &[IpNet] {
        &self.pod_cidrs
    }

    /// The class of an address from CIDRs and learned facts.
    pub fn classify(&self, addr: IpAddr) -> AddrClass {
        if addr.is_loopback() || is_v4_mapped_loopback(addr) {
            return AddrClass::Loopback;
        }
        if self.service_cidrs.iter().any(|n| n.contains(&addr)) {
            return AddrClass::ClusterIp;
        }
        if self.pod_cidrs.iter().any(|n| n.contains(&addr)) {
            return AddrClass::PodIp;
        }
        match self.known.get(&addr) {
            Some(k) => k.class,
            None => AddrClass::External,
        }
    }

    /// Attributes a connection to `dst`. `resolved` is what the pod's own DNS
    /// lookups say about `dst` at connect time (within TTL + grace).
    pub fn attribute(&self, dst: IpAddr, resolved: Option<Resolved<'_>>) -> Attribution {
        let class = self.classify(dst);
        if class == AddrClass::Loopback {
            return Attribution {
                path: Path::Loopback,
                target: None,
                dns_name: None,
                service: None,
                namespace: None,
            };
        }
        match resolved {
            Some(r) => Attribution {
                path: Path::Dns,
                target: Some(class),
                dns_name: Some(r.name.clone()),
                service: r.service.cloned(),
                namespace: r.namespace.cloned(),
            },
            None => {
                let known = self.known.get(&dst);
                Attribution {
                    path: class.as_path(),
                    target: None,
                    dns_name: None,
                    service: known.and_then(|k| k.service.clone()),
                    namespace: known.and_then(|k| k.namespace.clone()),
                }
            }
        }
    }

    /// An answer for `<svc>.<ns>.svc.<domain>` (or any in-cluster name) told us
    /// `addr` belongs to a Service. Without a service CIDR, such an address
    /// outside the pod CIDRs is taken to be a ClusterIP.
    pub fn learn_service_address(
        &mut self,
        addr: IpAddr,
        service: Option<Arc<str>>,
        namespace: Option<Arc<str>>,
    ) {
        let class = match self.classify_by_cidr(addr) {
            Some(c) => c,
            None => AddrClass::ClusterIp,
        };
        self.remember(
            addr,
            Known {
                class,
                service,
                namespace,
            },
        );
    }

    /// A name the cluster's DNS forms told us what `addr` is: a Service's
    /// ClusterIP (`cluster_ip`; `<svc>.<ns>.svc.<domain>` with one address)
    /// or a pod (an endpoint or pod record, or one of several addresses
    /// answered for a headless Service). Configured CIDRs win.
    pub fn learn_named_address(
        &mut self,
        addr: IpAddr,
        cluster_ip: bool,
        service: Option<Arc<str>>,
        namespace: Option<Arc<str>>,
    ) {
        let guess = if cluster_ip {
            AddrClass::ClusterIp
        } else {
            AddrClass::PodIp
        };
        let class = self.classify_by_cidr(addr).unwrap_or(guess);
        self.remember(
            addr,
            Known {
                class,
                service,
                namespace,
            },
        );
    }

    /// The cluster DNS server the pod queries is a ClusterIP (kube-dns).
    pub fn learn_dns_server(&mut self, addr: IpAddr) {
        if self.known.contains_key(&addr) || addr.is_loopback() {
            return;
        }
        if self.classify_by_cidr(addr).is_none() {
            self.inferences.push(Inference {
                what: "cluster_ip".into(),
                value: addr.to_string(),
                from: "DNS server the pod queries (kube-dns Service)".into(),
            });
        }
        let class = self.classify_by_cidr(addr).unwrap_or(AddrClass::ClusterIp);
        self.remember(
            addr,
            Known {
                class,
                service: None,
                namespace: None,
            },
        );
        self.guess_service_cidr(addr);
    }

    /// Without a configured service CIDR, take the range around the kube-dns
    /// ClusterIP as the service network, so that a Service dialed by its
    /// literal ClusterIP is `cluster_ip`, not `external`. A guess, reported
    /// as one: kubeadm's default 10.96.0.0/12 when the address is in it
    /// (kube-dns is 10.96.0.10 there), else the /16 around it (k3s
    /// 10.43.0.0/16, AKS 10.0.0.0/16, OpenShift 172.30.0.0/16, EKS
    /// 10.100.0.0/16), /112 for IPv6. Only private (RFC 1918, RFC 6598,
    /// ULA) addresses, never a range holding the pod's own network: a
    /// public or link-local resolver (node-local-dns 169.254.20.10) is no
    /// Service range.
    fn guess_service_cidr(&mut self, dns: IpAddr) {
        let same_family = |n: &IpNet| n.addr().is_ipv4() == dns.is_ipv4();
        if self.service_cidrs.iter().any(same_family) {
            return;
        }
        let net = match dns {
            IpAddr::V4(v4) => {
                let kubeadm: IpNet = IpNet::V4(
                    ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 96, 0, 0), 12)
                        .unwrap_or_default(),
                );
                let cgnat = (v4.octets()[0] == 100) && (v4.octets()[1] & 0xc0 == 64);
                if kubeadm.contains(&dns) {
                    kubeadm
                } else if v4.is_private() || cgnat {
                    match IpNet::new(dns, 16) {
                        Ok(n) => n.trunc(),
                        Err(_) => return,
                    }
                } else {
                    return;
                }
            }
            IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => match IpNet::new(dns, 112) {
                Ok(n) => n.trunc(),
                Err(_) => return,
            },
            IpAddr::V6(_) => return,
        };
        let overlaps = |p: &IpNet| p.contains(&net.network()) || net.contains(&p.network());
        if self.pod_cidrs.iter().any(overlaps) {
            return;
        }
        self.service_cidrs.push(net);
        self.service_cidrs_inferred = true;
        self.inferences.push(Inference {
            what: "service_cidr".into(),
            value: net.to_string(),
            from: format!(
                "the range around the cluster DNS Service {dns} (guess: pass --service-cidr)"
            ),
        });
    }

    /// Without a configured pod CIDR, take the /16 (IPv4) or /64 (IPv6)
    /// around the pod's own private address as the pod network. A guess, and
    /// reported as one.
    pub fn learn_local(&mut self, addr: IpAddr) {
        let configured = !self.pod_cidrs.is_empty() && !self.pod_cidrs_inferred;
        let same_family = |n: &IpNet| n.addr().is_ipv4() == addr.is_ipv4();
        if configured || self.pod_cidrs.iter().any(same_family) {
            return;
        }
        let prefix = match addr {
            IpAddr::V4(v4) if v4.is_private() => 16,
            IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => 64,
            _ => return,
        };
        let Ok(net) = IpNet::new(addr, prefix) else {
            return;
        };
        let net = net.trunc();
        if self.service_cidrs_inferred {
            // A guessed service range that holds the pod's own network was wrong.
            let before = self.service_cidrs.len();
            self.service_cidrs
                .retain(|s| !(s.contains(&net.network()) || net.contains(&s.network())));
            if self.service_cidrs.len() != before {
                self.inferences.retain(|i| i.what != "service_cidr");
                self.service_cidrs_inferred = false;
            }
        }
        if self.service_cidrs.iter().any(|s| s.contains(&addr)) {
            return;
        }
        self.pod_cidrs.push(net);
        self.pod_cidrs_inferred = true;
        self.inferences.push(Inference {
            what: "pod_cidr".into(),
            value: net.to_string(),
            from: format!("the pod's own address {addr} (guess: pass --pod-cidr)"),
        });
    }

    fn classify_by_cidr(&self, addr: IpAddr) -> Option<AddrClass> {
        if self.service_cidrs.iter().any(|n| n.contains(&addr)) {
            Some(AddrClass::ClusterIp)
        } else if self.pod_cidrs.iter().any(|n| n.contains(&addr)) {
            Some(AddrClass::PodIp)
        } else {
            None
        }
    }

    fn remember(&mut self, addr: IpAddr, known: Known) {
        if self.known.len() >= self.max_known && !self.known.contains_key(&addr) {
            // Full: forget an arbitrary entry; facts can be learned again.
            if let Some(k) = self.known.keys().next().copied() {
                self.known.remove(&k);
            }
        }
        self.known.insert(addr, known);
    }
}

fn is_v4_mapped_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn attributor() -> Attributor {
        Attributor::new(
            vec![
                "10.96.0.0/12".parse().unwrap(),
                "fd00:10:96::/112".parse().unwrap(),
            ],
            vec!["10.244.0.0/16".parse().unwrap()],
            16,
        )
    }

    #[test]
    fn literal_addresses_follow_cidrs() {
        let a = attributor();
        assert_eq!(a.attribute(ip("127.0.0.1"), None).path, Path::Loopback);
        assert_eq!(a.attribute(ip("::1"), None).path, Path::Loopback);
        assert_eq!(a.attribute(ip("10.244.1.10"), None).path, Path::PodIp);
        assert_eq!(a.attribute(ip("10.96.100.10"), None).path, Path::ClusterIp);
        assert_eq!(a.attribute(ip("fd00:10:96::a"), None).path, Path::ClusterIp);
        assert_eq!(a.attribute(ip("203.0.113.10"), None).path, Path::External);
    }

    #[test]
    fn dns_answers_win_and_keep_their_target() {
        let a = attributor();
        let name: Arc<str> = "demo-app".into();
        let svc: Arc<str> = "demo-app".into();
        let ns: Arc<str> = "default".into();
        let r = Resolved {
            name: &name,
            service: Some(&svc),
            namespace: Some(&ns),
        };
        let at = a.attribute(ip("10.96.100.10"), Some(r));
        assert_eq!(at.path, Path::Dns);
        assert_eq!(at.target, Some(AddrClass::ClusterIp));
        assert_eq!(at.dns_name.as_deref(), Some("demo-app"));
        assert_eq!(at.service.as_deref(), Some("demo-app"));
        let headless = a.attribute(ip("10.244.1.10"), Some(r));
        assert_eq!(headless.target, Some(AddrClass::PodIp));
        // A loopback destination is loopback even if some answer named it.
        assert_eq!(a.attribute(ip("127.0.0.1"), Some(r)).path, Path::Loopback);
    }

    #[test]
    fn literal_use_of_a_learned_service_address_names_the_service() {
        let mut a = Attributor::new(vec![], vec![], 4);
        a.learn_service_address(
            ip("10.96.100.10"),
            Some("demo-app".into()),
            Some("default".into()),
        );
        let at = a.attribute(ip("10.96.100.10"), None);
        assert_eq!(at.path, Path::ClusterIp);
        assert_eq!(at.service.as_deref(), Some("demo-app"));
    }

    #[test]
    fn pod_cidr_is_inferred_from_a_private_local_address_only_once() {
        let mut a = Attributor::new(vec![], vec![], 4);
        a.learn_local(ip("10.244.1.20"));
        a.learn_local(ip("10.245.1.20"));
        assert_eq!(a.pod_cidrs(), &["10.244.0.0/16".parse::<IpNet>().unwrap()]);
        assert_eq!(a.attribute(ip("10.244.9.9"), None).path, Path::PodIp);
        assert_eq!(a.inferences().len(), 1);
        let mut public = Attributor::new(vec![], vec![], 4);
        public.learn_local(ip("198.51.100.7"));
        assert!(public.pod_cidrs().is_empty());
    }

    #[test]
    fn known_table_is_bounded() {
        let mut a = Attributor::new(vec![], vec![], 4);
        for i in 0..100u8 {
            a.learn_service_address(IpAddr::from([10, 96, 0, i]), None, None);
        }
        assert!(a.known.len() <= 4);
    }

    #[test]
    fn service_range_is_guessed_around_the_dns_server_and_reported() {
        let guess = |pod: Option<&str>, dns: &str| {
            let mut a = Attributor::new(Vec::new(), Vec::new(), 16);
            if let Some(p) = pod {
                a.learn_local(ip(p));
            }
            a.learn_dns_server(ip(dns));
            let inferred = a
                .inferences()
                .iter()
                .find(|i| i.what == "service_cidr")
                .map(|i| {
                    assert!(i.from.contains("guess"), "{i:?}");
                    i.value.clone()
                });
            (
                a.service_cidrs()
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>(),
                inferred,
            )
        };
        let kubeadm = (
            vec!["10.96.0.0/12".to_string()],
            Some("10.96.0.0/12".to_string()),
        );
        assert_eq!(guess(Some("10.244.1.20"), "10.96.0.10"), kubeadm);
        let k3s = (
            vec!["10.43.0.0/16".to_string()],
            Some("10.43.0.0/16".to_string()),
        );
        assert_eq!(guess(Some("10.42.0.9"), "10.43.0.10"), k3s);
        assert_eq!(
            guess(None, "fd00:10:96::a").0,
            vec!["fd00:10:96::/112".to_string()]
        );
        // Public, link-local (node-local-dns) and the pod's own range: no guess.
        for (pod, dns) in [
            (Some("10.244.1.20"), "8.8.8.8"),
            (Some("10.244.1.20"), "169.254.20.10"),
            (Some("10.244.1.20"), "10.244.0.10"),
        ] {
            assert_eq!(guess(pod, dns), (Vec::new(), None), "{dns}");
        }
        // The pod's own address learned after a guess that holds it voids it.
        let mut a = Attributor::new(Vec::new(), Vec::new(), 16);
        a.learn_dns_server(ip("10.20.0.10"));
        assert_eq!(a.classify(ip("10.20.7.7")), AddrClass::ClusterIp);
        a.learn_local(ip("10.20.3.4"));
        assert!(a.service_cidrs().is_empty());
        assert!(a.inferences().iter().all(|i| i.what != "service_cidr"));
        assert_eq!(a.classify(ip("10.20.7.7")), AddrClass::PodIp);
        // A configured range is never second-guessed.
        let mut a = attributor();
        a.learn_dns_server(ip("10.43.0.10"));
        assert_eq!(a.service_cidrs().len(), 2);
    }
}
