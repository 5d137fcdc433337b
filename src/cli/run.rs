//! `podpath run`: the live sidecar. Captures on the pod's interfaces, feeds
//! the engine on this thread, and serves `/metrics`, `/healthz` and `/readyz`
//! from a small tokio runtime on another, so a slow scraper never stalls
//! capture.
//!
//! podpath is an observer: nothing that goes wrong with capture may harm
//! the app's pod. An interface it cannot capture is reported
//! (`podpath_capture_up{interface} 0`, `podpath_capture_error_info`) and
//! retried with backoff; the process keeps serving, `/healthz` and
//! `/readyz` stay 200. Only bad flags (and a port it cannot listen on) end
//! it with an error.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use super::ptr::{self as ptr_lookups, LiteralWatch, ResolveLiterals};
use super::{server, PodArgs};
use crate::capture::health::{FailReason, Health};
use crate::capture::live::{CaptureMode, LiveConfig, LiveSource};
use crate::capture::privilege::Raise;
use crate::capture::{Next, PacketSource};
use crate::dns::k8s::NameSource;
use crate::engine::destinations::FedName;
use crate::engine::{Engine, Event, Sink};
use crate::metrics::{CaptureErrorLabels, InterfaceLabels, Metrics, MetricsSink};
use crate::ptr::PtrConfig;

/// podpath's metrics port: clear of Prometheus (9090), node-exporter (9100)
/// and common app ports. `[::]` with IPV6_V6ONLY off takes IPv4 too (as
/// v4-mapped addresses), so probes and scrapes reach it on IPv4-only,
/// dual-stack and IPv6-only clusters alike.
pub const DEFAULT_LISTEN: &str = "[::]:9809";

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum PureAcks {
    Drop,
    Keep,
}

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
    /// Address of the metrics and health endpoints. `[::]` (the default) takes IPv4 too; where the namespace has no IPv6, podpath falls back to 0.0.0.0 and logs it.
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
    /// TCP segments with no SYN, FIN, RST or payload (pure ACKs, keepalive probes): `keep` them (the default: they keep an idle pooled connection alive in podpath's table, so it keeps its attribution), or `drop` them in the kernel (about 1 % less CPU on a mixed load where they are 14 % of frames; a connection that only exchanges keepalives for longer than the TCP idle timeout, 300 s, is forgotten and joined again, with a fresh attribution and no HPACK context, when it next carries data).
    #[arg(long, env = "PODPATH_PURE_ACKS", value_enum, default_value = "keep")]
    pub pure_acks: PureAcks,
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

