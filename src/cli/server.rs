//! The metrics server: `/metrics`, `/healthz`, `/readyz`, `/status`, on its
//! own thread.
//!
//! `/healthz` and `/readyz` answer 200 while the server serves, whatever
//! capture does: a readiness that followed capture would take the app's pod
//! out of its Services whenever the observer could not observe (capture
//! state is in `/metrics`: `podpath_capture_up{interface}`).
//!
//! It only reads the metrics registry, so however slow or many the clients,
//! capture never waits for it. Limits: GET and HEAD only (others get 405),
//! request heads at most 16 KiB (431 past it), the head must arrive within
//! 5 s, a connection lives at most 30 s, and at most 32 connections at once
//! (more are closed on accept).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};

pub const MAX_CONNECTIONS: usize = 32;
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// hyper's smallest allowed read buffer; bounds a request head.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The text `/status` serves: one line per interface, its capture state
/// and, while down, the cause and the remedy. Written by the capture
/// thread when a state changes, read by the server.
pub type Status = Arc<std::sync::RwLock<String>>;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    status: Status,
}

pub fn router(metrics: Arc<Metrics>, status: Status) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/status", get(status_handler))
        .with_state(AppState { metrics, status })
}

async fn status_handler(State(state): State<AppState>) -> String {
    state
        .status
        .read()
        .map(|s| s.clone())
        .unwrap_or_else(|e| e.into_inner().clone())
}

/// Serves `app` on `listener` until `stopped` completes. A future, not a
/// flag to poll: the poll (a timer every 50 ms) was 44 % of an idle
/// sidecar's CPU.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stopped: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
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
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(slot);
        });
    }
}

async fn metrics_handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let body = state.metrics.encode(openmetrics);
    let ctype = if openmetrics {
        OPENMETRICS_CONTENT_TYPE
    } else {
        PROMETHEUS_CONTENT_TYPE
    };
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    fn start() -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let status = Status::default();
        *status.write().unwrap() = "lo: capturing\n".to_string();
        let app = router(Arc::new(Metrics::new()), status);
        let handle = std::thread::spawn(move || {
            rt.block_on(serve(listener, app, async {
                let _ = stopped.await;
            }))
        });
        (addr, stop, handle)
    }

    fn request(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn only_get_and_head_and_bounded_heads() {
        let (addr, stop, handle) = start();
        let ok = request(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("podpath_build_info"), "{ok}");
        let head = request(
            addr,
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let post = request(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let mut big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 64 * 1024));
        big.extend_from_slice(b"\r\n\r\n");
        let too_big = request(addr, &big);
        assert!(
            too_big.is_empty() || too_big.starts_with("HTTP/1.1 431"),
            "{too_big}"
        );
        // Ready whatever capture does: no series says capture is up here.
        let ready = request(
            addr,
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        let status = request(
            addr,
            b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            status.starts_with("HTTP/1.1 200") && status.ends_with("\r\n\r\nlo: capturing\n"),
            "{status}"
        );
        stop.send(()).unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn idle_and_surplus_connections_do_not_block_a_scrape() {
        let (addr, stop, handle) = start();
        // Fill every slot with clients that never send a request.
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        // Past the cap, a new connection is closed at once rather than queued forever.
        let refused = request(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(refused.is_empty(), "{refused}");
        // The header-read timeout frees the slots; then scrapes work again.
        std::thread::sleep(HEADER_READ_TIMEOUT + Duration::from_secs(1));
        let ok = request(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        drop(idle);
        stop.send(()).unwrap();
        handle.join().unwrap();
    }
}
