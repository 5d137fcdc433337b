//! HTTP/2 in cleartext with prior knowledge (h2c) and gRPC over it: frames
//! read from TCP segments by sequence number, header blocks decoded with
//! HPACK, requests paired with responses per stream. No I/O, bounded memory,
//! no panic on any input.
//!
//! HPACK comes from `loona-hpack` (bearcove's maintained fork of hpack-rs,
//! successor of `fluke-hpack`). Chosen over `hpack` 0.3 (unmaintained since
//! 2016) and `httlib-hpack` (single release line, no decoder table bound):
//! its decoder returns errors for bad indexes, over-long integers and short
//! strings instead of panicking, and lets us cap the dynamic table size a
//! peer may ask for.
//!
//! HPACK is stateful: each direction's dynamic table is built from every
//! header block since the connection began. A reader that joined late, lost
//! a header block to a capture gap or the snap length, or failed to decode
//! one, has no context from then on: it still finds streams and their
//! timing from frame headers, and reports those streams as read without
//! HPACK context instead of guessing their headers.
//!
//! Only the frame headers and header-block payloads are needed: DATA
//! payloads are skipped by length, so a capture that keeps only the first
//! bytes of each segment still reads the connection as long as no frame
//! header or header block falls in a cut.

pub mod frame;

use loona_hpack::Decoder;
use thiserror::Error;

use crate::hash::HashMap;
use crate::http::Method;
use crate::Timestamp;
use frame::*;

/// Header block bytes (HEADERS + CONTINUATION) kept for decoding.
const MAX_BLOCK: usize = 64 * 1024;
/// Largest dynamic table a peer may ask the decoder to keep. RFC 9113's
/// default is 4096; real peers stay at or under 64 KiB.
const MAX_TABLE: usize = 64 * 1024;
/// Open streams tracked per connection; the oldest is dropped past it.
pub const MAX_STREAMS: usize = 256;
/// Segments of a joined connection tried for a frame boundary before
/// giving up on it.
const MAX_SYNC_TRIES: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum H2Error {
    #[error("a frame header fell in bytes that were not captured")]
    LostFrameSync,
    #[error("segment after a gap in the sequence space")]
    Gap,
    #[error("header block larger than {MAX_BLOCK} bytes")]
    BlockTooLarge,
    #[error("header block bytes were not captured")]
    BlockNotCaptured,
    #[error("HPACK decoding failed")]
    Hpack,
    #[error("CONTINUATION without a header block in progress")]
    UnexpectedContinuation,
}

/// The application protocol of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    H2,
    Grpc,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::H2 => "h2",
            Protocol::Grpc => "grpc",
        }
    }
}

/// A finished stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamEnd {
    pub stream: u32,
    pub request_ts: Timestamp,
    /// Request HEADERS → first response HEADERS.
    pub latency_secs: Option<f64>,
    /// Known only with HPACK context for the request's block.
    pub method: Option<Method>,
    /// Known only with HPACK context for the response's block.
    pub status: Option<u16>,
    pub protocol: Protocol,
    /// From the response trailers (or a trailers-only response).
    pub grpc_status: Option<u32>,
    /// Both header blocks were decoded with full HPACK context.
    pub decoded: bool,
    /// Ended by RST_STREAM rather than END_STREAM.
    pub reset: bool,
}

/// Counters a connection keeps about what it could not read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct H2Stats {
    pub streams_dropped: u64,
    /// Header blocks skipped because the direction had no HPACK context.
    pub blocks_without_context: u64,
    /// Reasons a direction lost HPACK context or frame sync (last one).
    pub last_error: Option<H2Error>,
}

/// Pseudo-headers and the few fields podpath reads from a header block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fields {
    method: Option<Method>,
    status: Option<u16>,
    grpc: bool,
    grpc_status: Option<u32>,
}

fn method_of(v: &[u8]) -> Method {
    Method::from_token(v).unwrap_or(Method::Other)
}

fn small_number(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        v.iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d.saturating_sub(b'0'))),
    )
}