pub fn run(mut args: RunArgs) -> Result<i32> {
    // First, before any thread exists: capabilities belong to a thread and
    // new threads copy their creator's. The image's binary carries
    // cap_net_raw+p (no effective flag, so execve succeeds even where the
    // bounding set lacks NET_RAW); NET_RAW becomes effective only here.
    let raised = crate::capture::privilege::raise_net_raw();
    init_logging(args.log_format, &args.log);
    match raised {
        Ok(Raise::Raise) => tracing::debug!("CAP_NET_RAW raised from permitted to effective"),
        Ok(Raise::AlreadyEffective | Raise::NotPermitted) => {}
        // Fail-open: capture then reports the refused socket and its cause.
        Err(e) => tracing::warn!(error = %e, "could not make CAP_NET_RAW effective"),
    }
    let pod_env = super::PodEnvironment::from_process();
    let mut cfg = args.pod.to_config_in(&pod_env)?;
    let detected = pod_env.describe(&cfg);
    cfg.exclude_ports.push(args.listen.port());
    // Bound before the capture starts, so the engine knows the socket's
    // traffic from its first frame.
    let ptr_socket = match args.resolve_literals {
        ResolveLiterals::Off => None,
        ResolveLiterals::Ptr => ptr_socket(cfg.dns_servers.first().copied()),
    };
    if let Some((_, own)) = &ptr_socket {
        cfg.own_dns = Some(*own);
    }
    // Each capture interface gets a ring; in a pod that is eth0 and lo.
    let rings =
        crate::capture::live::choose_interfaces(&pnet_datalink::interfaces(), &args.interfaces)
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
        drop_pure_acks: args.pure_acks == PureAcks::Drop,
        // Dropped in the kernel; the engine's tuple match stays for ICMP
        // errors about the queries (and any frame the filter passes).
        own_dns: cfg.own_dns.map(|o| (o.port, o.server)),
        stop: stop.clone(),
        ..LiveConfig::default()
    };
    // Listening first: a port that is taken is the one start-up failure
    // that is not capture's, and it should end the process before capture
    // opens anything.
    let listener = bind_listener(args.listen)?;
    // Opens what it can; an interface it cannot capture is a state, not an
    // error (only an impossible --interface list is).
    let mut source = LiveSource::start(&live)?;
    let interfaces: Vec<String> = source.interface_names().map(str::to_string).collect();

    let mut registry = Metrics::new();
    let ptr_metrics = ptr_socket.as_ref().map(|_| registry.register_ptr());
    let metrics = Arc::new(registry);
    super::export_sizing(&metrics, &cfg, &sizing);
    for name in &interfaces {
        let labels = InterfaceLabels {
            interface: name.clone(),
        };
        metrics.capture.packets.get_or_create(&labels).inc_by(0);
        metrics.capture.drops.get_or_create(&labels).inc_by(0);
    }
    let mut exported: Vec<Option<Option<FailReason>>> = vec![None; interfaces.len()];
    let status = server::Status::default();
    export_health(&source, &metrics, &status, &mut exported);

    let limits = cfg.limits.clone();
    let metrics_sink =
        MetricsSink::new(metrics.clone(), limits.max_label_values, limits.max_series)
            .with_names(cfg.names, &cfg.name_salt);
    let described = PodArgs::describe(&cfg);
    let origins = cfg.origins.describe();
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
    let capturing: Vec<&str> = source
        .health()
        .filter(|(_, h)| h.is_up())
        .map(|(n, _)| n)
        .collect();
    tracing::info!(
        interfaces = %interfaces.join(","),
        capturing = %capturing.join(","),
        capture_mode = ?source.mode(),
        listen = %listener.local_addr().map_or_else(|_| args.listen.to_string(), |a| a.to_string()),
        detected = %detected.join("; "),
        config = %described.join("; "),
        origins = %origins,
        missing = %missing.join("; "),
        guessed = %guessed.join("; "),
        "podpath started"
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
        listener,
        metrics.clone(),
        status.clone(),
        stop.clone(),
        lookups,
    )?;

    // Kernel counters are exported once a second of packet time (the
    // kernel stamps frames with the wall clock; no clock read per packet).
    // A clock stepped back by more than a second re-arms the timer.
    // Failed interfaces are retried (with their backoff) on the same tick.
    const SECOND: u64 = 1_000_000_000;
    let mut next_stats: u64 = 0;
    let mut reported: Vec<(u64, u64)> = vec![(0, 0); interfaces.len()];
    let mut source_error_logged = false;
    loop {
        let now = match source.next_packet() {
            Ok(Next::Packet(p)) => {
                engine.process(&p, &mut sink);
                p.ts.0
            }
            Ok(Next::Idle { now }) => {
                engine.advance(now, &mut sink);
                now.0
            }
            Ok(Next::End) => break,
            // The live source reports failures as interface states; should
            // it ever return an error, waiting and going on beats exiting.
            Err(e) => {
                if !source_error_logged {
                    source_error_logged = true;
                    tracing::error!(error = %e, "capture error; going on");
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if now >= next_stats || now.saturating_add(2 * SECOND) < next_stats {
            next_stats = now.saturating_add(SECOND);
            source.maintain();
            export_health(&source, &metrics, &status, &mut exported);
            export_capture_stats(&mut source, &metrics, &mut reported);
        }
    }
    export_capture_stats(&mut source, &metrics, &mut reported);
    engine.finish(&mut sink);
    // Closes the channel: the PTR task ends.
    drop(sink);
    stop.store(true, Ordering::SeqCst);
    drop(server);
    tracing::info!("stopped");
    Ok(0)
}

/// Sets `podpath_capture_up` and `podpath_capture_error_info` where an
/// interface's state changed since the last call (`exported`: the reason
/// last exported per interface, `Some(None)` for up, `None` before any).
fn export_health(
    source: &LiveSource,
    metrics: &Metrics,
    status: &server::Status,
    exported: &mut [Option<Option<FailReason>>],
) {
    export_states(|| source.health(), metrics, status, exported);
}

/// `export_health` over any list of interface states.
fn export_states<'a, I: Iterator<Item = (&'a str, &'a Health)>>(
    health: impl Fn() -> I,
    metrics: &Metrics,
    status: &server::Status,
    exported: &mut [Option<Option<FailReason>>],
) {
    let changed = health()
        .zip(exported.iter())
        .any(|((_, h), last)| *last != Some(h.reason()));
    if !changed {
        return;
    }
    let mut text = String::new();
    for (name, health) in health() {
        use std::fmt::Write as _;
        let _ = match health.failure() {
            None => writeln!(text, "{name}: capturing"),
            Some(f) => writeln!(
                text,
                "{name}: not capturing ({}): {}; remedy: {}",
                f.reason,
                f.detail,
                f.reason.remedy()
            ),
        };
    }
    match status.write() {
        Ok(mut s) => *s = text,
        Err(e) => *e.into_inner() = text,
    }
    for ((name, health), last) in health().zip(exported.iter_mut()) {
        let reason = health.reason();
        if *last == Some(reason) {
            continue;
        }
        let interface = name.to_string();
        if let Some(Some(old)) = *last {
            metrics.capture.error_info.remove(&CaptureErrorLabels {
                interface: interface.clone(),
                reason: old.as_str(),
            });
        }
        if let Some(r) = reason {
            metrics
                .capture
                .error_info
                .get_or_create(&CaptureErrorLabels {
                    interface: interface.clone(),
                    reason: r.as_str(),
                })
                .set(1);
        }
        metrics
            .capture
            .up
            .get_or_create(&InterfaceLabels { interface })
            .set(i64::from(reason.is_none()));
        *last = Some(reason);
    }
}

/// The metrics listener. For the unspecified IPv6 address (the default,
/// `[::]`) a dual-stack socket (IPV6_V6ONLY off, whatever
/// net.ipv6.bindv6only says); where the namespace has no IPv6 at all, the
/// same port on 0.0.0.0, logged. Any other address is taken as given.
fn bind_listener(listen: SocketAddr) -> Result<std::net::TcpListener> {
    listen_with(listen, |addr| {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        if addr.is_ipv6() {
            socket.set_only_v6(!addr.ip().is_unspecified())?;
        }
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(128)?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    })
}

/// `bind_listener`'s choice of address, over any way to bind.
fn listen_with<L>(
    listen: SocketAddr,
    bind: impl Fn(SocketAddr) -> std::io::Result<L>,
) -> Result<L> {
    match bind(listen) {
        Ok(l) => Ok(l),
        Err(e)
            if listen.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                && e.kind() != std::io::ErrorKind::AddrInUse =>
        {
            let v4 = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), listen.port());
            tracing::warn!(
                error = %e,
                fallback = %v4,
                "no IPv6 in this network namespace: listening on IPv4 only"
            );
            bind(v4).with_context(|| format!("cannot listen on {listen} nor on {v4}"))
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {listen}")),
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
    server: Option<IpAddr>,
) -> Option<(std::net::UdpSocket, crate::config::OwnDnsClient)> {
    let Some(server) = server else {
        tracing::warn!("PTR lookups off: no resolv.conf nameserver names the pod's resolver");
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
        metrics.capture.packets.get_or_create(&labels).inc_by(rx);
        metrics.capture.drops.get_or_create(&labels).inc_by(drops);
        *prev = (s.received, s.dropped);
        if drops > 0 {
            tracing::warn!(interface = %labels.interface, drops, "kernel dropped packets: podpath's counts are incomplete");
        }
    }
}

/// Serves HTTP on its own thread; SIGTERM/SIGINT set `stop`.
fn spawn_server(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
    status: server::Status,
    stop: Arc<AtomicBool>,
    background: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
) -> Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(listener).context("registering the listener")?
    };
    let app = server::router(metrics, status);
    let handle = std::thread::Builder::new()
        .name("podpath-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                if let Some(task) = background {
                    tokio::spawn(task);
                }
                // The capture loop polls `stop`; the server waits on the
                // signal itself, so an idle sidecar has no timer to wake
                // for. At the end of capture the process exits, server and all.
                let stopped = async move {
                    wait_for_signal().await;
                    tracing::info!("signal received, stopping");
                    stop.store(true, Ordering::SeqCst);
                };
                server::serve(listener, app, stopped).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn capture_states_become_one_up_series_and_at_most_one_reason_per_interface() {
        let metrics = Metrics::new();
        let status = server::Status::default();
        let mut exported = vec![None; 2];
        let t0 = std::time::Instant::now();
        let lo = Health::default();
        let mut eth0 = Health::default();
        let scrape = |m: &Metrics| -> Vec<String> {
            m.encode(false)
                .lines()
                .filter(|l| {
                    l.starts_with("podpath_capture_up{")
                        || l.starts_with("podpath_capture_error_info{")
                })
                .map(str::to_string)
                .collect::<std::collections::BTreeSet<String>>()
                .into_iter()
                .collect::<Vec<_>>()
        };
        let text = |s: &server::Status| s.read().unwrap().clone();
        let mut export = |eth0: &Health| {
            let list = [("lo", &lo), ("eth0", eth0)];
            export_states(|| list.iter().copied(), &metrics, &status, &mut exported);
        };

        eth0.failed(FailReason::PermissionDenied, "needs CAP_NET_RAW".into(), t0);
        export(&eth0);
        assert_eq!(
            scrape(&metrics),
            [
                r#"podpath_capture_error_info{interface="eth0",reason="permission_denied"} 1"#,
                r#"podpath_capture_up{interface="eth0"} 0"#,
                r#"podpath_capture_up{interface="lo"} 1"#,
            ]
        );
        assert_eq!(
            text(&status),
            format!(
                "lo: capturing\neth0: not capturing (permission_denied): needs CAP_NET_RAW; remedy: {}\n",
                FailReason::PermissionDenied.remedy()
            )
        );
        // A new reason replaces the old series; it does not add one.
        eth0.failed(FailReason::InterfaceMissing, "gone".into(), t0);
        export(&eth0);
        let now = scrape(&metrics);
        assert!(now.contains(
            &r#"podpath_capture_error_info{interface="eth0",reason="interface_missing"} 1"#
                .to_string()
        ));
        assert_eq!(
            now.iter().filter(|l| l.contains("error_info")).count(),
            1,
            "{now:?}"
        );
        // Recovered: up, and no reason left.
        eth0.up();
        export(&eth0);
        assert_eq!(
            scrape(&metrics),
            [
                r#"podpath_capture_up{interface="eth0"} 1"#,
                r#"podpath_capture_up{interface="lo"} 1"#,
            ]
        );
        assert_eq!(text(&status), "lo: capturing\neth0: capturing\n");
    }

    #[test]
    fn the_default_falls_back_to_ipv4_only_without_ipv6() {
        let no_v6 = |a: SocketAddr| {
            if a.is_ipv6() {
                Err(Error::from_raw_os_error(libc::EAFNOSUPPORT))
            } else {
                Ok(a)
            }
        };
        let got = listen_with(addr(DEFAULT_LISTEN), no_v6).unwrap();
        assert_eq!(got, addr("0.0.0.0:9809"));
        // An address asked for explicitly is never changed.
        let err = listen_with(addr("[fd00::1]:9809"), no_v6).unwrap_err();
        assert!(
            err.to_string().contains("cannot listen on [fd00::1]:9809"),
            "{err}"
        );
        // A taken port is not a missing stack: no fallback.
        let taken =
            |_: SocketAddr| -> std::io::Result<SocketAddr> { Err(ErrorKind::AddrInUse.into()) };
        let err = listen_with(addr(DEFAULT_LISTEN), taken).unwrap_err();
        assert_eq!(err.to_string(), "cannot listen on [::]:9809");
    }

    #[test]
    fn the_default_listener_takes_ipv4_and_ipv6() {
        // Port 0: any free port, on both stacks of this namespace.
        let listener = bind_listener(addr("[::]:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        for to in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
            std::net::TcpStream::connect(addr(&to)).unwrap_or_else(|e| panic!("{to}: {e}"));
        }
    }
}
