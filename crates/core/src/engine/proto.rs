//! What a TCP connection speaks (TLS, HTTP/2, HTTP/1 or none podpath reads)
//! and the events it yields.
//!
//! A connection seen from its SYN is decided on its client's first payload
//! (a server may send first, e.g. its SETTINGS before the preface arrives,
//! so server payloads do not decide); a connection joined late is read as
//! HTTP/1 while its first payload segments are examined for a ClientHello or
//! a whole run of HTTP/2 frames. Once nothing more can be read
//! ([`AppState::Opaque`]), the engine only counts the connection's bytes and
//! its end (`Engine::on_tcp`'s fast path).

use std::mem;

use crate::decode::TcpSegment;
use crate::dns::lookup::candidates;
use crate::dns::DnsTracker;
use crate::flow::{Direction, FlowState};
use crate::h2::frame::whole_frames;
use crate::h2::{self, StreamEnd};
use crate::http::{self, Http1};
use crate::tls::{sni_matches, ClientHello, FlightPool, HelloTracker, SniStatus};
use crate::Timestamp;

use super::event::{AppProtocol, Event, H2Unread, HttpView, Sink, SniCheck, TlsView};
use super::{view, Flow};

/// Payload segments of a joined connection examined for TLS or HTTP/2.
const MAX_PROBES: u8 = 8;

/// The application layer of one TCP connection.
#[derive(Debug, Default)]
pub enum AppState {
    /// Seen from its SYN; no client payload yet. `first` is the sequence
    /// number of the client's first payload byte (ISN + 1).
    Probing {
        first: u32,
    },
    /// The client's first payload seen was none of TLS, HTTP/2 or HTTP/1,
    /// but it was not the connection's first (that one was lost, or cut to
    /// nothing): each client segment is still looked at for a request.
    Unsure,
    /// Joined after the handshake: read as HTTP/1 while up to `MAX_PROBES`
    /// payload segments are examined for TLS and HTTP/2.
    Joined {
        probes: u8,
        http: Box<Http1>,
    },
    /// The client's first TLS flight, until its ClientHello is read.
    Tls(Box<HelloTracker>),
    /// HTTP/2 (h2c), until both directions lose frame sync.
    H2(Box<h2::Connection>),
    Http1(Box<Http1>),
    /// Nothing more to read: TLS past the ClientHello, HTTP/2 that lost
    /// sync, HTTP/1 after an upgrade or CONNECT, or a connection whose first
    /// client payload was none of them.
    #[default]
    Opaque,
}

impl AppState {
    /// A connection seen from its SYN, whose initial sequence number is `isn`.
    pub fn from_syn(isn: u32) -> AppState {
        AppState::Probing {
            first: isn.wrapping_add(1),
        }
    }

    /// A connection joined after its handshake.
    pub fn joined(max_http_pending: usize) -> AppState {
        AppState::Joined {
            probes: 0,
            http: Box::new(Http1::new(max_http_pending)),
        }
    }
}

/// The engine state the readers consult.
pub(super) struct Context<'a> {
    pub dns: &'a DnsTracker,
    pub flights: &'a FlightPool,
    pub max_http_pending: usize,
}

/// A segment on a known TCP flow, after its handshake state was updated.
pub(super) fn on_segment(
    flow: &mut Flow,
    dir: Direction,
    seg: &TcpSegment<'_>,
    now: Timestamp,
    cx: &Context<'_>,
    sink: &mut dyn Sink,
) {
    // Out of the flow while it changes, so the readers can read the flow.
    let mut app = match &mut flow.state {
        FlowState::Tcp(tcp) => mem::take(&mut tcp.app),
        FlowState::Udp(_) => return,
    };
    if seg.payload_len > 0 {
        decide(&mut app, flow, dir, seg, cx, sink);
    }
    read(&mut app, flow, dir, seg, now, cx, sink);
    if let FlowState::Tcp(tcp) = &mut flow.state {
        tcp.app = app;
    }
}

/// Moves an undecided connection on, from a segment with payload.
fn decide(
    app: &mut AppState,
    flow: &Flow,
    dir: Direction,
    seg: &TcpSegment<'_>,
    cx: &Context<'_>,
    sink: &mut dyn Sink,
) {
    let client = dir == Direction::Initiator;
    match app {
        AppState::Probing { first } if client => {
            let first = *first;
            *app = if let Some(t) = HelloTracker::start_in(cx.flights, seg.seq, seg.payload) {
                AppState::Tls(Box::new(t))
            } else if h2::Connection::is_preface(seg.payload) {
                let server_next = seg.flags.ack().then_some(seg.ack);
                AppState::H2(Box::new(h2::Connection::from_preface(seg.seq, server_next)))
            } else if let Some(http) = start_http1(flow, seg, cx, sink) {
                AppState::Http1(http)
            } else if seg.seq == first && !seg.payload.is_empty() && !seg.flags.rst() {
                AppState::Opaque
            } else {
                AppState::Unsure
            };
        }
        AppState::Unsure if client => {
            if let Some(http) = start_http1(flow, seg, cx, sink) {
                *app = AppState::Http1(http);
            }
        }
        AppState::Joined { probes, .. } => {
            *probes += 1;
            let probes = *probes;
            if client {
                if let Some(t) = HelloTracker::start_in(cx.flights, seg.seq, seg.payload) {
                    *app = AppState::Tls(Box::new(t));
                    return;
                }
            }
            if whole_frames(seg.payload, seg.payload_len) {
                *app = AppState::H2(Box::new(h2::Connection::joined()));
            } else if probes >= MAX_PROBES {
                if let AppState::Joined { http, .. } = mem::take(app) {
                    *app = AppState::Http1(http);
                }
            }
        }
        _ => {}
    }
}

