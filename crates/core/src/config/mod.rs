//! What podpath knows about the pod it watches: its addresses, the cluster's
//! CIDRs and DNS settings, and the limits that keep memory and label
//! cardinality bounded. Built once (`cli::PodArgs::to_config`) from flags,
//! `PODPATH_*` variables, the downward API and resolv.conf, each value with
//! its [`Origin`]; what is still missing is inferred from traffic by the
//! engine. Everything downstream reads [`PodConfig`], normalised here once.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// What exported metrics and logs may say about the names the pod looks up
/// (DNS names and TLS SNI), for environments where names are sensitive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NamePolicy {
    /// Names as the app wrote them.
    #[default]
    Keep,
    /// A stable pseudonym `h:<12 hex>` of the salted name: series stay
    /// distinct and comparable over time, the name is not shown. Not a
    /// cryptographic commitment: with the salt, a dictionary reverses it.
    Hash,
    /// Every name becomes `~redacted`.
    Drop,
}

impl NamePolicy {
    /// The value to export for `name`.
    pub fn apply<'a>(self, name: &'a str, salt: &str) -> std::borrow::Cow<'a, str> {
        use std::hash::{Hash, Hasher};
        match self {
            NamePolicy::Keep => std::borrow::Cow::Borrowed(name),
            NamePolicy::Drop => std::borrow::Cow::Borrowed("~redacted"),
            NamePolicy::Hash => {
                // SipHash-1-3 with fixed keys: stable for a given build of podpath.
                let mut h = std::collections::hash_map::DefaultHasher::new();
                salt.hash(&mut h);
                name.hash(&mut h);
                std::borrow::Cow::Owned(format!("h:{:012x}", h.finish() & 0xffff_ffff_ffff))
            }
        }
    }
}

/// Where a configured value came from. The variants rank in this order: a
/// value from a higher-ranked source is never replaced by a lower one, so an
/// explicit `--ndots 5` stays 5 whatever resolv.conf says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// podpath's built-in default.
    #[default]
    Default,
    /// Derived from other settings (the Kubernetes search list from the namespace).
    Inferred,
    /// A resolv.conf.
    File,
    /// The pod's downward API variables (`POD_NAMESPACE`, `POD_IPS`, `POD_IP`), `run` only.
    DownwardApi,
    /// A `PODPATH_*` environment variable.
    Env,
    /// A command-line flag.
    Flag,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Inferred => "inferred",
            Origin::File => "resolv.conf",
            Origin::DownwardApi => "downward API",
            Origin::Env => "environment",
            Origin::Flag => "flag",
        }
    }
}

/// A value and where it came from, merged by rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Setting<T> {
    pub fn new(default: T) -> Self {
        Setting {
            value: default,
            origin: Origin::Default,
        }
    }

    /// Takes `value` (when there is one) unless the value held came from a
    /// source of the same or a higher rank: the first offer of a rank wins.
    pub fn offer(&mut self, origin: Origin, value: Option<T>) {
        if let Some(v) = value {
            if origin > self.origin {
                self.value = v;
                self.origin = origin;
            }
        }
    }
}

/// Where the pod and resolver values of a [`PodConfig`] came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origins {
    pub pod_ips: Origin,
    pub namespace: Origin,
    pub cluster_domain: Origin,
    pub search: Origin,
    pub ndots: Origin,
    pub dns_servers: Origin,
}

