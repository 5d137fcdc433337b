//! `podpath run`'s PTR lookups: what the literal destinations the app dials
//! (paths `pod_ip`, `cluster_ip`) are called, asked of the pod's own resolver
//! (the first `nameserver` of resolv.conf, nothing else).
//!
//! The capture thread hands addresses over a bounded channel
//! ([`LiteralWatch`], a sink beside the metrics); a task on the HTTP thread's
//! runtime owns the UDP socket and the resolver state (`crate::ptr`), and
//! hands the names back through `on_name`. The socket is bound before the
//! capture starts, from one port for podpath's lifetime: the capture filter
//! drops exactly that socket's datagrams in the kernel, and the engine them
//! and ICMP errors about them (`config::OwnDnsClient`), so podpath's own
//! queries never show in the app's DNS metrics. Query IDs are random; the
//! fixed source port costs the usual source-port randomisation, acceptable
//! for names that only label metrics.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use tokio::sync::mpsc;

use crate::attribution::Path;
use crate::config::OwnDnsClient;
use crate::engine::{Event, Sink};
use crate::hash::HashMap;
use crate::metrics::{Metrics, PtrMetrics, ReasonLabels, ResultLabels, TableLabels};
use crate::ptr::{build_query, PtrConfig, PtrResolver, PtrResult, Want};
use crate::Timestamp;

/// `--resolve-literals`: how `run` names literal destinations.
#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum ResolveLiterals {
    /// PTR queries to the pod's resolver.
    #[default]
    Ptr,
    /// No queries.
    Off,
}

/// Addresses in flight between the capture thread and the resolver task.
const CHANNEL: usize = 1_024;
/// A literal destination is handed over again at most this often (packet
/// time); the resolver's cache decides whether that costs a query.
const RESEND_SECS: f64 = 30.0;
/// Largest PTR answer read (a UDP DNS message without EDNS is at most 512
/// bytes; servers that send more set TC instead).
const MAX_ANSWER: usize = 4_096;

/// The socket podpath's PTR queries use: a fresh port of the server's
/// family, connected to `server:53` (the kernel then delivers only that
/// server's datagrams).
pub fn bind(server: IpAddr) -> std::io::Result<(UdpSocket, OwnDnsClient)> {
    bind_to(SocketAddr::new(server, 53))
}

fn bind_to(server: SocketAddr) -> std::io::Result<(UdpSocket, OwnDnsClient)> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    socket.set_nonblocking(true)?;
    let port = socket.local_addr()?.port();
    Ok((socket, OwnDnsClient { port, server }))
}

/// The sink that hands literal destinations to the resolver task.
pub struct LiteralWatch {
    tx: mpsc::Sender<IpAddr>,
    /// When each address was last handed over (packet time). Bounded: at
    /// `max` it is emptied (the resolver's own cache still holds the names).
    sent: HashMap<IpAddr, Timestamp>,
    max: usize,
    metrics: PtrMetrics,
}

impl LiteralWatch {
    pub fn new(tx: mpsc::Sender<IpAddr>, max: usize, metrics: PtrMetrics) -> LiteralWatch {
        LiteralWatch {
            tx,
            sent: HashMap::default(),
            max: max.max(1),
            metrics,
        }
    }
}

