//! HTTP/1.x on one TCP connection: each request's method, the response status
//! and the request → response latency, with keep-alive and pipelining.
//!
//! Message boundaries come from sequence numbers: after a message whose
//! headers were captured whole, the next one starts at `seq + headers +
//! Content-Length`, even when a snap length cut the payload. When the length
//! is unknown (chunked, headers cut), the tracker falls back to "a segment
//! that starts with a request or status line starts a message".
//! Only method and status are kept: no paths, headers or bodies. A response
//! is read only as far as its framing needs (status line, Content-Length,
//! Transfer-Encoding); its other headers are skipped line by line, unread.

use std::collections::VecDeque;

use serde::Serialize;

use crate::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Method {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "HEAD")]
    Head,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "OPTIONS")]
    Options,
    #[serde(rename = "PATCH")]
    Patch,
    #[serde(rename = "CONNECT")]
    Connect,
    #[serde(rename = "TRACE")]
    Trace,
    #[serde(rename = "OTHER")]
    Other,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Other => "OTHER",
        }
    }

    /// Recognises a method token (HTTP/1 request line, HTTP/2 `:method`);
    /// `None` if `token` is not one.
    pub(crate) fn from_token(token: &[u8]) -> Option<Method> {
        Some(match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            t if !t.is_empty() && t.len() <= 16 && t.iter().all(|c| c.is_ascii_uppercase()) => {
                Method::Other
            }
            _ => return None,
        })
    }
}

/// A request and its response.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exchange {
    pub method: Method,
    pub status: u16,
    pub request_ts: Timestamp,
    pub latency_secs: f64,
}

/// True when `payload` begins like an HTTP/1 request line (`METHOD SP`).
pub fn looks_like_request(payload: &[u8]) -> bool {
    request_method(payload).is_some()
}

fn request_method(payload: &[u8]) -> Option<Method> {
    let sp = payload.iter().take(17).position(|&b| b == b' ')?;
    let method = Method::from_token(&payload[..sp])?;
    // The request line must end with an HTTP/1 version when it was captured whole.
    let line_end = payload.windows(2).position(|w| w == b"\r\n");
    match line_end {
        Some(end) => {
            let line = &payload[..end];
            (line.len() >= 8 && line[line.len() - 8..].starts_with(b"HTTP/1.")).then_some(method)
        }
        None => Some(method),
    }
}

fn status_code(payload: &[u8]) -> Option<u16> {
    if payload.len() < 12 || !payload.starts_with(b"HTTP/1.") || payload[8] != b' ' {
        return None;
    }
    let digits = &payload[9..12];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u16, |n, d| n * 10 + (d - b'0') as u16))
}

/// How long the body after a message's headers is, when the headers say.
enum Body {
    Length(u64),
    /// Chunked, or until close: boundaries unknown.
    Unknown,
}

fn body_of(headers: &[httparse::Header<'_>]) -> Body {
    let mut length = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Body::Unknown;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
        }
    }
    length.map_or(Body::Unknown, Body::Length)
}

/// Header lines read before a header block counts as malformed (as many as
/// a request's, which httparse reads into a fixed array).
const MAX_HEADERS: usize = 32;

/// Where a response's header block ends and how long its body is, from
/// `payload`, which starts with a status line `status_code` accepted:
/// `(None, Unknown)` when the block is not whole in `payload` or not well
/// formed (more than `MAX_HEADERS` lines, a folded line).
///
/// Lines end in CRLF or a bare LF (as httparse accepts them). Only a line
/// whose name is `Content-Length` or `Transfer-Encoding` (any case, the
/// colon right after the name) is looked into: a Transfer-Encoding makes
/// the length unknown, the last Content-Length counts.
fn response_framing(payload: &[u8]) -> (Option<usize>, Body) {
    const UNKNOWN: (Option<usize>, Body) = (None, Body::Unknown);
    // "HTTP/1.x NNN" is 12 bytes; a reason phrase or the line end follows.
    if !matches!(payload.get(12), Some(b' ' | b'\r' | b'\n')) {
        return UNKNOWN;
    }
    let mut ends = memchr::memchr_iter(b'\n', payload);
    let Some(status_end) = ends.next() else {
        return UNKNOWN;
    };
    let mut at = status_end + 1;
    let mut length = None;
    let mut chunked = false;
    for (lines, end) in ends.enumerate() {
        if lines > MAX_HEADERS {
            break;
        }
        let line = &payload[at..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at = end + 1;
        match line.first().map(u8::to_ascii_lowercase) {
            None => {
                let body = match length {
                    Some(n) if !chunked => Body::Length(n),
                    _ => Body::Unknown,
                };
                return (Some(at), body);
            }
            // Obsolete line folding: httparse refuses it in responses.
            Some(b' ' | b'\t') => return UNKNOWN,
            Some(b'c') => {
                if let Some(v) = header_value(line, b"content-length") {
                    length = std::str::from_utf8(v)
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok());
                }
            }
            Some(b't') => chunked |= header_value(line, b"transfer-encoding").is_some(),
            Some(_) => {}
        }
    }
    UNKNOWN
}

