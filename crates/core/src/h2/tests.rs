use loona_hpack::Encoder;

use super::*;

pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub(crate) fn headers(
    enc: &mut Encoder<'_>,
    stream: u32,
    end_stream: bool,
    fields: &[(&str, &str)],
) -> Vec<u8> {
    let block = enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    let flags = FLAG_END_HEADERS | if end_stream { FLAG_END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, &block)
}

fn ms(n: u64) -> Timestamp {
    Timestamp(n * 1_000_000)
}

/// Feeds whole segments to a connection: (from_client, ms, bytes).
struct Wire {
    conn: Connection,
    cseq: u32,
    sseq: u32,
    ends: Vec<StreamEnd>,
}

impl Wire {
    fn from_preface() -> Wire {
        Wire {
            conn: Connection::from_preface(1000, Some(5000)),
            cseq: 1000,
            sseq: 5000,
            ends: Vec::new(),
        }
    }

    fn send(&mut self, from_client: bool, t: u64, bytes: &[u8]) {
        self.send_cut(from_client, t, bytes, bytes.len());
    }

    /// Sends `bytes` of which only the first `captured` were captured.
    fn send_cut(&mut self, from_client: bool, t: u64, bytes: &[u8], captured: usize) {
        let seq = if from_client {
            &mut self.cseq
        } else {
            &mut self.sseq
        };
        let s = *seq;
        *seq = seq.wrapping_add(bytes.len() as u32);
        self.conn.on_segment(
            from_client,
            ms(t),
            s,
            &bytes[..captured.min(bytes.len())],
            bytes.len() as u32,
            &mut self.ends,
        );
    }
}

fn client_start(enc: &mut Encoder<'_>, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut seg = PREFACE.to_vec();
    seg.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 0x10, 0, 0]));
    seg.extend(headers(enc, 1, true, fields));
    seg
}

const GET: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "demo-app:8080"),
    ("user-agent", "curl/8"),
];

#[test]
fn preface_then_request_and_response_with_latency() {
    let (mut ce, mut se) = (Encoder::new(), Encoder::new());
    let mut w = Wire::from_preface();
    assert!(Connection::is_preface(PREFACE));
    w.send(true, 0, &client_start(&mut ce, GET));
    let mut resp = frame(SETTINGS, 0, 0, &[]);
    resp.extend(frame(SETTINGS, FLAG_ACK, 0, &[]));
    resp.extend(headers(&mut se, 1, false, &[(":status", "200")]));
    resp.extend(frame(DATA, FLAG_END_STREAM, 1, b"hello"));
    w.send(false, 7, &resp);
    assert_eq!(w.ends.len(), 1);
    let e = &w.ends[0];
    assert_eq!(e.method, Some(Method::Get));
    assert_eq!(e.status, Some(200));
    assert_eq!(e.protocol, Protocol::H2);
    assert!(e.decoded && !e.reset);
    assert!((e.latency_secs.unwrap() - 0.007).abs() < 1e-9);
    assert_eq!(w.conn.open_streams(), 0);
}

#[test]
fn dynamic_table_entries_carry_over_between_requests() {
    let (mut ce, mut se) = (Encoder::new(), Encoder::new());
    let mut w = Wire::from_preface();
    w.send(true, 0, &client_start(&mut ce, GET));
    // The second request's block refers to entries the first one added.
    let second = headers(
        &mut ce,
        3,
        true,
        &[(":method", "DELETE"), ("user-agent", "curl/8")],
    );
    w.send(true, 1, &second);
    w.send(
        false,
        2,
        &headers(&mut se, 3, true, &[(":status", "204"), ("server", "x")]),
    );
    w.send(
        false,
        3,
        &headers(&mut se, 1, true, &[(":status", "404"), ("server", "x")]),
    );
    let got: Vec<_> = w
        .ends
        .iter()
        .map(|e| (e.stream, e.method, e.status))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, Some(Method::Delete), Some(204)),
            (1, Some(Method::Get), Some(404))
        ]
    );
}