impl Fields {
    fn take(&mut self, name: &[u8], value: &[u8]) {
        match name {
            b":method" => self.method = Some(method_of(value)),
            b":status" => {
                self.status = small_number(value)
                    .filter(|s| (100..1000).contains(s))
                    .map(|s| s as u16)
            }
            b"content-type" => {
                self.grpc |= value.starts_with(b"application/grpc");
            }
            b"grpc-status" => self.grpc_status = small_number(value),
            _ => {}
        }
    }
}

/// A header block as the connection sees it.
#[derive(Clone, Copy, Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    /// `None` without HPACK context.
    fields: Option<Fields>,
}

/// Where a direction's frame reader is within the current frame.
#[derive(Debug)]
enum Pos {
    /// Reading a frame header: bytes so far.
    Header { got: [u8; HEADER_LEN], len: usize },
    /// Inside a frame payload.
    Payload {
        head: FrameHeader,
        left: u32,
        /// Payload bytes are kept (header blocks, RST_STREAM).
        keep: bool,
        /// Some kept bytes were not captured.
        lost: bool,
    },
}

/// One direction of the connection.
#[derive(Debug)]
struct Reader {
    /// Next sequence number expected; `None` until a frame boundary is known.
    next: Option<u32>,
    /// Preface bytes still to skip (client direction).
    preface_left: usize,
    pos: Pos,
    payload: Vec<u8>,
    /// The header block being assembled (HEADERS/PUSH_PROMISE + CONTINUATION).
    block: Vec<u8>,
    block_head: Option<(u32, bool)>,
    block_lost: bool,
    decoder: Option<Hpack>,
    /// The frame boundary was lost: nothing more is read.
    dead: bool,
    sync_tries: u32,
    /// Client direction, until the first request's `:authority` is read.
    want_authority: bool,
    /// The first request's `:authority`, until the engine takes it (one
    /// copy per connection: what the app wrote, see `report::written`).
    authority: Option<String>,
}

impl Reader {
    fn new(context: bool) -> Reader {
        Reader {
            next: None,
            preface_left: 0,
            pos: Pos::Header {
                got: [0; HEADER_LEN],
                len: 0,
            },
            payload: Vec::new(),
            block: Vec::new(),
            block_head: None,
            block_lost: false,
            decoder: context.then(new_decoder),
            dead: false,
            sync_tries: 0,
            want_authority: false,
            authority: None,
        }
    }