/// The value of `line` when it is the header `name` (lowercase).
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let (head, value) = line.split_at_checked(name.len())?;
    let value = value.strip_prefix(b":")?;
    head.eq_ignore_ascii_case(name).then_some(value)
}

/// `a` is strictly before `b` in sequence space.
fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Per-direction position: where the next message starts, when known, and
/// where the last one started (to ignore retransmissions).
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    next: Option<u32>,
    last_start: Option<u32>,
}

impl Cursor {
    /// Whether a segment at `seq` may start a message.
    fn at_boundary(&self, seq: u32) -> bool {
        if let Some(last) = self.last_start {
            if seq == last || seq_before(seq, last) {
                return false;
            }
        }
        match self.next {
            Some(next) => seq == next,
            None => true,
        }
    }

    fn started(&mut self, seq: u32, header_len: Option<usize>, body: Body) {
        self.last_start = Some(seq);
        self.next = match (header_len, body) {
            (Some(h), Body::Length(b)) if b < u32::MAX as u64 => {
                Some(seq.wrapping_add(h as u32).wrapping_add(b as u32))
            }
            _ => None,
        };
    }
}

/// HTTP/1 state of one connection. Bounded: at most `max_pending` requests
/// wait for responses; older ones are dropped and counted.
#[derive(Debug)]
pub struct Http1 {
    requests: Cursor,
    responses: Cursor,
    pending: VecDeque<(Method, Timestamp)>,
    max_pending: usize,
    /// Requests that never got a response (dropped from a full queue).
    pub unanswered: u64,
    /// The connection switched protocols (101) or is a CONNECT tunnel.
    done: bool,
}

impl Http1 {
    pub fn new(max_pending: usize) -> Self {
        Http1 {
            requests: Cursor::default(),
            responses: Cursor::default(),
            pending: VecDeque::new(),
            max_pending: max_pending.max(1),
            unanswered: 0,
            done: false,
        }
    }

    /// Requests waiting for a response.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Nothing more can be read: the connection switched protocols (101)
    /// or became a CONNECT tunnel, and no request waits for its response.
    pub fn is_over(&self) -> bool {
        self.done && self.pending.is_empty()
    }

    /// Client → server data. Returns the method when a request starts here.
    pub fn on_request_data(&mut self, ts: Timestamp, seq: u32, payload: &[u8]) -> Option<Method> {
        if self.done || payload.is_empty() || !self.requests.at_boundary(seq) {
            return None;
        }
        let method = request_method(payload)?;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let (header_len, body) = match req.parse(payload) {
            Ok(httparse::Status::Complete(n)) => (Some(n), body_of(req.headers)),
            _ => (None, Body::Unknown),
        };
        // A request without Content-Length or chunking has no body.
        let body = match (header_len, body) {
            (Some(_), Body::Unknown) if !is_chunked(req.headers) => Body::Length(0),
            (_, b) => b,
        };
        self.requests.started(seq, header_len, body);
        if self.pending.len() >= self.max_pending {
            self.pending.pop_front();
            self.unanswered += 1;
        }
        self.pending.push_back((method, ts));
        if method == Method::Connect {
            self.done = true;
        }
        Some(method)
    }

