//! `podpath webhook`: the mutating admission webhook (see `crate::webhook`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::inject::SidecarArgs;
use super::run::{init_logging, LogFormat};
use crate::webhook::metrics::WebhookMetrics;
use crate::webhook::server::{health_router, reload_loop, review_router, serve};
use crate::webhook::tls::CertStore;
use crate::webhook::Webhook;

#[derive(Args, Debug)]
pub struct WebhookArgs {
    /// HTTPS address the API server calls (`POST /inject`).
    #[arg(long, env = "PODPATH_LISTEN", default_value = "[::]:9443")]
    pub listen: SocketAddr,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, env = "PODPATH_HEALTH_LISTEN", default_value = "[::]:9808")]
    pub health_listen: SocketAddr,
    /// PEM certificate chain, the serving certificate first.
    #[arg(long, env = "PODPATH_TLS_CERT_FILE")]
    pub tls_cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    #[arg(long, env = "PODPATH_TLS_PRIVATE_KEY_FILE")]
    pub tls_private_key_file: PathBuf,
    /// Seconds between checks of the certificate and key files for a new pair.
    #[arg(long, env = "PODPATH_TLS_RELOAD_INTERVAL", default_value_t = 10.0)]
    pub tls_reload_interval: f64,
    /// Seconds to keep serving after SIGTERM before closing, while the
    /// Service's endpoints drop this pod.
    #[arg(long, env = "PODPATH_SHUTDOWN_DELAY", default_value_t = 5.0)]
    pub shutdown_delay: f64,
    /// Log format.
    #[arg(long, env = "PODPATH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "PODPATH_LOG", default_value = "info")]
    pub log: String,
    #[command(flatten)]
    pub sidecar: SidecarArgs,
}

fn seconds(name: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero() || name == "--shutdown-delay")
        .with_context(|| format!("{name} must be a positive number of seconds, got {v}"))
}

pub fn run(args: WebhookArgs) -> Result<i32> {
    init_logging(args.log_format, &args.log);
    let reload_interval = seconds("--tls-reload-interval", args.tls_reload_interval)?;
    let shutdown_delay = seconds("--shutdown-delay", args.shutdown_delay)?;
    let opts = args.sidecar.options();
    let webhook = Arc::new(Webhook::new(&opts).context("the sidecar settings")?);
    let store = CertStore::load(&args.tls_cert_file, &args.tls_private_key_file)?;
    let acceptor = TlsAcceptor::from(Arc::new(
        store.server_config().context("the TLS configuration")?,
    ));
    let metrics = Arc::new(WebhookMetrics::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("{}: cannot listen", args.listen))?;
        let health = TcpListener::bind(args.health_listen)
            .await
            .with_context(|| format!("{}: cannot listen", args.health_listen))?;
        tracing::info!(
            listen = %args.listen,
            health_listen = %args.health_listen,
            image = %opts.image,
            native_sidecar = opts.native_sidecar,
            "podpath webhook serving POST /inject"
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let reviews = tokio::spawn(serve(
            listener,
            Some(acceptor),
            review_router(webhook, metrics.clone()),
            stopped.clone(),
        ));
        let probes = tokio::spawn(serve(
            health,
            None,
            health_router(metrics.clone()),
            stopped.clone(),
        ));
        let reload = tokio::spawn(reload_loop(store, metrics, reload_interval, stopped));
        super::run::wait_for_signal().await;
        tracing::info!(
            delay_seconds = shutdown_delay.as_secs_f64(),
            "signal received; serving until the delay ends, then draining"
        );
        tokio::time::sleep(shutdown_delay).await;
        let _ = stop.send(true);
        let _ = tokio::join!(reviews, probes, reload);
        tracing::info!("stopped");
        Ok(0)
    })
}