#[test]
fn grpc_status_comes_from_trailers() {
    let (mut ce, mut se) = (Encoder::new(), Encoder::new());
    let mut w = Wire::from_preface();
    let req = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/demo.Echo/Say"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    let mut seg = client_start(&mut ce, &req);
    // client_start ended the stream; gRPC sends a message after HEADERS.
    seg.extend(frame(DATA, FLAG_END_STREAM, 1, &[0, 0, 0, 0, 2, 8, 1]));
    w.send(true, 0, &seg);
    let mut resp = headers(
        &mut se,
        1,
        false,
        &[(":status", "200"), ("content-type", "application/grpc")],
    );
    resp.extend(frame(DATA, 0, 1, &[0, 0, 0, 0, 0]));
    w.send(false, 3, &resp);
    assert!(w.ends.is_empty());
    w.send(
        false,
        4,
        &headers(
            &mut se,
            1,
            true,
            &[("grpc-status", "14"), ("grpc-message", "unavailable")],
        ),
    );
    assert_eq!(w.ends.len(), 1);
    let e = &w.ends[0];
    assert_eq!(e.protocol, Protocol::Grpc);
    assert_eq!(e.grpc_status, Some(14));
    assert_eq!(e.status, Some(200));
    assert_eq!(e.method, Some(Method::Post));
    assert!((e.latency_secs.unwrap() - 0.003).abs() < 1e-9);
}

#[test]
fn continuation_and_frames_split_across_segments() {
    let (mut ce, mut se) = (Encoder::new(), Encoder::new());
    let mut w = Wire::from_preface();
    let block = ce.encode(
        GET.iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .chain([(&b"x-long"[..], &[b'a'; 300][..])]),
    );
    let (a, b) = block.split_at(10);
    let mut seg = PREFACE.to_vec();
    seg.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_PADDED, 1, &{
        let mut p = vec![3u8];
        p.extend_from_slice(a);
        p.extend_from_slice(&[0, 0, 0]);
        p
    }));
    seg.extend(frame(CONTINUATION, FLAG_END_HEADERS, 1, b));
    // Cut in the middle of a frame header and in the middle of a payload.
    for chunk in [&seg[..30], &seg[30..40], &seg[40..]] {
        w.send(true, 0, chunk);
    }
    w.send(false, 1, &headers(&mut se, 1, true, &[(":status", "200")]));
    assert_eq!(w.ends.len(), 1);
    assert_eq!(w.ends[0].method, Some(Method::Get));
    assert!(w.ends[0].decoded);
}

#[test]
fn joined_mid_connection_counts_streams_without_headers() {
    let (mut ce, mut se) = (Encoder::new(), Encoder::new());
    // Earlier blocks built the tables that podpath never saw.
    let _ = ce.encode(GET.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    let _ = se.encode([(&b":status"[..], &b"200"[..])]);
    let mut w = Wire {
        conn: Connection::joined(),
        cseq: 77,
        sseq: 99,
        ends: Vec::new(),
    };
    // Not a frame boundary: ignored.
    w.send(true, 0, b"\x00\x01 garbage that is not frames");
    w.send(true, 1, &headers(&mut ce, 41, true, GET));
    let mut resp = headers(&mut se, 41, false, &[(":status", "200")]);
    resp.extend(frame(DATA, FLAG_END_STREAM, 41, b"ok"));
    w.send(false, 5, &resp);
    assert_eq!(w.ends.len(), 1);
    let e = &w.ends[0];
    assert!(!e.decoded);
    assert_eq!((e.method, e.status), (None, None));
    assert!((e.latency_secs.unwrap() - 0.004).abs() < 1e-9);
    assert!(w.conn.stats.blocks_without_context >= 2);
    assert!(!w.conn.from_preface);
}

#[test]
fn capture_cut_skips_data_but_loses_context_on_a_cut_header_block() {
    let (mut ce, mut se) = (Encoder::new(), Encoder::new());
    let mut w = Wire::from_preface();
    w.send(true, 0, &client_start(&mut ce, GET));
    // A 3000-byte DATA frame of which 1024 bytes were captured: skipped by length.
    let mut resp = headers(&mut se, 1, false, &[(":status", "200")]);
    resp.extend(frame(DATA, FLAG_END_STREAM, 1, &[0u8; 3000]));
    w.send_cut(false, 1, &resp, 1024);
    assert_eq!(w.ends.len(), 1);
    assert!(w.ends[0].decoded);
    // A request whose header block was cut: from here on, no context.
    let big = headers(
        &mut ce,
        3,
        true,
        &[(":method", "GET"), ("x-big", &"b".repeat(2000))],
    );
    w.send_cut(true, 2, &big, 1024);
    w.send(true, 3, &headers(&mut ce, 5, true, GET));
    w.send(false, 4, &headers(&mut se, 3, true, &[(":status", "200")]));
    w.send(false, 5, &headers(&mut se, 5, true, &[(":status", "200")]));
    let decoded: Vec<_> = w.ends.iter().map(|e| (e.stream, e.decoded)).collect();
    assert_eq!(decoded, vec![(1, true), (3, false), (5, false)]);
    assert_eq!(w.conn.stats.last_error, Some(H2Error::BlockNotCaptured));
    // A frame header in the cut ends the direction.
    let mut two = frame(DATA, 0, 7, &[0u8; 2000]);
    two.extend(frame(DATA, 0, 7, &[0u8; 10]));
    let before = two.len();
    w.send_cut(false, 6, &[&two[..], &[0u8; 5]].concat(), before - 5);
    w.send(false, 7, &headers(&mut se, 7, true, &[(":status", "200")]));
    assert_eq!(w.conn.stats.last_error, Some(H2Error::LostFrameSync));
}

#[test]
fn reset_streams_end_without_status_and_streams_are_bounded() {
    let mut ce = Encoder::new();
    let mut w = Wire::from_preface();
    w.send(true, 0, &client_start(&mut ce, GET));
    w.send(false, 1, &frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]));
    assert_eq!(w.ends.len(), 1);
    assert!(w.ends[0].reset);
    assert_eq!(w.ends[0].status, None);
    for i in 0..(MAX_STREAMS as u32 + 10) {
        w.send(true, 2, &headers(&mut ce, 3 + 2 * i, true, GET));
    }
    assert_eq!(w.conn.open_streams(), MAX_STREAMS);
    assert_eq!(w.conn.stats.streams_dropped, 10);
}