    /// Server → client data. Returns the exchange a final response completes.
    pub fn on_response_data(
        &mut self,
        ts: Timestamp,
        seq: u32,
        payload: &[u8],
    ) -> Option<Exchange> {
        if payload.is_empty() || !self.responses.at_boundary(seq) {
            return None;
        }
        let status = status_code(payload)?;
        let (header_len, body) = response_framing(payload);
        let head = self.pending.front().map(|(m, _)| *m);
        let bodyless = head == Some(Method::Head) || status == 204 || status == 304 || status < 200;
        let body = if bodyless { Body::Length(0) } else { body };
        self.responses.started(seq, header_len, body);
        if (100..200).contains(&status) && status != 101 {
            // Interim response: the final one follows.
            return None;
        }
        if status == 101 {
            self.done = true;
        }
        let (method, request_ts) = self.pending.pop_front()?;
        Some(Exchange {
            method,
            status,
            request_ts,
            latency_secs: ts.secs_since(request_ts),
        })
    }
}

/// The host part of a request's `Host` header (port removed, case and a
/// trailing dot kept: the name as the client wrote it), when the request's
/// headers are complete in `payload` and the header is valid UTF-8.
pub fn request_host(payload: &[u8]) -> Option<&str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(payload), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let value = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))?
        .value;
    host_part(std::str::from_utf8(value).ok()?)
}