/// A client segment that begins an HTTP/1 request starts the connection's
/// HTTP/1 reading; its `Host` is reported once, and only when a name is in
/// question (or may be: a held connection may be decided for a name).
fn start_http1(
    flow: &Flow,
    seg: &TcpSegment<'_>,
    cx: &Context<'_>,
    sink: &mut dyn Sink,
) -> Option<Box<Http1>> {
    if seg.flags.rst() || !http::looks_like_request(seg.payload) {
        return None;
    }
    let held = flow.held;
    if let Some(a) = flow
        .attribution
        .as_ref()
        .filter(|a| a.dns_name.is_some() || held)
    {
        if let Some(host) = http::request_host(seg.payload) {
            sink.on_event(&Event::RequestHost {
                conn: view(flow, a),
                host,
                h2: false,
            });
        }
    }
    Some(Box::new(Http1::new(cx.max_http_pending)))
}

/// Feeds a segment to the connection's reader.
fn read(
    app: &mut AppState,
    flow: &Flow,
    dir: Direction,
    seg: &TcpSegment<'_>,
    now: Timestamp,
    cx: &Context<'_>,
    sink: &mut dyn Sink,
) {
    let client = dir == Direction::Initiator;
    match app {
        AppState::Tls(t) => {
            let hello = if client && seg.payload_len > 0 {
                t.on_client_data(seg.seq, seg.payload, seg.payload_len)
            } else if (!client && seg.payload_len > 0) || seg.flags.fin() || seg.flags.rst() {
                // The server answered or the connection ends: the flight is over.
                t.finish()
            } else {
                None
            };
            if let Some(h) = hello {
                *app = AppState::Opaque;
                emit_hello(flow, &h, cx.dns, sink);
            }
        }
        AppState::H2(conn) if seg.payload_len > 0 => {
            let mut ends = Vec::new();
            conn.on_segment(
                client,
                now,
                seg.seq,
                seg.payload,
                seg.payload_len,
                &mut ends,
            );
            let authority = conn.take_authority();
            if conn.is_dead() {
                *app = AppState::Opaque;
            }
            if let (Some(auth), Some(a)) = (authority, flow.attribution.as_ref()) {
                // A held connection may yet be decided for a name.
                if (a.dns_name.is_some() || flow.held) && flow.outbound {
                    if let Some(host) = http::host_part(&auth) {
                        sink.on_event(&Event::RequestHost {
                            conn: view(flow, a),
                            host,
                            h2: true,
                        });
                    }
                }
            }
            for e in &ends {
                emit_stream(flow, e, sink);
            }
        }
        AppState::Http1(h) | AppState::Joined { http: h, .. } => {
            if seg.flags.rst() || seg.payload.is_empty() {
                return;
            }
            if client {
                h.on_request_data(now, seg.seq, seg.payload);
            } else if let Some(ex) = h.on_response_data(now, seg.seq, seg.payload) {
                sink.on_event(&Event::Http(HttpView {
                    ts: ex.request_ts,
                    outbound: flow.outbound,
                    connection_id: flow.id,
                    dst: flow.responder,
                    attribution: flow.attribution.as_ref(),
                    method: ex.method,
                    status: ex.status,
                    latency_secs: ex.latency_secs,
                    protocol: AppProtocol::Http1,
                    grpc_status: None,
                }));
            }
            if matches!(app, AppState::Http1(h) if h.is_over()) {
                *app = AppState::Opaque;
            }
        }
        _ => {}
    }
}

fn emit_hello(flow: &Flow, h: &ClientHello, dns: &DnsTracker, sink: &mut dyn Sink) {
    if !flow.outbound {
        return;
    }
    let Some(a) = &flow.attribution else {
        return;
    };
    let dns_check = match (&a.dns_name, &h.sni) {
        (Some(name), Some(sni)) => {
            let forms = candidates(name, false, dns.search());
            let fqdn = dns
                .resolve(flow.responder.ip(), flow.last_seen)
                .map(|n| n.fqdn.clone());
            let matched = sni_matches(sni, name, forms.iter().map(|f| &**f).chain(fqdn.as_deref()));
            Some(if matched {
                SniCheck::Confirmed
            } else {
                SniCheck::Mismatch
            })
        }
        _ => None,
    };
    sink.on_event(&Event::Tls(TlsView {
        conn: view(flow, a),
        sni: h.sni.as_deref(),
        status: if h.sni.is_some() {
            SniStatus::Present
        } else {
            h.status
        },
        alpn: h.alpn.as_deref(),
        dns_check,
    }));
}

fn emit_stream(flow: &Flow, e: &StreamEnd, sink: &mut dyn Sink) {
    let attribution = flow.attribution.as_ref();
    match (e.decoded, e.method, e.status, e.latency_secs) {
        (true, Some(method), Some(status), Some(latency_secs)) => {
            sink.on_event(&Event::Http(HttpView {
                ts: e.request_ts,
                outbound: flow.outbound,
                connection_id: flow.id,
                dst: flow.responder,
                attribution,
                method,
                status,
                latency_secs,
                protocol: match e.protocol {
                    h2::Protocol::H2 => AppProtocol::H2,
                    h2::Protocol::Grpc => AppProtocol::Grpc,
                },
                grpc_status: e.grpc_status,
            }))
        }
        _ => sink.on_event(&Event::H2Stream {
            outbound: flow.outbound,
            attribution,
            reason: if e.decoded {
                // Decoded but without a response: reset (or ended) before one.
                H2Unread::Reset
            } else {
                H2Unread::NoHpackContext
            },
        }),
    }
}
