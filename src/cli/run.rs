//! `podpath run`: the live sidecar. Captures on the pod's interfaces, feeds
//! the engine on this thread, and serves `/metrics`, `/healthz` and `/readyz`
//! from a small tokio runtime on another, so a slow scraper never stalls
//! capture.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use super::ptr::{self as ptr_lookups, LiteralWatch, ResolveLiterals};
use super::{server, PodArgs};
use crate::capture::live::{CaptureMode, LiveConfig, LiveSource};
use crate::capture::{Next, PacketSource};
use crate::dns::k8s::NameSource;
use crate::engine::destinations::FedName;
use crate::engine::{Engine, Event, Sink};
use crate::metrics::{InterfaceLabels, Metrics, MetricsSink};
use crate::ptr::PtrConfig;

/// podpath's metrics port: clear of Prometheus (9090), node-exporter (9100)
/// and common app ports.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9809";

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Interface to capture on; repeatable. Default: every interface that is up (in a pod: eth0 and lo).
    #[arg(
        long = "interface",
        short = 'i',
        env = "PODPATH_INTERFACE",
        value_delimiter = ','
    )]
    pub interfaces: Vec<String>,
    /// Address of the metrics and health endpoints.
    #[arg(long, env = "PODPATH_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Log format.
    #[arg(long, env = "PODPATH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "PODPATH_LOG", default_value = "info")]
    pub log: String,
    /// How frames are read: a TPACKET_V3 ring mapped into the process (no system call per frame), one recvmsg() per frame, or auto (the ring, recvmsg if the kernel refuses it).
    #[arg(long, env = "PODPATH_CAPTURE_MODE", value_enum, default_value = "auto")]
    pub capture_mode: CaptureMode,
    /// Ring bytes per interface (ring mode; resident, counts in RSS).
    #[arg(long, env = "PODPATH_RING_SIZE", default_value_t = crate::capture::live::DEFAULT_RING_SIZE)]
    pub ring_size: usize,
    /// Capture socket receive buffer in bytes (recvmsg mode; absorbs bursts).
    #[arg(long, env = "PODPATH_RCVBUF", default_value_t = crate::capture::live::DEFAULT_RCVBUF)]
    pub rcvbuf: usize,
    /// TCP payload bytes kept per segment past the headers (HTTP heads, TLS ClientHello).
    #[arg(long, env = "PODPATH_TCP_PAYLOAD", default_value_t = podpath_afpacket::filter::DEFAULT_TCP_PAYLOAD)]
    pub tcp_payload: u32,
    /// Name the pod IPs and ClusterIPs the app dials by address: `ptr` asks the pod's resolver (first nameserver of resolv.conf) for their PTR records, at most 5 queries a second (bursts of 10), each address cached for its answer's TTL (30 s to 1 h); `off` sends nothing.
    #[arg(
        long,
        env = "PODPATH_RESOLVE_LITERALS",
        value_enum,
        default_value = "ptr"
    )]
    pub resolve_literals: ResolveLiterals,
    #[command(flatten)]
    pub pod: PodArgs,
}

pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: container logs and files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// What the pod's environment says (downward API, resolv.conf), applied
/// where flags left a gap.
fn apply_pod_environment(args: &mut RunArgs) -> Vec<String> {
    let mut detected = Vec::new();
    if args.pod.namespace.is_none() {
        if let Ok(ns) = std::env::var("POD_NAMESPACE") {
            if !ns.is_empty() {
                detected.push(format!("namespace {ns} (POD_NAMESPACE)"));
                args.pod.namespace = Some(ns);
            }
        }
    }
    if args.pod.pod_ips.is_empty() {
        for var in ["POD_IPS", "POD_IP"] {
            if let Ok(v) = std::env::var(var) {
                let ips: Vec<IpAddr> = v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
                if !ips.is_empty() {
                    detected.push(format!("pod IP {v} ({var})"));
                    args.pod.pod_ips = ips;
                    break;
                }
            }
        }
    }
    if args.pod.resolv_conf.is_none() && std::path::Path::new("/etc/resolv.conf").exists() {
        args.pod.resolv_conf = Some("/etc/resolv.conf".into());
    }
    if let Ok(name) = std::env::var("POD_NAME") {
        detected.push(format!("pod {name} (POD_NAME)"));
    }
    detected
}