/// The host of a `Host` header or an HTTP/2 `:authority`: `[v6]:port`,
/// `[v6]`, `name:port`, `name` (RFC 9110 §7.2).
pub fn host_part(value: &str) -> Option<&str> {
    let value = value.trim();
    let host = match value.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?,
        None => value.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

fn is_chunked(headers: &[httparse::Header<'_>]) -> bool {
    headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp(ms * 1_000_000)
    }

    #[test]
    fn keep_alive_requests_pair_with_responses_in_order() {
        let mut h = Http1::new(8);
        let req = b"GET / HTTP/1.1\r\nHost: demo-app\r\n\r\n";
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let mut cseq = 1000u32;
        let mut sseq = 5000u32;
        for i in 0..3u64 {
            assert_eq!(h.on_request_data(t(10 * i), cseq, req), Some(Method::Get));
            cseq += req.len() as u32;
            let ex = h
                .on_response_data(t(10 * i + 2), sseq, resp)
                .expect("response");
            sseq += resp.len() as u32;
            assert_eq!(ex.status, 200);
            assert!((ex.latency_secs - 0.002).abs() < 1e-9);
        }
        assert_eq!(h.pending(), 0);
    }

    #[test]
    fn body_bytes_that_look_like_a_status_line_are_not_a_response() {
        let mut h = Http1::new(8);
        h.on_request_data(t(0), 1, b"GET /a HTTP/1.1\r\n\r\n");
        h.on_request_data(t(0), 20, b"GET /b HTTP/1.1\r\n\r\n");
        // First response announces 30 body bytes, split over two segments.
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n";
        let ex = h.on_response_data(t(1), 100, head).unwrap();
        assert_eq!(ex.status, 200);
        let body_seq = 100 + head.len() as u32;
        // A body segment beginning with "HTTP/1.1 500" is body, not a response.
        assert!(h
            .on_response_data(t(2), body_seq, b"HTTP/1.1 500 not really......")
            .is_none());
        let ex = h
            .on_response_data(t(3), body_seq + 30, b"HTTP/1.1 404 Not Found\r\n\r\n")
            .unwrap();
        assert_eq!(ex.status, 404);
    }

    #[test]
    fn retransmitted_request_is_counted_once() {
        let mut h = Http1::new(8);
        let req = b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        assert!(h.on_request_data(t(0), 7, req).is_some());
        assert!(h.on_request_data(t(1), 7, req).is_none());
        assert_eq!(h.pending(), 1);
    }

    #[test]
    fn interim_and_head_responses() {
        let mut h = Http1::new(8);
        h.on_request_data(t(0), 1, b"HEAD / HTTP/1.1\r\n\r\n");
        assert!(h
            .on_response_data(t(1), 1, b"HTTP/1.1 100 Continue\r\n\r\n")
            .is_none());
        let ex = h
            .on_response_data(t(2), 26, b"HTTP/1.1 200 OK\r\nContent-Length: 612\r\n\r\n")
            .unwrap();
        assert_eq!((ex.method, ex.status), (Method::Head, 200));
    }

    #[test]
    fn not_http_is_ignored() {
        let mut h = Http1::new(8);
        assert!(h
            .on_request_data(t(0), 1, b"\x16\x03\x01\x02\x00")
            .is_none());
        assert!(h.on_request_data(t(0), 1, b"get / HTTP/1.1\r\n").is_none());
        assert!(h.on_request_data(t(0), 1, b"GET / SIP/2.0\r\n").is_none());
        assert!(h
            .on_response_data(t(0), 1, b"HTTP/1.1 2x0 OK\r\n")
            .is_none());
        assert!(!looks_like_request(b""));
    }

    #[test]
    fn pending_queue_is_bounded() {
        let mut h = Http1::new(2);
        for i in 0..5u32 {
            h.on_request_data(t(0), 1 + i * 100, b"GET / HTTP/1.1\r\n");
        }
        assert_eq!(h.pending(), 2);
        assert_eq!(h.unanswered, 3);
    }

    /// What `on_response_data` read before it stopped at the framing
    /// headers: httparse's whole parse of the header block.
    fn framing_by_httparse(payload: &[u8]) -> (Option<usize>, Option<u64>) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(payload) {
            Ok(httparse::Status::Complete(n)) => match body_of(resp.headers) {
                Body::Length(b) => (Some(n), Some(b)),
                Body::Unknown => (Some(n), None),
            },
            _ => (None, None),
        }
    }

    #[test]
    fn response_framing_agrees_with_a_whole_parse_at_every_cut() {
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-H{i}: v\r\n")).collect();
        let blocks: Vec<String> = vec![
            "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 615\r\nLast-Modified: Mon, 30 Nov 2026 10:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"abc\"\r\nAccept-Ranges: bytes\r\n\r\nbody".into(),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello".into(),
            "HTTP/1.1 200 OK\r\nCONTENT-LENGTH:   12  \r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 7\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: x\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nContent-Lengthy: 5\r\nTransfer-Encodings: x\r\n\r\n".into(),
            "HTTP/1.1 204 No Content\r\n\r\n".into(),
            "HTTP/1.0 404\r\nContent-Length: 0\r\n\r\n".into(),
            "HTTP/1.1 200 OK\nContent-Length: 3\n\nabc".into(),
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 1\r\n\r\n".into(),
            format!("HTTP/1.1 200 OK\r\n{many}\r\n"),
            format!("HTTP/1.1 200 OK\r\n{many}Content-Length: 1\r\n\r\n"),
        ];
        for block in &blocks {
            let bytes = block.as_bytes();
            for cut in 12..=bytes.len() {
                let p = &bytes[..cut];
                let lean = match response_framing(p) {
                    (n, Body::Length(b)) => (n, Some(b)),
                    (n, Body::Unknown) => (n, None),
                };
                assert_eq!(
                    lean,
                    framing_by_httparse(p),
                    "{:?}",
                    String::from_utf8_lossy(p)
                );
            }
        }
    }

    #[test]
    fn request_host_as_written() {
        let host = |r: &[u8]| request_host(r).map(str::to_string);
        assert_eq!(
            host(b"GET / HTTP/1.1\r\nHost: demo-app.default.svc.cluster.local.\r\n\r\n"),
            Some("demo-app.default.svc.cluster.local.".into())
        );
        assert_eq!(
            host(b"GET / HTTP/1.1\r\nhost:Demo-App:8080\r\n\r\n"),
            Some("Demo-App".into())
        );
        assert_eq!(
            host(b"GET / HTTP/1.1\r\nHost: [fd00::1]:80\r\n\r\n"),
            Some("fd00::1".into())
        );
        // No Host, an empty one, headers cut: nothing.
        assert_eq!(host(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"), None);
        assert_eq!(host(b"GET / HTTP/1.1\r\nHost: \r\n\r\n"), None);
        assert_eq!(host(b"GET / HTTP/1.1\r\nHost: demo-app\r\n"), None);
    }
}