    /// Feeds a segment; header blocks completed in it go to `out`.
    fn segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        payload_len: u32,
        out: &mut Vec<Frame>,
        stats: &mut H2Stats,
    ) {
        if self.dead || payload_len == 0 {
            return;
        }
        let Some(next) = self.next else {
            return;
        };
        let offset = next.wrapping_sub(seq);
        if offset >= payload_len {
            let ahead = seq.wrapping_sub(next);
            if ahead > 0 && ahead < (1 << 30) {
                self.die(H2Error::Gap, stats);
            }
            return;
        }
        let remaining = (payload_len - offset) as usize;
        let captured = payload.get(offset as usize..).unwrap_or(&[]);
        let captured = captured.get(..remaining).unwrap_or(captured);
        let missing = remaining.saturating_sub(captured.len());
        self.next = Some(seq.wrapping_add(payload_len));
        self.bytes(captured, out, stats);
        if missing > 0 {
            self.skip_missing(missing, out, stats);
        }
    }

    fn die(&mut self, e: H2Error, stats: &mut H2Stats) {
        self.dead = true;
        self.decoder = None;
        stats.last_error = Some(e);
    }

    fn lose_context(&mut self, e: H2Error, stats: &mut H2Stats) {
        if self.decoder.take().is_some() {
            stats.last_error = Some(e);
        }
    }

    fn bytes(&mut self, mut data: &[u8], out: &mut Vec<Frame>, stats: &mut H2Stats) {
        if self.preface_left > 0 {
            let n = self.preface_left.min(data.len());
            self.preface_left -= n;
            data = data.get(n..).unwrap_or(&[]);
        }
        while !data.is_empty() && !self.dead {
            match &mut self.pos {
                Pos::Header { got, len } => {
                    let n = (HEADER_LEN - *len).min(data.len());
                    if let (Some(dst), Some(src)) = (got.get_mut(*len..*len + n), data.get(..n)) {
                        dst.copy_from_slice(src);
                    }
                    *len += n;
                    data = data.get(n..).unwrap_or(&[]);
                    if *len == HEADER_LEN {
                        let head = FrameHeader::parse(got);
                        self.begin(head, out, stats);
                    }
                }
                Pos::Payload { left, keep, .. } => {
                    let n = (*left as usize).min(data.len());
                    if *keep {
                        self.payload.extend_from_slice(data.get(..n).unwrap_or(&[]));
                    }
                    *left -= n as u32;
                    data = data.get(n..).unwrap_or(&[]);
                    if *left == 0 {
                        self.end_frame(out, stats);
                    }
                }
            }
        }
    }

    /// `n` bytes of the stream were not captured.
    fn skip_missing(&mut self, mut n: usize, out: &mut Vec<Frame>, stats: &mut H2Stats) {
        while n > 0 && !self.dead {
            match &mut self.pos {
                Pos::Header { .. } => {
                    self.die(H2Error::LostFrameSync, stats);
                }
                Pos::Payload {
                    left, keep, lost, ..
                } => {
                    let k = (*left as usize).min(n);
                    if *keep && k > 0 {
                        *lost = true;
                    }
                    *left -= k as u32;
                    n -= k;
                    if *left == 0 {
                        self.end_frame(out, stats);
                    }
                }
            }
        }
    }

    fn begin(&mut self, head: FrameHeader, out: &mut Vec<Frame>, stats: &mut H2Stats) {
        let keep = matches!(
            head.kind,
            HEADERS | CONTINUATION | PUSH_PROMISE | RST_STREAM
        ) && (head.len as usize) <= MAX_BLOCK;
        if matches!(head.kind, HEADERS | CONTINUATION | PUSH_PROMISE) && !keep {
            self.block_lost = true;
        }
        self.payload.clear();
        self.pos = Pos::Payload {
            head,
            left: head.len,
            keep,
            lost: false,
        };
        if head.len == 0 {
            self.end_frame(out, stats);
        }
    }

    fn end_frame(&mut self, out: &mut Vec<Frame>, stats: &mut H2Stats) {
        let Pos::Payload { head, lost, .. } = self.pos else {
            return;
        };
        self.pos = Pos::Header {
            got: [0; HEADER_LEN],
            len: 0,
        };
        let payload = std::mem::take(&mut self.payload);
        match head.kind {
            DATA if head.flags & FLAG_END_STREAM != 0 => {
                out.push(Frame::EndStream(head.stream));
            }
            HEADERS | PUSH_PROMISE => {
                let fragment = if lost { None } else { fragment(head, &payload) };
                self.block.clear();
                self.block_lost = fragment.is_none();
                if let Some(f) = fragment {
                    self.push_block(f, stats);
                }
                // Pushed responses are not requests this pod made: their
                // block is decoded only to keep the table in step.
                let report = head.kind == HEADERS;
                self.block_head = Some((
                    if report { head.stream } else { 0 },
                    head.flags & FLAG_END_STREAM != 0,
                ));
                if head.flags & FLAG_END_HEADERS != 0 {
                    self.end_block(out, stats);
                }
            }
            CONTINUATION => {
                if self.block_head.is_none() {
                    self.lose_context(H2Error::UnexpectedContinuation, stats);
                } else if lost {
                    self.block_lost = true;
                } else {
                    self.push_block(&payload, stats);
                }
                if head.flags & FLAG_END_HEADERS != 0 {
                    self.end_block(out, stats);
                }
            }
            RST_STREAM => out.push(Frame::Reset(head.stream)),
            _ => {}
        }
        self.payload = payload;
        self.payload.clear();
    }

    fn push_block(&mut self, fragment: &[u8], stats: &mut H2Stats) {
        if self.block.len() + fragment.len() > MAX_BLOCK {
            self.block_lost = true;
            stats.last_error = Some(H2Error::BlockTooLarge);
        } else {
            self.block.extend_from_slice(fragment);
        }
    }

    fn end_block(&mut self, out: &mut Vec<Frame>, stats: &mut H2Stats) {
        let Some((stream, end_stream)) = self.block_head.take() else {
            return;
        };
        if self.block_lost {
            self.lose_context(H2Error::BlockNotCaptured, stats);
        }
        let fields = match self.decoder.as_mut() {
            Some(d) => {
                let mut f = Fields::default();
                let want = self.want_authority;
                let mut authority = None;
                let decoded = d.0.decode_with_cb(&self.block, |n, v| {
                    if want && &*n == b":authority" {
                        authority = std::str::from_utf8(&v).ok().map(str::to_string);
                    }
                    f.take(&n, &v)
                });
                if authority.is_some() {
                    self.authority = authority;
                    self.want_authority = false;
                }
                match decoded {
                    Ok(()) => Some(f),
                    Err(_) => {
                        self.lose_context(H2Error::Hpack, stats);
                        None
                    }
                }
            }
            None => {
                stats.blocks_without_context += 1;
                None
            }
        };
        self.block.clear();
        self.block_lost = false;
        if stream != 0 {
            out.push(Frame::Headers(Block {
                stream,
                end_stream,
                fields,
            }));
        }
    }
}