impl Sink for LiteralWatch {
    fn on_event(&mut self, event: &Event<'_>) {
        let Event::Connection(conn) = event else {
            return;
        };
        if !matches!(conn.attribution.path, Path::PodIp | Path::ClusterIp) {
            return;
        }
        let addr = conn.dst.ip();
        if let Some(at) = self.sent.get(&addr) {
            if conn.ts.secs_since(*at) < RESEND_SECS {
                return;
            }
        }
        if self.sent.len() >= self.max {
            self.sent.clear();
        }
        match self.tx.try_send(addr) {
            Ok(()) => {
                self.sent.insert(addr, conn.ts);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics
                    .dropped
                    .get_or_create(&ReasonLabels {
                        reason: "channel_full",
                    })
                    .inc();
            }
            // The resolver task ended (the process is stopping).
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A channel for [`LiteralWatch`] and the resolver task.
pub fn channel() -> (mpsc::Sender<IpAddr>, mpsc::Receiver<IpAddr>) {
    mpsc::channel(CHANNEL)
}

/// Zero series for every fixed label value, so dashboards see 0, not absent.
pub fn touch(m: &PtrMetrics) {
    for r in PtrResult::ALL {
        m.queries
            .get_or_create(&ResultLabels { result: r.as_str() })
            .inc_by(0);
    }
    for reason in ["queue_full", "channel_full"] {
        m.dropped.get_or_create(&ReasonLabels { reason }).inc_by(0);
    }
    for reason in ["unmatched", "malformed"] {
        m.ignored_answers
            .get_or_create(&ReasonLabels { reason })
            .inc_by(0);
    }
}

/// The resolver task: runs until the channel closes (the capture loop
/// ended). `on_name(addr, fqdn)` is called once per answer that names the
/// address; with several PTR targets (an endpoint of several Services) the
/// first in sorted order, so a name does not flip between answers.
pub async fn serve(
    socket: UdpSocket,
    mut rx: mpsc::Receiver<IpAddr>,
    cfg: PtrConfig,
    ptr_metrics: PtrMetrics,
    metrics: Arc<Metrics>,
    mut on_name: impl FnMut(IpAddr, &str),
) {
    let socket = match tokio::net::UdpSocket::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "PTR lookups off: cannot register the socket");
            return;
        }
    };
    let mut resolver = PtrResolver::new(cfg, Instant::now());
    let mut buf = vec![0u8; MAX_ANSWER];
    let count = |result: PtrResult| {
        ptr_metrics
            .queries
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
    };
    let mut evicted = 0;
    let mut ignored = (0, 0);
    loop {
        let now = Instant::now();
        for outcome in resolver.expire(now) {
            count(outcome.result);
        }
        while let Some((id, addr)) = resolver.next_transmission(now) {
            let sent = match build_query(id, addr) {
                // A UDP send completes at once unless the socket buffer is
                // full (tokio's try_send also fails before the first
                // readiness event, so it is awaited).
                Ok(wire) => socket.send(&wire).await.map(|_| ()),
                Err(e) => Err(std::io::Error::other(e)),
            };
            if let Err(e) = sent {
                tracing::debug!(%addr, error = %e, "PTR query not sent");
                if let Some(o) = resolver.send_failed(id, now) {
                    count(o.result);
                }
            }
        }
        ptr_metrics.cached.set(resolver.len() as i64);
        let stats = resolver.stats();
        if stats.evicted > evicted {
            metrics
                .limits
                .table_evictions
                .get_or_create(&TableLabels { table: "ptr_cache" })
                .inc_by(stats.evicted - evicted);
            evicted = stats.evicted;
        }
        for (reason, now_count, seen) in [
            ("unmatched", stats.unmatched, &mut ignored.0),
            ("malformed", stats.malformed, &mut ignored.1),
        ] {
            if now_count > *seen {
                ptr_metrics
                    .ignored_answers
                    .get_or_create(&ReasonLabels { reason })
                    .inc_by(now_count - *seen);
                *seen = now_count;
            }
        }
        let wake = resolver
            .next_wakeup(now)
            .unwrap_or(now + Duration::from_secs(3600));
        tokio::select! {
            addr = rx.recv() => match addr {
                Some(addr) => match resolver.want(addr, Instant::now()) {
                    Want::Queued { delayed: true } => {
                        ptr_metrics.rate_limited.inc();
                    }
                    Want::Queued { delayed: false } | Want::Known => {}
                    Want::Dropped => {
                        ptr_metrics.dropped.get_or_create(&ReasonLabels { reason: "queue_full" }).inc();
                    }
                },
                None => break,
            },
            got = socket.recv(&mut buf) => match got {
                Ok(n) => {
                    if let Some(outcome) = resolver.on_datagram(&buf[..n], Instant::now()) {
                        count(outcome.result);
                        if let Some(name) = outcome.names.first() {
                            on_name(outcome.addr, name);
                        }
                        tracing::debug!(addr = %outcome.addr, result = outcome.result.as_str(), names = ?outcome.names, "PTR answer");
                    }
                }
                // ICMP port unreachable surfaces as ECONNREFUSED on a
                // connected socket: the transmission times out as usual.
                Err(e) => tracing::debug!(error = %e, "PTR socket"),
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! The task against a resolver on loopback: it answers one address by
    //! name, another NXDOMAIN, and ignores a third (timeout, then retry).

    use super::*;
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::PTR;
    use hickory_proto::rr::{Name, RData, Record};

    fn resolver() -> (UdpSocket, SocketAddr) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let addr = s.local_addr().unwrap();
        (s, addr)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn asks_the_resolver_and_names_the_answers() {
        let (server, server_addr) = resolver();
        let (socket, own) = bind_to(server_addr).unwrap();
        assert_eq!(own.server, server_addr);
        assert_ne!(own.port, 0);
        let named: IpAddr = "10.244.1.10".parse().unwrap();
        let missing: IpAddr = "10.244.9.9".parse().unwrap();
        let silent: IpAddr = "fd00:10:244::9".parse().unwrap();
        // The resolver: a thread answering what it is asked; `silent` never.
        let answering = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                assert_eq!(from.port(), own.port, "queries come from the bound port");
                let q = Message::from_vec(&buf[..n]).unwrap();
                let qname = q.queries[0].name.clone();
                seen.push(qname.to_ascii());
                let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
                r.add_query(q.queries[0].clone());
                if qname == Name::from(named) {
                    r.add_answer(Record::from_rdata(
                        qname,
                        5,
                        RData::PTR(PTR(
                            Name::from_ascii("demo-app.default.svc.cluster.local.").unwrap()
                        )),
                    ));
                } else if qname == Name::from(missing) {
                    r.metadata.response_code = ResponseCode::NXDomain;
                } else {
                    continue;
                }
                server.send_to(&r.to_vec().unwrap(), from).unwrap();
            }
            seen
        });
        let mut registry = Metrics::new();
        let m = registry.register_ptr();
        let metrics = Arc::new(registry);
        let (tx, rx) = channel();
        let cfg = PtrConfig {
            timeout: Duration::from_millis(300),
            ..PtrConfig::default()
        };
        let names = Arc::new(std::sync::Mutex::new(Vec::new()));
        let got = names.clone();
        let task = tokio::spawn(serve(
            socket,
            rx,
            cfg,
            m.clone(),
            metrics,
            move |a, n: &str| {
                got.lock().unwrap().push((a, n.to_string()));
            },
        ));
        for a in [named, missing, silent, named] {
            tx.send(a).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        drop(tx);
        task.await.unwrap();
        assert_eq!(
            *names.lock().unwrap(),
            [(named, "demo-app.default.svc.cluster.local".to_string())]
        );
        let count = |r: &'static str| m.queries.get_or_create(&ResultLabels { result: r }).get();
        assert_eq!(count("name"), 1, "asked once although wanted twice");
        assert_eq!(count("nxdomain"), 1);
        assert_eq!(count("timeout"), 2, "the silent address: two transmissions");
        assert_eq!(m.cached.get(), 3);
        let seen = answering.join().unwrap();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen.iter().filter(|q| q.ends_with("ip6.arpa.")).count(), 2);
    }
}
