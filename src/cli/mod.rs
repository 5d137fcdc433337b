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

use crate::config::memory::{self, BudgetArg, MemoryLimit};
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
    /// Maximum tracked flows. Default: 57344, less when the memory budget
    /// needs it; given explicitly, kept whatever the budget.
    #[arg(long, env = "PODPATH_MAX_FLOWS")]
    pub max_flows: Option<usize>,
    /// Maximum addresses in the address → name table (and names in the
    /// latest-answer table). Default: 16384, less when the memory budget
    /// needs it; given explicitly, kept whatever the budget.
    #[arg(long, env = "PODPATH_MAX_DNS_NAMES")]
    pub max_dns_names: Option<usize>,
    /// Maximum distinct values per traffic-derived label before folding into `~other`.
    #[arg(long, env = "PODPATH_MAX_LABEL_VALUES", default_value_t = 100)]
    pub max_label_values: usize,
    /// Maximum series per metric family. Default: 2000, less when the memory
    /// budget needs it; given explicitly, kept whatever the budget.
    #[arg(long, env = "PODPATH_MAX_SERIES")]
    pub max_series: Option<usize>,
    /// Memory the tables are sized to stay within: `auto` (three quarters of
    /// the container's cgroup memory limit; no sizing without a limit), `off`,
    /// or a size (96Mi, 100M, 1Gi, bytes). Tables only ever shrink from their
    /// defaults. docs/memory.md has the model.
    #[arg(long, env = "PODPATH_MEMORY_BUDGET", default_value = "auto")]
    pub memory_budget: BudgetArg,
}

/// What the memory budget decided, for the start-up log and the metrics.
#[derive(Clone, Debug)]
pub struct Sizing {
    /// The cgroup limit seen (`None`: none, or not looked for).
    pub limit: Option<MemoryLimit>,
    /// The budget the tables were sized for (`None`: not sized).
    pub budget: Option<u64>,
    /// Modelled worst case of the tables chosen.
    pub estimate: u64,
    /// Ring bytes per interface.
    pub ring_size: usize,
}