/// One direction's HPACK decoder (the crate's type has no `Debug`).
struct Hpack(Decoder<'static>);

impl std::fmt::Debug for Hpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hpack")
    }
}

fn new_decoder() -> Hpack {
    let mut d = Decoder::new();
    d.set_max_allowed_table_size(MAX_TABLE);
    Hpack(d)
}

/// The header block fragment of a HEADERS or PUSH_PROMISE payload: padding
/// and the priority or promised-stream fields removed.
fn fragment(head: FrameHeader, payload: &[u8]) -> Option<&[u8]> {
    let (pad, mut rest) = if head.flags & FLAG_PADDED != 0 {
        (usize::from(*payload.first()?), payload.get(1..)?)
    } else {
        (0, payload)
    };
    let skip = match head.kind {
        HEADERS if head.flags & FLAG_PRIORITY != 0 => 5,
        PUSH_PROMISE => 4,
        _ => 0,
    };
    rest = rest.get(skip..)?;
    rest.get(..rest.len().checked_sub(pad)?)
}

/// What a direction's reader passes up to the connection.
#[derive(Clone, Copy, Debug)]
enum Frame {
    Headers(Block),
    EndStream(u32),
    Reset(u32),
}

#[derive(Debug)]
struct Stream {
    request_ts: Timestamp,
    request: Option<Fields>,
    response_ts: Option<Timestamp>,
    response: Option<Fields>,
    decoded: bool,
    grpc_status: Option<u32>,
    /// Order of creation, for dropping the oldest.
    serial: u64,
}

/// The state of one h2c connection.
#[derive(Debug)]
pub struct Connection {
    client: Reader,
    server: Reader,
    streams: HashMap<u32, Stream>,
    serial: u64,
    frames: Vec<Frame>,
    pub stats: H2Stats,
    /// The connection was read from its preface (full HPACK context).
    pub from_preface: bool,
}

impl Connection {
    /// The first client payload began with the connection preface. `server_next`
    /// is the server's next sequence number as the client acknowledged it in
    /// that segment (the server has sent no header block before a request).
    pub fn from_preface(client_seq: u32, server_next: Option<u32>) -> Connection {
        let mut client = Reader::new(true);
        client.want_authority = true;
        client.next = Some(client_seq);
        client.preface_left = PREFACE.len();
        let mut server = Reader::new(true);
        server.next = server_next;
        Connection {
            client,
            server,
            streams: HashMap::default(),
            serial: 0,
            frames: Vec::new(),
            stats: H2Stats::default(),
            from_preface: true,
        }
    }

    /// A connection joined after it began: frame boundaries are searched
    /// for, and no header block can be decoded.
    pub fn joined() -> Connection {
        Connection {
            client: Reader::new(false),
            server: Reader::new(false),
            streams: HashMap::default(),
            serial: 0,
            frames: Vec::new(),
            stats: H2Stats::default(),
            from_preface: false,
        }
    }