#[test]
fn garbage_never_panics() {
    let mut lcg = 0x2545_f491u32;
    let mut next = move || {
        lcg = lcg.wrapping_mul(1_103_515_245).wrapping_add(12345);
        lcg
    };
    let mut ce = Encoder::new();
    let good = client_start(&mut ce, GET);
    for round in 0..3000 {
        let mut conn = if round % 2 == 0 {
            Connection::from_preface(0, Some(0))
        } else {
            Connection::joined()
        };
        let mut out = Vec::new();
        let mut seq = [0u32; 2];
        for _ in 0..6 {
            let len = (next() % 200) as usize;
            let mut data: Vec<u8> = if next() % 3 == 0 {
                good.clone()
            } else {
                (0..len).map(|_| (next() >> 16) as u8).collect()
            };
            for _ in 0..(next() % 4) {
                if !data.is_empty() {
                    let i = next() as usize % data.len();
                    data[i] = (next() >> 8) as u8;
                }
            }
            let dir = (next() % 2) as usize;
            let captured = if next() % 4 == 0 {
                data.len() / 2
            } else {
                data.len()
            };
            conn.on_segment(
                dir == 0,
                ms(1),
                seq[dir],
                &data[..captured],
                data.len() as u32,
                &mut out,
            );
            seq[dir] = seq[dir].wrapping_add(data.len() as u32);
        }
        assert!(conn.open_streams() <= MAX_STREAMS);
    }
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any sequence of segments, captured whole or in part, in either
        /// direction, keeps the connection within its bounds.
        #[test]
        fn arbitrary_segments_never_panic(
            preface in any::<bool>(),
            segments in proptest::collection::vec(
                (any::<bool>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300), 0u32..400),
                0..12,
            ),
        ) {
            let mut conn = if preface {
                Connection::from_preface(0, Some(0))
            } else {
                Connection::joined()
            };
            let mut out = Vec::new();
            for (from_client, seq, bytes, extra) in &segments {
                let len = bytes.len() as u32 + extra;
                conn.on_segment(*from_client, ms(1), *seq, bytes, len, &mut out);
            }
            prop_assert!(conn.open_streams() <= MAX_STREAMS);
            prop_assert!(out.iter().all(|e| e.latency_secs.is_none_or(|l| l >= 0.0)));
        }
    }
}
