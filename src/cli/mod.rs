//! Command-line interface: `podpath analyze`, `podpath run`, `podpath inject`,
//! `podpath webhook`.
//! Every flag is also an environment variable (`PODPATH_*`).

pub mod analyze;
pub mod inject;
pub mod ptr;
pub mod run;
pub mod server;
#[cfg(feature = "webhook")]
pub mod webhook;

use std::net::IpAddr;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::config::{NamePolicy, PodConfig};

#[derive(Parser, Debug)]
#[command(
    name = "podpath",
    version,
    about = "Which path each connection of a pod took: loopback, pod IP, ClusterIP, DNS name or external",
    long_about = "podpath watches a pod's packets passively (AF_PACKET or capture files), parses DNS, \
                  tracks TCP/UDP flows and HTTP/1, and attributes every outbound connection and request \
                  to the path the app used. Every flag is also an environment variable."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyse pcap/pcapng files (e.g. from `tcpdump -i any -w FILE`). Without FILE, the embedded seed capture.
    Analyze(analyze::AnalyzeArgs),
    /// Run as the live sidecar in the pod's network namespace (needs CAP_NET_RAW).
    Run(run::RunArgs),
    /// Add the podpath sidecar to every pod template of Kubernetes YAML (idempotent).
    Inject(inject::InjectArgs),
    /// Serve a mutating admission webhook that adds the sidecar to new pods (HTTPS, fail-open).
    #[cfg(feature = "webhook")]
    Webhook(webhook::WebhookArgs),
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum NamesArg {
    #[default]
    Keep,
    Hash,
    Drop,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// A report a person reads at a glance.
    Table,
    /// The Prometheus exposition text, exactly as a scrape returns it.
    Prometheus,
    /// OpenMetrics exposition text.
    Openmetrics,
    /// Connections, lookups and requests as records.
    Json,
}

/// What podpath knows about the pod and cluster; shared by `analyze` and `run`.
#[derive(Args, Debug, Clone, Default)]
pub struct PodArgs {
    /// Cluster DNS domain (e.g. cluster.local). Inferred from the resolver's search suffixes when not given.
    #[arg(long, env = "PODPATH_CLUSTER_DOMAIN")]
    pub cluster_domain: Option<String>,
    /// Service (ClusterIP) CIDR; repeatable, IPv4 and IPv6.
    #[arg(
        long = "service-cidr",
        env = "PODPATH_SERVICE_CIDR",
        value_delimiter = ','
    )]
    pub service_cidrs: Vec<IpNet>,
    /// Pod CIDR; repeatable, IPv4 and IPv6.
    #[arg(long = "pod-cidr", env = "PODPATH_POD_CIDR", value_delimiter = ',')]
    pub pod_cidrs: Vec<IpNet>,
    /// The pod's own address(es); learned from traffic when not given.
    #[arg(long = "pod-ip", env = "PODPATH_POD_IP", value_delimiter = ',')]
    pub pod_ips: Vec<IpAddr>,
    /// The pod's namespace (gives the default search list).
    #[arg(long, env = "PODPATH_NAMESPACE")]
    pub namespace: Option<String>,
    /// resolv.conf search domain; repeatable, in order.
    #[arg(long = "search", env = "PODPATH_SEARCH", value_delimiter = ',')]
    pub search: Vec<String>,
    /// resolv.conf ndots.
    #[arg(long, env = "PODPATH_NDOTS", default_value_t = 5)]
    pub ndots: u8,
    /// Read search list and ndots from this resolv.conf (flags given explicitly win).
    #[arg(long, env = "PODPATH_RESOLV_CONF")]
    pub resolv_conf: Option<String>,
    /// Seconds past a DNS answer's TTL during which its addresses still count as `dns`.
    #[arg(long, env = "PODPATH_DNS_TTL_GRACE", default_value_t = 30.0)]
    pub dns_ttl_grace: f64,
    /// Seconds without a DNS response before a query counts as TIMEOUT.
    #[arg(long, env = "PODPATH_DNS_TIMEOUT", default_value_t = 5.0)]
    pub dns_timeout: f64,
    /// Seconds without a SYN-ACK before a TCP attempt counts as a connect timeout
    /// (by then Linux has retransmitted the SYN once, after its 1 s initial RTO).
    #[arg(long, env = "PODPATH_CONNECT_TIMEOUT", default_value_t = 2.0)]
    pub connect_timeout: f64,
    /// Local TCP/UDP port whose traffic is not the app's (e.g. podpath's own
    /// metrics port in a capture); repeatable. `run` always excludes its --listen port.
    #[arg(
        long = "exclude-port",
        env = "PODPATH_EXCLUDE_PORT",
        value_delimiter = ','
    )]
    pub exclude_ports: Vec<u16>,
    /// How DNS names and TLS SNI appear in metrics and logs: as written, a
    /// stable salted pseudonym (`h:…`), or dropped (`~redacted`).
    #[arg(
        long = "dns-names",
        env = "PODPATH_DNS_NAMES",
        value_enum,
        default_value = "keep"
    )]
    pub dns_names: NamesArg,
    /// Salt for `--dns-names hash` (keep it secret and stable across restarts).
    #[arg(
        long = "dns-name-salt",
        env = "PODPATH_DNS_NAME_SALT",
        default_value = "",
        hide_env_values = true
    )]
    pub dns_name_salt: String,
    /// Maximum tracked flows (memory bound).
    #[arg(long, env = "PODPATH_MAX_FLOWS", default_value_t = crate::config::Limits::default().max_flows)]
    pub max_flows: usize,
    /// Maximum distinct values per traffic-derived label before folding into `~other`.
    #[arg(long, env = "PODPATH_MAX_LABEL_VALUES", default_value_t = 100)]
    pub max_label_values: usize,
    /// Maximum series per metric family.
    #[arg(long, env = "PODPATH_MAX_SERIES", default_value_t = 2_000)]
    pub max_series: usize,
}

