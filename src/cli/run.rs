//! `podpath run`: the live sidecar. Captures on the pod's interfaces, feeds
//! the engine on this thread, and serves `/metrics`, `/healthz` and `/readyz`
//! from a small tokio runtime on another, so a slow scraper never stalls
//! capture.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use super::{server, PodArgs};
use crate::capture::live::{CaptureMode, LiveConfig, LiveSource};
use crate::capture::{Next, PacketSource};
use crate::engine::Engine;
use crate::metrics::{InterfaceLabels, Metrics, MetricsSink};

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
        stop: stop.clone(),
        ..LiveConfig::default()
    };
    let mut source = LiveSource::open(&live).map_err(|e| anyhow::anyhow!("{e}"))?;
    let interfaces: Vec<String> = source.interface_names().map(str::to_string).collect();

    let metrics = Arc::new(Metrics::new());
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
    let mut sink = MetricsSink::new(metrics.clone(), limits.max_label_values, limits.max_series)
        .with_names(cfg.names, &cfg.name_salt);
    let described = PodArgs::describe(&cfg);
    let mut engine = Engine::new(cfg);
    if let Some(addr) = kube_api {
        engine.learn_service_address(addr, Some("kubernetes"), Some("default"));
    }
    let missing = missing_facts(engine.config());
    tracing::info!(
        interfaces = %interfaces.join(","),
        capture_mode = ?source.mode(),
        listen = %args.listen,
        detected = %detected.join("; "),
        config = %described.join("; "),
        missing = %missing.join("; "),
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

    let server = spawn_server(
        args.listen,
        metrics.clone(),
        capturing.clone(),
        stop.clone(),
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

fn missing_facts(cfg: &crate::config::PodConfig) -> Vec<String> {
    let mut missing = Vec::new();
    if cfg.service_cidrs.is_empty() {
        missing.push("no --service-cidr: literal ClusterIPs are recognised only once DNS answers or the kube-dns address reveal them".to_string());
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

async fn wait_for_signal() {
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
