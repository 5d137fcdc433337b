//! The webhook's two listeners: HTTPS `POST /inject` for the API server, and
//! plain HTTP `/healthz`, `/readyz` and `/metrics` for the kubelet and
//! Prometheus (probes cannot present the cluster CA, and must not depend on
//! the certificate being valid).
//!
//! Limits: request bodies at most [`MAX_BODY_BYTES`] (413 past it; a Pod is
//! far smaller, the API server's own limit on an object is 1.5 MiB of etcd
//! value, and a review body carries one object), request heads 16 KiB, TLS
//! handshakes 10 s, idle keep-alive connections closed after 60 s, at most
//! [`MAX_CONNECTIONS`] connections at once.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::metrics::WebhookMetrics;
use super::tls::CertStore;
use super::{Outcome, Webhook};

pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_CONNECTIONS: usize = 256;
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Also the longest a keep-alive connection may sit idle: hyper applies the
/// header-read timeout while it waits for the next request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long in-flight requests get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct AppState {
    webhook: Arc<Webhook>,
    metrics: Arc<WebhookMetrics>,
}

/// `POST /inject`, bodies bounded.
pub fn review_router(webhook: Arc<Webhook>, metrics: Arc<WebhookMetrics>) -> Router {
    Router::new()
        .route("/inject", post(review_handler))
        .with_state(AppState { webhook, metrics })
}

/// `/healthz`, `/readyz` (both 200 while the process serves: the pair was
/// loaded at start, and a refused reload keeps the previous one) and
/// `/metrics`.
pub fn health_router(metrics: Arc<WebhookMetrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route(
            "/metrics",
            get(|State(metrics): State<Arc<WebhookMetrics>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        crate::metrics::PROMETHEUS_CONTENT_TYPE,
                    )],
                    metrics.encode(),
                )
            }),
        )
        .with_state(metrics)
}

async fn review_handler(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let refuse = |status: StatusCode, error: &dyn std::fmt::Display| {
        state.metrics.count(Outcome::BadRequest);
        tracing::warn!(status = status.as_u16(), %error, "review refused");
        (status, format!("{error}\n")).into_response()
    };
    // A declared length past the limit is refused before the body is read:
    // hyper sends `100 Continue` only once the body is polled, so a client
    // that asked for it gets the 413 instead of uploading the body.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format_args!("the body is larger than {MAX_BODY_BYTES} bytes"),
        );
    }
    // Chunked bodies stop being read at the limit.
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let status = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return refuse(status, &e);
        }
    };
    let response = match state.webhook.review(&body) {
        Ok(answer) => {
            state.metrics.count(answer.outcome);
            if answer.outcome == Outcome::Injected {
                tracing::info!(pod = %answer.pod, uid = %answer.uid, outcome = answer.outcome.as_str(), "sidecar added");
            } else {
                tracing::info!(pod = %answer.pod, uid = %answer.uid, outcome = answer.outcome.as_str(), reason = answer.outcome.reason(), "not injected");
            }
            let text = serde_json::to_vec(&answer.body).unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/json")], text).into_response()
        }
        Err(e) => {
            state.metrics.count(Outcome::BadRequest);
            tracing::warn!(bytes = body.len(), error = %e, "review refused");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
    };
    state
        .metrics
        .review_duration
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Serves `app` on `listener`, over TLS when `tls` is given, until
/// `shutdown` turns true; then lets open connections finish their request
/// (graceful HTTP/1 shutdown) for up to [`DRAIN`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _peer)) = accepted else {
            // EMFILE and friends: back off briefly rather than spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES);
            match tls {
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    drive(conn, &mut stop).await;
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    drive(conn, &mut stop).await;
                }
            }
        });
    }
    // Give spawned connections their drain time; the runtime ends them after.
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(MAX_CONNECTIONS as u32)).await;
}

/// Runs one connection; on shutdown, finishes the request in flight and
/// closes instead of waiting for the next.
async fn drive<C>(conn: C, stop: &mut watch::Receiver<bool>)
where
    C: Future + GracefulConnection,
{
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful();
    let _ = tokio::time::timeout(DRAIN, conn).await;
}

/// hyper's `graceful_shutdown`, whose connection type is generic over the
/// I/O and the service.
trait GracefulConnection {
    fn graceful(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulConnection for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Polls the certificate files every `interval` until `shutdown`.
pub async fn reload_loop(
    store: Arc<CertStore>,
    metrics: Arc<WebhookMetrics>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tick.tick() => {}
        }
        // File reads are small and rare: blocking the worker for them is
        // cheaper than a spawn_blocking round trip.
        match store.reload_if_changed() {
            Ok(false) => {}
            Ok(true) => {
                metrics
                    .tls_reloads
                    .get_or_create(&super::metrics::ResultLabels { result: "ok" })
                    .inc();
                tracing::info!("certificate and key reloaded");
            }
            Err(e) => {
                metrics
                    .tls_reloads
                    .get_or_create(&super::metrics::ResultLabels { result: "error" })
                    .inc();
                tracing::warn!(error = %e.chain(), "certificate reload refused; the previous pair stays in use");
            }
        }
    }
}