pub fn run(mut args: RunArgs) -> Result<i32> {
    init_logging(args.log_format, &args.log);
    let detected = apply_pod_environment(&mut args);
    let mut cfg = args.pod.to_config()?;
    cfg.exclude_ports.push(args.listen.port());
    // Bound before the capture starts, so the engine knows the socket's
    // traffic from its first frame.
    let ptr_socket = match args.resolve_literals {
        ResolveLiterals::Off => None,
        ResolveLiterals::Ptr => ptr_socket(args.pod.resolv_conf.as_deref()),
    };
    if let Some((_, own)) = &ptr_socket {
        cfg.own_dns = Some(*own);
    }
    // Each capture interface gets a ring; in a pod that is eth0 and lo.
    let rings =
        crate::capture::live::select_interfaces(pnet_datalink::interfaces(), &args.interfaces)
            .map_or(2, |chosen| chosen.len());
    let fixed = crate::config::memory::Fixed {
        interfaces: rings,
        ring_size: args.ring_size,
        extra: 0,
    };
    let sizing =
        args.pod
            .size_for_memory(&mut cfg, fixed, crate::config::memory::container_limit());
    args.ring_size = sizing.ring_size;
    let kube_api: Option<IpAddr> = std::env::var("KUBERNETES_SERVICE_HOST")
        .ok()
        .and_then(|h| h.parse().ok());

    let stop = Arc::new(AtomicBool::new(false));
    let live = LiveConfig {
        interfaces: args.interfaces.clone(),
        mode: args.capture_mode,
        ring_size: args.ring_size,
        rcvbuf: Some(args.rcvbuf),
        tcp_payload: args.tcp_payload,
        // Dropped in the kernel; the engine's tuple match stays for ICMP
        // errors about the queries (and any frame the filter passes).
        own_dns: cfg.own_dns.map(|o| (o.port, o.server)),
        stop: stop.clone(),
        ..LiveConfig::default()
    };
    let mut source = LiveSource::open(&live).map_err(|e| anyhow::anyhow!("{e}"))?;
    let interfaces: Vec<String> = source.interface_names().map(str::to_string).collect();

    let mut registry = Metrics::new();
    let ptr_metrics = ptr_socket.as_ref().map(|_| registry.register_ptr());
    let metrics = Arc::new(registry);
    super::export_sizing(&metrics, &cfg, &sizing);
    let capturing = Arc::new(AtomicBool::new(true));
    metrics.capture_up.set(1);
    for name in &interfaces {
        let labels = InterfaceLabels {
            interface: name.clone(),
        };
        metrics.capture_packets.get_or_create(&labels).inc_by(0);
        metrics.capture_drops.get_or_create(&labels).inc_by(0);
    }

    let limits = cfg.limits.clone();
    let metrics_sink =
        MetricsSink::new(metrics.clone(), limits.max_label_values, limits.max_series)
            .with_names(cfg.names, &cfg.name_salt);
    let described = PodArgs::describe(&cfg);
    let mut engine = Engine::new(cfg);
    if let Some(addr) = kube_api {
        engine.learn_service_address(addr, Some("kubernetes"), Some("default"));
    }
    let missing = missing_facts(engine.config());
    let guessed: Vec<String> = engine
        .inferences()
        .iter()
        .map(|i| format!("{} = {} from {}", i.what, i.value, i.from))
        .collect();
    tracing::info!(
        interfaces = %interfaces.join(","),
        capture_mode = ?source.mode(),
        listen = %args.listen,
        detected = %detected.join("; "),
        config = %described.join("; "),
        missing = %missing.join("; "),
        guessed = %guessed.join("; "),
        "podpath capturing"
    );
    tracing::info!(
        max_flows = limits.max_flows,
        max_dns_names = limits.max_dns_names,
        max_series = limits.max_series,
        ring_size = sizing.ring_size,
        "{}",
        sizing.describe()
    );
    if sizing.budget.is_some_and(|b| sizing.estimate > b) {
        tracing::warn!(
            "even the smallest tables exceed the memory budget: raise the container's memory limit (docs/memory.md)"
        );
    }

    let mut lookups = None;
    let mut watch = None;
    if let (Some((socket, own)), Some(m)) = (ptr_socket, ptr_metrics) {
        let (tx, rx) = ptr_lookups::channel();
        ptr_lookups::touch(&m);
        let ptr_cfg = PtrConfig::default();
        tracing::info!(
            nameserver = %own.server,
            source_port = own.port,
            rate_per_sec = ptr_cfg.rate_per_sec,
            burst = ptr_cfg.burst,
            "naming literal destinations by PTR queries to the pod's resolver (--resolve-literals off to stop)"
        );
        watch = Some(LiteralWatch::new(tx, ptr_cfg.max_entries, m.clone()));
        let feed = engine.name_feed();
        let on_name = move |addr: IpAddr, name: &str| {
            tracing::debug!(%addr, name, "literal destination named by PTR");
            // Full: counted by the engine (table="name_feed").
            let _ = feed.send(FedName {
                addr,
                fqdn: name.to_string(),
                source: NameSource::Ptr,
            });
        };
        lookups = Some(Box::pin(ptr_lookups::serve(
            socket,
            rx,
            ptr_cfg,
            m,
            metrics.clone(),
            on_name,
        ))
            as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);
    }
    let mut sink = RunSink {
        metrics: metrics_sink,
        watch,
    };

    let server = spawn_server(
        args.listen,
        metrics.clone(),
        capturing.clone(),
        stop.clone(),
        lookups,
    )?;

    // Kernel counters are exported once a second of packet time (the
    // kernel stamps frames with the wall clock; no clock read per packet).
    // A clock stepped back by more than a second re-arms the timer.
    const SECOND: u64 = 1_000_000_000;
    let mut next_stats: u64 = 0;
    let mut reported: Vec<(u64, u64)> = vec![(0, 0); interfaces.len()];
    let result = loop {
        let now = match source.next_packet() {
            Ok(Next::Packet(p)) => {
                engine.process(&p, &mut sink);
                p.ts.0
            }
            Ok(Next::Idle { now }) => {
                engine.advance(now, &mut sink);
                now.0
            }
            Ok(Next::End) => break Ok(()),
            Err(e) => break Err(anyhow::anyhow!("{e}")),
        };
        if now >= next_stats || now.saturating_add(2 * SECOND) < next_stats {
            next_stats = now.saturating_add(SECOND);
            export_capture_stats(&mut source, &metrics, &mut reported);
        }
    };
    capturing.store(false, Ordering::SeqCst);
    metrics.capture_up.set(0);
    export_capture_stats(&mut source, &metrics, &mut reported);
    engine.finish(&mut sink);
    // Closes the channel: the PTR task ends.
    drop(sink);
    stop.store(true, Ordering::SeqCst);
    drop(server);
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// The metrics sink, and the hand-off of literal destinations to the PTR
/// lookups when they are on.
struct RunSink {
    metrics: MetricsSink,
    watch: Option<LiteralWatch>,
}

impl Sink for RunSink {
    fn on_event(&mut self, event: &Event<'_>) {
        self.metrics.on_event(event);
        if let Some(w) = self.watch.as_mut() {
            w.on_event(event);
        }
    }
}

/// The PTR lookups' socket, towards the first nameserver of resolv.conf;
/// `None` (logged) when there is none or the socket cannot be made.
fn ptr_socket(
    resolv_conf: Option<&str>,
) -> Option<(std::net::UdpSocket, crate::config::OwnDnsClient)> {
    let Some(path) = resolv_conf else {
        tracing::warn!("PTR lookups off: no resolv.conf to name the pod's resolver");
        return None;
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(path, error = %e, "PTR lookups off: cannot read resolv.conf");
            return None;
        }
    };
    let Some(&server) = crate::dns::resolv::parse(&text).nameservers.first() else {
        tracing::warn!(path, "PTR lookups off: resolv.conf names no nameserver");
        return None;
    };
    match ptr_lookups::bind(server) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(%server, error = %e, "PTR lookups off: cannot open a UDP socket");
            None
        }
    }
}

