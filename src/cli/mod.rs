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
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::config::memory::{self, BudgetArg, MemoryLimit};
use crate::config::{normalize_domain, NamePolicy, Origin, Origins, PodConfig, Setting};
use crate::dns::ResolvConf;

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
    /// resolv.conf ndots [default: resolv.conf's, else 5].
    #[arg(long, env = "PODPATH_NDOTS")]
    pub ndots: Option<u8>,
    /// Read nameservers, search list and ndots from this resolv.conf (flags and variables given win).
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
    /// Which of the values above came from a flag and which from a variable.
    #[arg(skip)]
    pub origins: ArgOrigins,
}

/// Flag or `PODPATH_*` variable, per argument, as clap saw them.
#[derive(Clone, Debug, Default)]
pub struct ArgOrigins(Vec<(&'static str, Origin)>);

impl ArgOrigins {
    /// The arguments whose origin the configuration keeps (clap's ids).
    const IDS: [&'static str; 6] = [
        "pod_ips",
        "namespace",
        "cluster_domain",
        "search",
        "ndots",
        "resolv_conf",
    ];

    fn from_matches(m: &ArgMatches) -> Self {
        ArgOrigins(
            Self::IDS
                .iter()
                .filter_map(|&id| match m.value_source(id)? {
                    ValueSource::CommandLine => Some((id, Origin::Flag)),
                    ValueSource::EnvVariable => Some((id, Origin::Env)),
                    _ => None,
                })
                .collect(),
        )
    }

    /// The origin of argument `id`, which holds a value. Arguments parsed
    /// without their matches (built in code) count as flags.
    fn of(&self, id: &str) -> Origin {
        self.0
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(Origin::Flag, |&(_, o)| o)
    }
}

impl Cli {
    /// Parses `argv` as [`Parser::try_parse_from`] does, and keeps which
    /// pod settings came from flags and which from variables.
    pub fn try_parse_with_origins<I, T>(argv: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = <Cli as CommandFactory>::command().try_get_matches_from(argv)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        let pod = match &mut cli.command {
            Command::Analyze(a) => Some(&mut a.pod),
            Command::Run(r) => Some(&mut r.pod),
            _ => None,
        };
        if let (Some(pod), Some((_, sub))) = (pod, matches.subcommand()) {
            pod.origins = ArgOrigins::from_matches(sub);
        }
        Ok(cli)
    }
}

/// What the pod's own environment says: the downward API variables and the
/// resolv.conf the kubelet wrote. Only `run` reads it: `analyze` runs
/// anywhere, where these describe some other machine.
#[derive(Clone, Debug, Default)]
pub struct PodEnvironment {
    /// `POD_NAMESPACE`.
    pub namespace: Option<String>,
    /// `POD_IPS` or else `POD_IP`: (variable, addresses).
    pub pod_ips: Option<(&'static str, Vec<IpAddr>)>,
    /// `POD_NAME` (logged only).
    pub pod_name: Option<String>,
    /// `/etc/resolv.conf`, when it exists.
    pub resolv_conf: Option<String>,
}

impl PodEnvironment {
    /// Reads the process's environment and `/etc/resolv.conf`'s presence.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let pod_ips = ["POD_IPS", "POD_IP"].into_iter().find_map(|name| {
            let ips: Vec<IpAddr> = var(name)?
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect();
            (!ips.is_empty()).then_some((name, ips))
        });
        let resolv = "/etc/resolv.conf";
        PodEnvironment {
            namespace: var("POD_NAMESPACE"),
            pod_ips,
            pod_name: var("POD_NAME"),
            resolv_conf: std::path::Path::new(resolv)
                .exists()
                .then(|| resolv.to_string()),
        }
    }

    /// What was taken from it, for the start-up log.
    pub fn describe(&self, cfg: &PodConfig) -> Vec<String> {
        let mut used = Vec::new();
        if cfg.origins.namespace == Origin::DownwardApi {
            if let Some(ns) = &cfg.namespace {
                used.push(format!("namespace {ns} (POD_NAMESPACE)"));
            }
        }
        if let (Origin::DownwardApi, Some((var, ips))) = (cfg.origins.pod_ips, &self.pod_ips) {
            let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
            used.push(format!("pod IP {} ({var})", ips.join(",")));
        }
        if let Some(name) = &self.pod_name {
            used.push(format!("pod {name} (POD_NAME)"));
        }
        used
    }
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
    /// Builds the pod configuration from the flags and variables alone.
    pub fn to_config(&self) -> Result<PodConfig> {
        self.to_config_in(&PodEnvironment::default())
    }

    /// Builds the pod configuration, the one place its sources meet: each
    /// value is taken from the highest-ranked source that has it (flag >
    /// variable > downward API > resolv.conf > inferred > default, see
    /// [`Origin`]) and normalised here, once.
    pub fn to_config_in(&self, env: &PodEnvironment) -> Result<PodConfig> {
        let given = |id: &str, present: bool| present.then(|| self.origins.of(id));
        let mut pod_ips = Setting::new(Vec::new());
        if let Some(o) = given("pod_ips", !self.pod_ips.is_empty()) {
            pod_ips.offer(o, Some(self.pod_ips.clone()));
        }
        pod_ips.offer(
            Origin::DownwardApi,
            env.pod_ips.as_ref().map(|(_, ips)| ips.clone()),
        );
        let mut namespace = Setting::new(None);
        let flag_namespace = self.namespace.as_deref().and_then(normalize_domain);
        if let Some(o) = given("namespace", flag_namespace.is_some()) {
            namespace.offer(o, Some(flag_namespace));
        }
        let env_namespace = env.namespace.as_deref().and_then(normalize_domain);
        namespace.offer(Origin::DownwardApi, env_namespace.map(Some));
        let mut cluster_domain = Setting::new(None);
        let flag_domain = self.cluster_domain.as_deref().and_then(normalize_domain);
        if let Some(o) = given("cluster_domain", flag_domain.is_some()) {
            cluster_domain.offer(o, Some(flag_domain));
        }
        let mut search = Setting::new(Vec::new());
        let flag_search: Vec<String> = self
            .search
            .iter()
            .filter_map(|s| normalize_domain(s))
            .collect();
        if let Some(o) = given("search", !flag_search.is_empty()) {
            search.offer(o, Some(flag_search));
        }
        let mut ndots = Setting::new(5);
        if let Some(o) = given("ndots", self.ndots.is_some()) {
            ndots.offer(o, self.ndots);
        }
        let mut dns_servers = Setting::new(Vec::new());
        if let Some(rc) = self.read_resolv_conf(env)? {
            dns_servers.offer(Origin::File, Some(rc.nameservers));
            let file_search: Vec<String> = rc
                .search
                .iter()
                .filter_map(|s| normalize_domain(s))
                .collect();
            search.offer(
                Origin::File,
                (!file_search.is_empty()).then_some(file_search),
            );
            ndots.offer(Origin::File, rc.ndots);
        }
        let mut cfg = PodConfig {
            service_cidrs: self.service_cidrs.iter().map(IpNet::trunc).collect(),
            pod_cidrs: self.pod_cidrs.iter().map(IpNet::trunc).collect(),
            exclude_ports: self.exclude_ports.clone(),
            names: match self.dns_names {
                NamesArg::Keep => NamePolicy::Keep,
                NamesArg::Hash => NamePolicy::Hash,
                NamesArg::Drop => NamePolicy::Drop,
            },
            name_salt: self.dns_name_salt.clone(),
            origins: Origins {
                pod_ips: pod_ips.origin,
                namespace: namespace.origin,
                cluster_domain: cluster_domain.origin,
                search: search.origin,
                ndots: ndots.origin,
                dns_servers: dns_servers.origin,
            },
            pod_ips: pod_ips.value,
            namespace: namespace.value,
            cluster_domain: cluster_domain.value,
            search: search.value,
            ndots: ndots.value,
            dns_servers: dns_servers.value,
            ..PodConfig::default()
        };
        if cfg.search.is_empty() && !cfg.effective_search().is_empty() {
            cfg.origins.search = Origin::Inferred;
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

    /// The resolv.conf to read: the one given (unreadable is an error), else
    /// the pod's own (unreadable is logged: only bad flags end `run`).
    fn read_resolv_conf(&self, env: &PodEnvironment) -> Result<Option<ResolvConf>> {
        if let Some(path) = &self.resolv_conf {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{path}: cannot read resolv.conf"))?;
            return Ok(Some(crate::dns::resolv::parse(&text)));
        }
        let Some(path) = &env.resolv_conf else {
            return Ok(None);
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(crate::dns::resolv::parse(&text))),
            Err(e) => {
                tracing::warn!(
                    path,
                    error = %e,
                    "cannot read resolv.conf: the search list is inferred from the first cluster query"
                );
                Ok(None)
            }
        }
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
            .limits
            .table_capacity
            .get_or_create(&labels)
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
    }
    let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    metrics
        .limits
        .memory_limit
        .set(sizing.limit.as_ref().map_or(0, |l| bytes(l.bytes)));
    metrics
        .limits
        .memory_budget
        .set(sizing.budget.map_or(0, bytes));
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
        match Cli::try_parse_with_origins(argv)
            .expect("flags parse")
            .command
        {
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

    /// A resolv.conf in a fresh directory; removed with the directory.
    struct ResolvFile(std::path::PathBuf);
    impl ResolvFile {
        fn new(tag: &str, text: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("podpath-cfg-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("resolv.conf"), text).unwrap();
            ResolvFile(dir)
        }
        fn path(&self) -> String {
            self.0.join("resolv.conf").to_str().unwrap().to_string()
        }
    }
    impl Drop for ResolvFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const RESOLV: &str = "nameserver 10.96.0.10\nsearch shop.svc.corp.internal svc.corp.internal corp.internal\noptions ndots:2\n";

    /// `--ndots 5` given is kept although resolv.conf says 2 (5 is also the
    /// default, which the value alone cannot tell apart).
    #[test]
    fn explicit_ndots_beats_resolv_conf() {
        let rc = ResolvFile::new("ndots", RESOLV);
        let argv = [
            "podpath",
            "analyze",
            "--resolv-conf",
            &rc.path(),
            "--ndots",
            "5",
        ];
        let Command::Analyze(a) = Cli::try_parse_with_origins(argv).unwrap().command else {
            unreachable!()
        };
        let cfg = a.pod.to_config().unwrap();
        assert_eq!((cfg.ndots, cfg.origins.ndots), (5, Origin::Flag));
        // Not given: the file's.
        let cfg = pod_args(&["--resolv-conf", &rc.path()])
            .to_config()
            .unwrap();
        assert_eq!((cfg.ndots, cfg.origins.ndots), (2, Origin::File));
        assert_eq!(cfg.dns_servers, ["10.96.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(cfg.origins.search, Origin::File);
        // Neither: the default.
        let cfg = pod_args(&[]).to_config().unwrap();
        assert_eq!((cfg.ndots, cfg.origins.ndots), (5, Origin::Default));
    }

    /// Flags and variables over the downward API over resolv.conf over
    /// what is inferred, and names normalised once, here.
    #[test]
    fn sources_rank_and_names_are_normalised_once() {
        let rc = ResolvFile::new("rank", RESOLV);
        let env = PodEnvironment {
            namespace: Some("Team-A".into()),
            pod_ips: Some(("POD_IPS", vec!["10.244.1.7".parse().unwrap()])),
            pod_name: None,
            resolv_conf: Some(rc.path()),
        };
        let args = pod_args(&[
            "--search",
            "A.Example.",
            "--cluster-domain",
            ".Cluster.Local.",
        ]);
        let cfg = args.to_config_in(&env).unwrap();
        assert_eq!(cfg.search, ["a.example"]);
        assert_eq!(cfg.origins.search, Origin::Flag);
        assert_eq!(cfg.cluster_domain.as_deref(), Some("cluster.local"));
        assert_eq!(cfg.namespace.as_deref(), Some("team-a"));
        assert_eq!(cfg.origins.namespace, Origin::DownwardApi);
        assert_eq!(cfg.origins.pod_ips, Origin::DownwardApi);
        assert_eq!((cfg.ndots, cfg.origins.ndots), (2, Origin::File));
        assert_eq!(
            cfg.origins.describe(),
            "pod_ips: downward API, namespace: downward API, cluster_domain: flag, \
             search: flag, ndots: resolv.conf, nameservers: resolv.conf"
        );
        let logged = env.describe(&cfg);
        assert!(
            logged.contains(&"namespace team-a (POD_NAMESPACE)".to_string()),
            "{logged:?}"
        );
        // A flag beats the downward API.
        let cfg = pod_args(&["--namespace", "web", "--pod-ip", "10.244.9.9"])
            .to_config_in(&env)
            .unwrap();
        assert_eq!(cfg.namespace.as_deref(), Some("web"));
        assert_eq!(cfg.pod_ips, ["10.244.9.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            (cfg.origins.namespace, cfg.origins.pod_ips),
            (Origin::Flag, Origin::Flag)
        );
        assert!(env.describe(&cfg).is_empty());
        // No search list anywhere: the Kubernetes one for the namespace.
        let cfg = pod_args(&["--namespace", "web"]).to_config().unwrap();
        assert!(cfg.search.is_empty());
        assert_eq!(cfg.origins.search, Origin::Inferred);
        assert_eq!(cfg.effective_search()[0], "web.svc.cluster.local");
        // The pod's own resolv.conf unreadable: logged, not fatal; given, fatal.
        let gone = PodEnvironment {
            resolv_conf: Some("/nonexistent/resolv.conf".into()),
            ..PodEnvironment::default()
        };
        assert!(pod_args(&[]).to_config_in(&gone).is_ok());
        assert!(pod_args(&["--resolv-conf", "/nonexistent/resolv.conf"])
            .to_config()
            .is_err());
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
