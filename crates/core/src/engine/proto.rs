//! TLS and HTTP/2 on a TCP connection: which one it speaks (decided on its
//! first client payload, or for a connection joined late on the first
//! segment that is a whole run of HTTP/2 frames), and the events they yield.

use crate::decode::TcpSegment;
use crate::dns::lookup::candidates;
use crate::dns::DnsTracker;
use crate::flow::{Flow, TcpState};
use crate::h2::frame::whole_frames;
use crate::h2::{self, StreamEnd};
use crate::tls::{sni_matches, ClientHello, FlightPool, HelloTracker, SniStatus};
use crate::Timestamp;

use super::event::{AppProtocol, Event, H2Unread, HttpView, Sink, SniCheck, TlsView};
use super::view;

/// Payload segments of a joined connection examined for HTTP/2 frames.
const MAX_PROBES: u8 = 8;

/// A segment on a known TCP flow, before HTTP/1 sees it.
pub(super) fn on_segment(
    flow: &mut Flow,
    from_initiator: bool,
    seg: &TcpSegment<'_>,
    now: Timestamp,
    dns: &DnsTracker,
    flights: &FlightPool,
    sink: &mut dyn Sink,
) {
    if seg.payload_len > 0 && flow.app_probes < MAX_PROBES {
        probe(flow, from_initiator, seg, flights);
    }
    if let Some(t) = flow.tls.as_mut() {
        let hello = if from_initiator && seg.payload_len > 0 {
            t.on_client_data(seg.seq, seg.payload, seg.payload_len)
        } else if (!from_initiator && seg.payload_len > 0) || seg.flags.fin() || seg.flags.rst() {
            // The server answered or the connection ends: the flight is over.
            t.finish()
        } else {
            None
        };
        if let Some(h) = hello {
            flow.tls = None;
            emit_hello(flow, &h, dns, sink);
        }
    }
    if seg.payload_len > 0 {
        if let Some(conn) = flow.h2.as_mut() {
            let mut ends = Vec::new();
            conn.on_segment(
                from_initiator,
                now,
                seg.seq,
                seg.payload,
                seg.payload_len,
                &mut ends,
            );
            let authority = conn.take_authority();
            if conn.is_dead() {
                flow.h2 = None;
            }
            if let (Some(auth), Some(a)) = (authority, flow.attribution.as_ref()) {
                // A held connection may yet be decided for a name.
                if (a.dns_name.is_some() || flow.held) && flow.outbound {
                    if let Some(host) = crate::http::host_part(&auth) {
                        sink.on_event(&Event::RequestHost {
                            conn: super::view(flow, a),
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
    }
}

fn probe(flow: &mut Flow, from_initiator: bool, seg: &TcpSegment<'_>, flights: &FlightPool) {
    let joined = flow.state == TcpState::Midstream;
    if !joined {
        // The client speaks first in TLS and HTTP/2: its first payload
        // decides. (A server may send its SETTINGS before the preface
        // arrives, so server payloads do not decide.)
        if !from_initiator {
            return;
        }
        flow.app_probes = MAX_PROBES;
        if let Some(t) = HelloTracker::start_in(flights, seg.seq, seg.payload) {
            flow.tls = Some(Box::new(t));
        } else if h2::Connection::is_preface(seg.payload) {
            let server_next = seg.flags.ack().then_some(seg.ack);
            flow.h2 = Some(Box::new(h2::Connection::from_preface(seg.seq, server_next)));
            flow.http = None;
        }
        return;
    }
    flow.app_probes += 1;
    if from_initiator {
        if let Some(t) = HelloTracker::start_in(flights, seg.seq, seg.payload) {
            flow.tls = Some(Box::new(t));
            flow.app_probes = MAX_PROBES;
            return;
        }
    }
    if whole_frames(seg.payload, seg.payload_len) {
        flow.h2 = Some(Box::new(h2::Connection::joined()));
        flow.http = None;
        flow.app_probes = MAX_PROBES;
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