    /// Whether a payload starts the client connection preface (as far as it
    /// was captured; at least the first 16 bytes must be there).
    pub fn is_preface(payload: &[u8]) -> bool {
        payload.len() >= 16
            && PREFACE.starts_with(
                payload
                    .get(..PREFACE.len().min(payload.len()))
                    .unwrap_or(&[]),
            )
    }

    /// Both directions lost frame sync: nothing more can be read.
    pub fn is_dead(&self) -> bool {
        self.client.dead && self.server.dead
    }

    /// A segment in either direction; finished streams go to `out`.
    pub fn on_segment(
        &mut self,
        from_client: bool,
        ts: Timestamp,
        seq: u32,
        payload: &[u8],
        payload_len: u32,
        out: &mut Vec<StreamEnd>,
    ) {
        let reader = if from_client {
            &mut self.client
        } else {
            &mut self.server
        };
        if reader.next.is_none() && !reader.dead {
            // Without a known boundary, a segment that is exactly a run of
            // frames gives one. A server that sent anything before it was
            // synced may have sent a header block, so context is gone.
            if whole_frames(payload, payload_len) {
                reader.next = Some(seq);
            } else {
                reader.sync_tries += 1;
                if reader.decoder.take().is_some() {
                    self.stats.last_error = Some(H2Error::LostFrameSync);
                }
                if reader.sync_tries >= MAX_SYNC_TRIES {
                    reader.dead = true;
                }
                return;
            }
        }
        let mut frames = std::mem::take(&mut self.frames);
        reader.segment(seq, payload, payload_len, &mut frames, &mut self.stats);
        for f in frames.drain(..) {
            self.frame(from_client, ts, f, out);
        }
        self.frames = frames;
    }

    fn frame(&mut self, from_client: bool, ts: Timestamp, f: Frame, out: &mut Vec<StreamEnd>) {
        match (f, from_client) {
            (Frame::Headers(b), true) => {
                if self.streams.contains_key(&b.stream) {
                    // Request trailers.
                    return;
                }
                if b.stream % 2 == 0 {
                    return;
                }
                self.open(b, ts);
            }
            (Frame::Headers(b), false) => {
                let Some(s) = self.streams.get_mut(&b.stream) else {
                    return;
                };
                match s.response_ts {
                    None => {
                        s.response_ts = Some(ts);
                        s.response = b.fields;
                        s.decoded &= b.fields.is_some();
                    }
                    Some(_) => s.decoded &= b.fields.is_some(),
                }
                if let Some(g) = b.fields.and_then(|f| f.grpc_status) {
                    s.grpc_status = Some(g);
                }
                if b.end_stream {
                    self.close(b.stream, false, out);
                }
            }
            (Frame::EndStream(id), false) => self.close(id, false, out),
            (Frame::Reset(id), _) => self.close(id, true, out),
            (Frame::EndStream(_), true) => {}
        }
    }

    fn open(&mut self, b: Block, ts: Timestamp) {
        if self.streams.len() >= MAX_STREAMS {
            let oldest = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.serial)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.streams.remove(&k);
                self.stats.streams_dropped += 1;
            }
        }
        self.serial += 1;
        self.streams.insert(
            b.stream,
            Stream {
                request_ts: ts,
                request: b.fields,
                response_ts: None,
                response: None,
                decoded: b.fields.is_some(),
                grpc_status: None,
                serial: self.serial,
            },
        );
    }

    fn close(&mut self, id: u32, reset: bool, out: &mut Vec<StreamEnd>) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        let grpc = s.request.is_some_and(|f| f.grpc) || s.response.is_some_and(|f| f.grpc);
        out.push(StreamEnd {
            stream: id,
            request_ts: s.request_ts,
            latency_secs: s.response_ts.map(|r| r.secs_since(s.request_ts)),
            method: s.request.and_then(|f| f.method),
            status: s.response.and_then(|f| f.status),
            protocol: if grpc { Protocol::Grpc } else { Protocol::H2 },
            grpc_status: s.grpc_status,
            decoded: s.decoded,
            reset,
        });
    }

    /// The first request's `:authority`, once.
    pub fn take_authority(&mut self) -> Option<String> {
        self.client.authority.take()
    }

    /// Open streams.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }
}

#[cfg(test)]
mod tests;