impl Origins {
    /// `what: origin` for each value not left at its default, for the log.
    pub fn describe(&self) -> String {
        [
            ("pod_ips", self.pod_ips),
            ("namespace", self.namespace),
            ("cluster_domain", self.cluster_domain),
            ("search", self.search),
            ("ndots", self.ndots),
            ("nameservers", self.dns_servers),
        ]
        .iter()
        .filter(|(_, o)| *o != Origin::Default)
        .map(|(what, o)| format!("{what}: {}", o.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// A DNS domain (search domain, cluster domain) or namespace as podpath
/// keeps it: lower case, without leading or trailing dots; `None` when
/// nothing is left.
pub fn normalize_domain(s: &str) -> Option<String> {
    let d = s.trim_matches('.').to_ascii_lowercase();
    (!d.is_empty()).then_some(d)
}

/// The search list Kubernetes writes for a pod in `namespace`.
pub fn kubernetes_search(namespace: &str, domain: &str) -> Vec<String> {
    vec![
        format!("{namespace}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.to_string(),
    ]
}

/// Caps on every table and label set whose size is driven by traffic.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Tracked TCP/UDP flows.
    pub max_flows: usize,
    /// Distinct values per traffic-derived label (names, services, ports).
    pub max_label_values: usize,
    /// Series per metric family.
    pub max_series: usize,
    /// DNS queries awaiting a response.
    pub max_dns_pending: usize,
    /// Addresses in the address → name table.
    pub max_dns_names: usize,
    /// DNS-over-TCP streams being reassembled.
    pub max_dns_streams: usize,
    /// Requests awaiting a response on one HTTP connection.
    pub max_http_pending: usize,
    /// Connection records kept for the JSON report (analyze only).
    pub max_records: usize,
    /// Fragmented IP datagrams being reassembled.
    pub max_fragment_datagrams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // 7/8 of 2^16: the map then fits 65 536 buckets exactly (hashbrown
            // keeps buckets at most 7/8 full); 65 536 flows would need 131 072
            // buckets, twice the memory, and grow through a transient of both.
            max_flows: 57_344,
            max_label_values: 100,
            max_series: 2_000,
            max_dns_pending: 4_096,
            max_dns_names: 16_384,
            max_dns_streams: 256,
            max_http_pending: 32,
            max_records: 100_000,
            max_fragment_datagrams: 64,
        }
    }
}

/// Timeouts, in seconds of packet time.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// A SYN with no SYN-ACK for this long is a connect `timeout`.
    pub tcp_connect: f64,
    /// An established TCP flow idle this long is forgotten.
    pub tcp_idle: f64,
    /// A UDP flow idle this long ends; the next datagram starts a new flow.
    pub udp_idle: f64,
    /// A DNS query with no response for this long is `TIMEOUT`.
    pub dns_query: f64,
    /// Addresses from DNS answers still count as `dns` this long past their TTL
    /// (applications cache answers longer than the TTL says).
    pub dns_ttl_grace: f64,
    /// An IP datagram whose fragments have not all arrived this long after
    /// the first is dropped.
    pub ip_fragments: f64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_connect: 2.0,
            tcp_idle: 300.0,
            udp_idle: 30.0,
            dns_query: 5.0,
            dns_ttl_grace: 30.0,
            ip_fragments: 5.0,
        }
    }
}

/// The pod and cluster as configured (flags, environment, resolv.conf).
/// Invariant: `cluster_domain`, `namespace` and `search` hold normalised
/// names ([`normalize_domain`]); readers do not clean them again.
#[derive(Clone, Debug)]
pub struct PodConfig {
    /// The pod's own addresses; more are learned from traffic.
    pub pod_ips: Vec<IpAddr>,
    pub service_cidrs: Vec<IpNet>,
    pub pod_cidrs: Vec<IpNet>,
    /// Cluster DNS domain; `None` = inferred from the traffic (`cluster.local` until then).
    pub cluster_domain: Option<String>,
    /// The pod's namespace, when known.
    pub namespace: Option<String>,
    /// resolv.conf search list; empty means "infer from traffic".
    pub search: Vec<String>,
    /// resolv.conf nameservers: the cluster DNS Service, known before the
    /// first query (a ClusterIP; the service range is guessed around it).
    pub dns_servers: Vec<IpAddr>,
    pub ndots: u8,
    /// Local TCP ports whose traffic is podpath's own (its metrics port):
    /// never counted as the app's.
    pub exclude_ports: Vec<u16>,
    /// podpath's own DNS client socket (`run`'s PTR queries), if any: its
    /// datagrams, the answers and ICMP errors about them are never the app's.
    pub own_dns: Option<OwnDnsClient>,
    /// How DNS names and SNI appear in metrics and logs.
    pub names: NamePolicy,
    /// Salt for [`NamePolicy::Hash`].
    pub name_salt: String,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Where the pod and resolver values came from.
    pub origins: Origins,
}

/// A UDP socket of podpath's that talks DNS to one server. The kernel gives
/// a bound port to one socket only, so (local port, server address and port)
/// names exactly this socket's traffic, whatever the local address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnDnsClient {
    pub port: u16,
    pub server: SocketAddr,
}

impl OwnDnsClient {
    /// Whether a datagram from `src` to `dst` is this socket's query or an
    /// answer to it.
    pub fn matches(&self, src: SocketAddr, dst: SocketAddr) -> bool {
        (src.port() == self.port && dst == self.server)
            || (src == self.server && dst.port() == self.port)
    }
}

impl Default for PodConfig {
    fn default() -> Self {
        PodConfig {
            pod_ips: Vec::new(),
            service_cidrs: Vec::new(),
            pod_cidrs: Vec::new(),
            cluster_domain: None,
            namespace: None,
            search: Vec::new(),
            dns_servers: Vec::new(),
            ndots: 5,
            exclude_ports: Vec::new(),
            own_dns: None,
            names: NamePolicy::Keep,
            name_salt: String::new(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            origins: Origins::default(),
        }
    }
}

impl PodConfig {
    /// The search list to use: the configured one, else the one Kubernetes
    /// would write when the namespace is known, else empty (inferred later).
    pub fn effective_search(&self) -> Vec<String> {
        if !self.search.is_empty() {
            return self.search.clone();
        }
        match &self.namespace {
            Some(ns) => kubernetes_search(
                ns,
                self.cluster_domain.as_deref().unwrap_or("cluster.local"),
            ),
            None => Vec::new(),
        }
    }
}