impl Sizing {
    /// One line for the log.
    pub fn describe(&self) -> String {
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
        let limit = match &self.limit {
            Some(l) => format!("{} ({})", mib(l.bytes), l.source.display()),
            None => "none found".to_string(),
        };
        match self.budget {
            Some(b) => format!(
                "memory limit {limit}, budget {}, modelled worst case {}",
                mib(b),
                mib(self.estimate)
            ),
            None => format!(
                "memory limit {limit}, tables not sized (modelled worst case {})",
                mib(self.estimate)
            ),
        }
    }
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
        if [
            self.max_flows,
            self.max_dns_names,
            self.max_series,
            Some(self.max_label_values),
        ]
        .contains(&Some(0))
        {
            anyhow::bail!("--max-flows, --max-dns-names, --max-label-values and --max-series must be at least 1");
        }
        cfg.timeouts.dns_ttl_grace = self.dns_ttl_grace;
        cfg.timeouts.dns_query = self.dns_timeout;
        cfg.timeouts.tcp_connect = self.connect_timeout;
        let limits = &mut cfg.limits;
        limits.max_flows = self.max_flows.unwrap_or(limits.max_flows);
        limits.max_dns_names = self.max_dns_names.unwrap_or(limits.max_dns_names);
        limits.max_label_values = self.max_label_values;
        limits.max_series = self.max_series.unwrap_or(limits.max_series);
        Ok(cfg)
    }

    /// Sizes `cfg`'s tables for the memory budget (`--memory-budget`), with
    /// `fixed` the memory that is not a table; the limits given explicitly
    /// stay. `limit` is the container's limit when known (`auto` reads it).
    pub fn size_for_memory(
        &self,
        cfg: &mut PodConfig,
        fixed: memory::Fixed,
        limit: Option<MemoryLimit>,
    ) -> Sizing {
        let budget = match self.memory_budget {
            BudgetArg::Off => None,
            BudgetArg::Bytes(b) => Some(b),
            // Three quarters: the margin for what the model does not count.
            BudgetArg::Auto => limit.as_ref().map(|l| l.bytes / 4 * 3),
        };
        let Some(budget) = budget else {
            return Sizing {
                limit,
                budget: None,
                estimate: memory::estimate(&cfg.limits, fixed, fixed.ring_size),
                ring_size: fixed.ring_size,
            };
        };
        let pinned = memory::Pinned {
            flows: self.max_flows.is_some(),
            names: self.max_dns_names.is_some(),
            series: self.max_series.is_some(),
        };
        let plan = memory::plan(budget, &cfg.limits, fixed, pinned);
        cfg.limits = plan.limits;
        Sizing {
            limit,
            budget: Some(budget),
            estimate: plan.estimate,
            ring_size: plan.ring_size,
        }
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

/// Exports the tables' capacities and the memory figures behind them.
pub fn export_sizing(metrics: &crate::metrics::Metrics, cfg: &PodConfig, sizing: &Sizing) {
    let l = &cfg.limits;
    let dns = crate::dns::DnsConfig::default();
    for (table, capacity) in [
        ("flows", l.max_flows),
        ("names", l.max_dns_names),
        ("pending", l.max_dns_pending),
        ("tcp_streams", l.max_dns_streams),
        ("lookups", dns.max_lookups),
        ("fragments", l.max_fragment_datagrams),
        ("series", l.max_series),
        ("label_values", l.max_label_values),
    ] {
        let labels = crate::metrics::TableLabels { table };
        metrics
            .table_capacity
            .get_or_create(&labels)
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
    }
    let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    metrics
        .memory_limit
        .set(sizing.limit.as_ref().map_or(0, |l| bytes(l.bytes)));
    metrics.memory_budget.set(sizing.budget.map_or(0, bytes));
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::memory::{Fixed, MemoryLimit};

    const MI: u64 = 1 << 20;
    const ANALYZE: Fixed = Fixed {
        interfaces: 0,
        ring_size: 0,
        extra: 0,
    };

    fn pod_args(flags: &[&str]) -> PodArgs {
        let argv = ["podpath", "analyze"].iter().chain(flags).copied();
        match Cli::try_parse_from(argv).expect("flags parse").command {
            Command::Analyze(a) => a.pod,
            _ => unreachable!(),
        }
    }

    fn limit(bytes: u64) -> Option<MemoryLimit> {
        Some(MemoryLimit {
            bytes,
            source: "/sys/fs/cgroup/memory.max".into(),
        })
    }

    #[test]
    fn auto_budget_is_three_quarters_of_the_cgroup_limit() {
        let args = pod_args(&[]);
        let mut cfg = args.to_config().unwrap();
        let sizing = args.size_for_memory(&mut cfg, ANALYZE, limit(64 * MI));
        assert_eq!(sizing.budget, Some(48 * MI));
        assert_eq!(cfg.limits.max_flows, 7_168);
        assert!(cfg.limits.max_dns_names < 16_384);
        assert!(sizing.estimate <= 48 * MI);
        assert!(
            sizing.describe().contains("budget 48.0 MiB"),
            "{}",
            sizing.describe()
        );
        // No limit: nothing sized.
        let mut cfg = args.to_config().unwrap();
        let sizing = args.size_for_memory(&mut cfg, ANALYZE, None);
        assert_eq!(sizing.budget, None);
        assert_eq!(cfg.limits.max_flows, 57_344);
    }

    #[test]
    fn explicit_tables_and_budgets_win() {
        let args = pod_args(&["--max-flows", "1000", "--memory-budget", "48Mi"]);
        let mut cfg = args.to_config().unwrap();
        // The flag's budget wins over the cgroup's limit.
        let sizing = args.size_for_memory(&mut cfg, ANALYZE, limit(1 << 40));
        assert_eq!(sizing.budget, Some(48 * MI));
        assert_eq!(cfg.limits.max_flows, 1000);
        let args = pod_args(&["--memory-budget", "off"]);
        let mut cfg = args.to_config().unwrap();
        let sizing = args.size_for_memory(&mut cfg, ANALYZE, limit(32 * MI));
        assert_eq!(sizing.budget, None);
        assert_eq!(cfg.limits.max_flows, 57_344);
        assert!(sizing.estimate > 32 * MI);
    }

    #[test]
    fn bad_budgets_and_zero_tables_are_refused() {
        let argv = ["podpath", "analyze", "--memory-budget", "12MB"];
        let err = Cli::try_parse_from(argv).unwrap_err().to_string();
        assert!(err.contains("96Mi"), "{err}");
        assert!(pod_args(&["--max-dns-names", "0"]).to_config().is_err());
    }

    #[test]
    fn capacities_and_limits_are_exported() {
        let args = pod_args(&[]);
        let mut cfg = args.to_config().unwrap();
        let sizing = args.size_for_memory(&mut cfg, ANALYZE, limit(64 * MI));
        let metrics = crate::metrics::Metrics::new();
        export_sizing(&metrics, &cfg, &sizing);
        let text = metrics.encode(false);
        for line in [
            "podpath_table_capacity{table=\"flows\"} 7168",
            "podpath_table_capacity{table=\"series\"}",
            "podpath_memory_limit_bytes 67108864",
            "podpath_memory_budget_bytes 50331648",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