impl PodArgs {
    /// Builds the pod configuration; a resolv.conf fills what flags left empty.
    pub fn to_config(&self) -> Result<PodConfig> {
        let mut cfg = PodConfig {
            pod_ips: self.pod_ips.clone(),
            service_cidrs: self.service_cidrs.iter().map(IpNet::trunc).collect(),
            pod_cidrs: self.pod_cidrs.iter().map(IpNet::trunc).collect(),
            cluster_domain: self
                .cluster_domain
                .as_deref()
                .map(|d| d.trim_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty()),
            namespace: self.namespace.clone(),
            search: self
                .search
                .iter()
                .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            ndots: self.ndots,
            exclude_ports: self.exclude_ports.clone(),
            names: match self.dns_names {
                NamesArg::Keep => NamePolicy::Keep,
                NamesArg::Hash => NamePolicy::Hash,
                NamesArg::Drop => NamePolicy::Drop,
            },
            name_salt: self.dns_name_salt.clone(),
            ..PodConfig::default()
        };
        if let Some(path) = &self.resolv_conf {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{path}: cannot read resolv.conf"))?;
            let rc = crate::dns::resolv::parse(&text);
            cfg.dns_servers = rc.nameservers.clone();
            if cfg.search.is_empty() {
                cfg.search = rc.search.clone();
            }
            if self.ndots == 5 {
                if let Some(n) = rc.ndots {
                    cfg.ndots = n;
                }
            }
        }
        for (name, v) in [
            ("--dns-ttl-grace", self.dns_ttl_grace),
            ("--dns-timeout", self.dns_timeout),
            ("--connect-timeout", self.connect_timeout),
        ] {
            if !v.is_finite() || v < 0.0 {
                anyhow::bail!("{name} must be a non-negative number of seconds, got {v}");
            }
        }
        if self.max_flows == 0 || self.max_label_values == 0 || self.max_series == 0 {
            anyhow::bail!("--max-flows, --max-label-values and --max-series must be at least 1");
        }
        cfg.timeouts.dns_ttl_grace = self.dns_ttl_grace;
        cfg.timeouts.dns_query = self.dns_timeout;
        cfg.timeouts.tcp_connect = self.connect_timeout;
        cfg.limits.max_flows = self.max_flows;
        cfg.limits.max_label_values = self.max_label_values;
        cfg.limits.max_series = self.max_series;
        Ok(cfg)
    }

    /// Lines describing the configuration, for reports and the start-up log.
    pub fn describe(cfg: &PodConfig) -> Vec<String> {
        let list = |v: &[String]| {
            if v.is_empty() {
                "(not set: inferred)".to_string()
            } else {
                v.join(" ")
            }
        };
        let nets = |v: &[IpNet]| {
            if v.is_empty() {
                "(not set)".to_string()
            } else {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        vec![
            format!("service CIDRs: {}", nets(&cfg.service_cidrs)),
            format!("pod CIDRs: {}", nets(&cfg.pod_cidrs)),
            format!(
                "cluster domain: {}",
                cfg.cluster_domain
                    .as_deref()
                    .unwrap_or("(not set: inferred)")
            ),
            format!(
                "search: {} (ndots:{})",
                list(&cfg.effective_search()),
                cfg.ndots
            ),
        ]
    }
}

/// Runs the parsed command line.
pub fn main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Run(args) => run::run(args),
        Command::Inject(args) => inject::run(args),
        #[cfg(feature = "webhook")]
        Command::Webhook(args) => webhook::run(args),
    }
}