fn missing_facts(cfg: &crate::config::PodConfig) -> Vec<String> {
    let mut missing = Vec::new();
    if cfg.service_cidrs.is_empty() {
        missing.push("no --service-cidr: guessed around the cluster DNS Service (resolv.conf's nameserver; see `guessed`), and literal ClusterIPs outside it are recognised only once DNS answers reveal them".to_string());
    }
    if cfg.pod_cidrs.is_empty() {
        missing.push("no --pod-cidr: guessed from the pod's own address (/16); literal pod IPs outside it count as external".to_string());
    }
    if cfg.effective_search().is_empty() {
        missing.push(
            "no search list (resolv.conf or POD_NAMESPACE): inferred from the first cluster query"
                .to_string(),
        );
    }
    if cfg.pod_ips.is_empty() {
        missing.push(
            "no POD_IP: the pod's address comes from the kernel's packet direction".to_string(),
        );
    }
    missing
}

fn export_capture_stats(source: &mut LiveSource, metrics: &Metrics, reported: &mut [(u64, u64)]) {
    for (i, s) in source.stats().into_iter().enumerate() {
        let Some(prev) = reported.get_mut(i) else {
            continue;
        };
        let labels = InterfaceLabels { interface: s.name };
        let rx = s.received.saturating_sub(prev.0);
        let drops = s.dropped.saturating_sub(prev.1);
        metrics.capture_packets.get_or_create(&labels).inc_by(rx);
        metrics.capture_drops.get_or_create(&labels).inc_by(drops);
        *prev = (s.received, s.dropped);
        if drops > 0 {
            tracing::warn!(interface = %labels.interface, drops, "kernel dropped packets: podpath's counts are incomplete");
        }
    }
}

/// Serves HTTP on its own thread; SIGTERM/SIGINT set `stop`.
fn spawn_server(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    capturing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    background: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
) -> Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("cannot listen on {listen}"))?;
    let app = server::router(metrics, capturing);
    let handle = std::thread::Builder::new()
        .name("podpath-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                if let Some(task) = background {
                    tokio::spawn(task);
                }
                let stop_signal = stop.clone();
                tokio::spawn(async move {
                    wait_for_signal().await;
                    tracing::info!("signal received, stopping");
                    stop_signal.store(true, Ordering::SeqCst);
                });
                server::serve(listener, app, stop).await;
            });
        })
        .context("starting the HTTP thread")?;
    Ok(handle)
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}
