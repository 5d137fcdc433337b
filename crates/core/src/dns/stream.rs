//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message is preceded by a
//! 2-byte big-endian length.
//!
//! ```text
//! +--------+--------+----------------------+--------+--------+-----
//! | len hi | len lo |  message (len bytes) | len hi | len lo | ...
//! +--------+--------+----------------------+--------+--------+-----
//! ```
//!
//! One reassembly state per direction (source → destination). A SYN starts a
//! direction at `seq + 1`; data seen without a SYN (capture joined late) is
//! assumed to start at a message boundary. Bytes already consumed
//! (retransmissions) are trimmed; segments from the future are held, a few
//! and bounded, until the gap fills. A gap that cannot be filled, or bytes the
//! snap length cut, drop the partial message and resynchronise on the next
//! segment (assumed to start a message; resolvers write one message per
//! segment). A segment after a gap at a message boundary that is itself
//! whole, plausible messages resynchronises at once (the capture lost the
//! missing bytes; a late copy of them would count as a retransmission). FIN ends a direction, RST both; a partial message left then is
//! counted as `cut`.
//!
//! Memory: at most `max_streams` directions, each with a buffer of at most
//! `MAX_BUFFER` bytes and `MAX_HELD_BYTES` of held segments.

use std::net::SocketAddr;

use super::wire;
use crate::decode::TcpSegment;
use crate::hash::HashMap;
use crate::Timestamp;

/// One partial message (≤ 65 537 bytes) plus one arriving segment fit.
const MAX_BUFFER: usize = 192 * 1024;
const MAX_HELD_SEGMENTS: usize = 4;
const MAX_HELD_BYTES: usize = 16 * 1024;

/// Counters of what reassembly met; cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Segments whose bytes had all been consumed already.
    pub retransmitted: u64,
    /// Segments held because an earlier one was missing.
    pub out_of_order: u64,
    /// Gaps given up on (partial message dropped, resynchronised).
    pub gaps: u64,
    /// Directions that ended (FIN, RST, idle, eviction, end of input) inside a message.
    pub cut: u64,
    /// Directions dropped to make room for a new one.
    pub evicted: u64,
    /// Directions first seen without their SYN.
    pub joined: u64,
    /// Zero-length messages skipped.
    pub empty_messages: u64,
}

type Key = (SocketAddr, SocketAddr);

#[derive(Debug)]
struct Direction {
    next_seq: u32,
    buf: Vec<u8>,
    held: Vec<(u32, Vec<u8>)>,
    last_seen: Timestamp,
}

impl Direction {
    fn new(next_seq: u32, ts: Timestamp) -> Self {
        Direction {
            next_seq,
            buf: Vec::new(),
            held: Vec::new(),
            last_seen: ts,
        }
    }

    fn held_bytes(&self) -> usize {
        self.held.iter().map(|(_, d)| d.len()).sum()
    }
}

/// Reassembles DNS messages from TCP segments.
#[derive(Debug)]
pub struct Streams {
    map: HashMap<Key, Direction>,
    max_streams: usize,
    stats: StreamStats,
}

/// What `Streams::segment` did besides handing out messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentOutcome {
    /// A direction was evicted to make room.
    pub evicted: bool,
}

impl Streams {
    pub fn new(max_streams: usize) -> Self {
        Streams {
            map: HashMap::default(),
            max_streams: max_streams.max(1),
            stats: StreamStats::default(),
        }
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Feeds one segment travelling `src` → `dst`; calls `on_message` with
    /// each complete message (without its length prefix), in order.
    pub fn segment(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        seg: &TcpSegment<'_>,
        mut on_message: impl FnMut(&[u8]),
    ) -> SegmentOutcome {
        let mut outcome = SegmentOutcome::default();
        let key = (src, dst);
        if seg.flags.rst() {
            self.forget(&key);
            self.forget(&(dst, src));
            return outcome;
        }
        let mut seq = seg.seq;
        if seg.flags.syn() {
            seq = seq.wrapping_add(1);
            self.forget(&key);
            outcome.evicted = self.make_room();
            self.map.insert(key, Direction::new(seq, ts));
        }
        if seg.payload_len > 0 {
            if !self.map.contains_key(&key) {
                self.stats.joined += 1;
                outcome.evicted |= self.make_room();
                self.map.insert(key, Direction::new(seq, ts));
            }
            if let Some(dir) = self.map.get_mut(&key) {
                dir.last_seen = ts;
                accept(dir, &mut self.stats, seq, seg.payload, seg.payload_len);
                extract(dir, &mut self.stats, &mut on_message);
            }
        }
        if seg.flags.fin() {
            self.forget(&key);
        }
        outcome
    }

    /// Drops directions idle for longer than `idle_secs`.
    pub fn expire(&mut self, now: Timestamp, idle_secs: f64) {
        let stats = &mut self.stats;
        self.map.retain(|_, d| {
            let keep = now.secs_since(d.last_seen) <= idle_secs;
            if !keep && !d.buf.is_empty() {
                stats.cut += 1;
            }
            keep
        });
    }

    /// End of input: every partial message is cut.
    pub fn flush(&mut self) {
        for d in self.map.values() {
            if !d.buf.is_empty() {
                self.stats.cut += 1;
            }
        }
        self.map.clear();
    }

    fn forget(&mut self, key: &Key) {
        if let Some(d) = self.map.remove(key) {
            if !d.buf.is_empty() {
                self.stats.cut += 1;
            }
        }
    }

    /// Evicts the least recently seen direction when the table is full.
    fn make_room(&mut self) -> bool {
        if self.map.len() < self.max_streams {
            return false;
        }
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, d)| d.last_seen)
            .map(|(k, _)| *k);
        match oldest {
            Some(k) => {
                self.forget(&k);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }
}

/// Places `data` (sequence `seq`, `wire_len` bytes on the wire of which
/// `data` were captured) into the direction's buffer or holds it.
fn accept(dir: &mut Direction, stats: &mut StreamStats, seq: u32, data: &[u8], wire_len: u32) {
    // Distance in sequence space, modulo 2^32: negative = already consumed.
    let offset = seq.wrapping_sub(dir.next_seq) as i32;
    if offset > 0 {
        if dir.buf.is_empty() && data.len() as u32 == wire_len && whole_messages(data) {
            // A gap at a message boundary, and this segment is one or more
            // whole, plausible messages: the missing bytes were most likely
            // lost by the capture (the peer acked them), so waiting for them
            // would lose this message too. Packet tools decode it as well.
            resync(dir, stats, seq);
            append(dir, stats, data, wire_len);
            return;
        }
        let fits = (offset as usize) <= MAX_BUFFER
            && dir.held.len() < MAX_HELD_SEGMENTS
            && dir.held_bytes() + data.len() <= MAX_HELD_BYTES
            && data.len() as u32 == wire_len;
        if fits {
            stats.out_of_order += 1;
            dir.held.push((seq, data.to_vec()));
        } else {
            resync(dir, stats, seq);
            append(dir, stats, data, wire_len);
        }
        return;
    }
    let skip = offset.unsigned_abs();
    if skip >= wire_len {
        stats.retransmitted += 1;
        return;
    }
    let data = data.get(skip as usize..).unwrap_or(&[]);
    append(dir, stats, data, wire_len.saturating_sub(skip));
    // Held segments that now touch or overlap the buffer's end, in order.
    while let Some(pos) = dir
        .held
        .iter()
        .position(|(s, _)| s.wrapping_sub(dir.next_seq) as i32 <= 0)
    {
        let (s, d) = dir.held.swap_remove(pos);
        let skip = dir.next_seq.wrapping_sub(s);
        if (skip as usize) < d.len() {
            let rest = d.get(skip as usize..).unwrap_or(&[]);
            let len = rest.len() as u32;
            append(dir, stats, rest, len);
        }
    }
}

/// Appends in-order bytes: `data` starts at `dir.next_seq` and covers
/// `wire_len` bytes of sequence space (more than `data.len()` when the snap
/// length cut the segment).
fn append(dir: &mut Direction, stats: &mut StreamStats, data: &[u8], wire_len: u32) {
    if dir.buf.len() + data.len() > MAX_BUFFER {
        stats.gaps += 1;
        dir.buf.clear();
    }
    dir.buf.extend_from_slice(data);
    dir.next_seq = dir.next_seq.wrapping_add(wire_len);
    if (data.len() as u32) < wire_len {
        // The snap length cut this segment: the bytes after the captured ones
        // are lost. Whole messages stay for `extract`; the partial one goes,
        // and the next segment is taken as the start of a message.
        stats.gaps += 1;
        dir.held.clear();
        let complete = complete_prefix(&dir.buf);
        dir.buf.truncate(complete);
    }
}

/// Length of the longest prefix of `buf` made of whole length-prefixed messages.
fn complete_prefix(buf: &[u8]) -> usize {
    let mut at = 0;
    while let Some(len) = prefix_at(buf, at) {
        let end = at + 2 + len;
        if end > buf.len() {
            break;
        }
        at = end;
    }
    at
}

fn prefix_at(buf: &[u8], at: usize) -> Option<usize> {
    match (buf.get(at), buf.get(at + 1)) {
        (Some(&hi), Some(&lo)) => Some(u16::from_be_bytes([hi, lo]) as usize),
        _ => None,
    }
}

/// Whether `data` is exactly a run of whole length-prefixed messages, each
/// with a plausible DNS header: counts that fit its length (the check
/// [`wire::Header::check`] makes before parsing), a defined opcode and at
/// most a few questions. Random bytes at a segment start rarely pass.
fn whole_messages(data: &[u8]) -> bool {
    let mut at = 0;
    while at < data.len() {
        let Some(len) = prefix_at(data, at) else {
            return false;
        };
        let Some(msg) = data.get(at + 2..at + 2 + len) else {
            return false;
        };
        let Ok(h) = wire::Header::check(msg) else {
            return false;
        };
        if !matches!(h.opcode(), 0 | 1 | 2 | 4 | 5 | 6) || h.qdcount > 4 {
            return false;
        }
        at += 2 + len;
    }
    at > 0
}

/// Gives up on the current partial message and held segments; the next
/// bytes (at `seq`) are taken as the start of a message.
fn resync(dir: &mut Direction, stats: &mut StreamStats, seq: u32) {
    stats.gaps += 1;
    dir.buf.clear();
    dir.held.clear();
    dir.next_seq = seq;
}

/// Hands out every complete message at the front of the buffer.
fn extract(dir: &mut Direction, stats: &mut StreamStats, on_message: &mut impl FnMut(&[u8])) {
    let mut at = 0;
    while let Some(len) = prefix_at(&dir.buf, at) {
        let start = at + 2;
        let Some(msg) = dir.buf.get(start..start + len) else {
            break;
        };
        if len == 0 {
            stats.empty_messages += 1;
        } else {
            on_message(msg);
        }
        at = start + len;
    }
    if at > 0 {
        dir.buf.drain(..at.min(dir.buf.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn seg(seq: u32, flags: u8, payload: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            src_port: 40000,
            dst_port: 53,
            seq,
            ack: 0,
            flags: TcpFlags(flags),
            payload,
            payload_len: payload.len() as u32,
        }
    }

    fn framed(msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            out.extend_from_slice(&(m.len() as u16).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    struct Harness {
        streams: Streams,
        got: Vec<Vec<u8>>,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                streams: Streams::new(8),
                got: Vec::new(),
            }
        }
        fn feed(&mut self, s: TcpSegment<'_>) {
            let got = &mut self.got;
            self.streams.segment(
                Timestamp(1),
                addr("10.0.0.1:40000"),
                addr("10.0.0.10:53"),
                &s,
                |m| got.push(m.to_vec()),
            );
        }
    }

    const ACK: u8 = TcpFlags::ACK;

    #[test]
    fn split_prefix_and_split_message() {
        let bytes = framed(&[b"hello world"]);
        let mut h = Harness::new();
        h.feed(seg(999, TcpFlags::SYN, &[]));
        h.feed(seg(1000, ACK, &bytes[..1]));
        assert!(h.got.is_empty());
        h.feed(seg(1001, ACK, &bytes[1..6]));
        assert!(h.got.is_empty());
        h.feed(seg(1006, ACK, &bytes[6..]));
        assert_eq!(h.got, vec![b"hello world".to_vec()]);
    }

    #[test]
    fn three_messages_in_one_segment() {
        let bytes = framed(&[b"one", b"two", b"three"]);
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        h.feed(seg(1, ACK, &bytes));
        assert_eq!(
            h.got,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn retransmission_is_not_delivered_twice() {
        let bytes = framed(&[b"abc", b"defg"]);
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        h.feed(seg(1, ACK, &bytes[..5]));
        h.feed(seg(1, ACK, &bytes[..5]));
        assert_eq!(h.streams.stats().retransmitted, 1);
        // A retransmission overlapping new data delivers only the new part.
        h.feed(seg(1, ACK, &bytes));
        assert_eq!(h.got, vec![b"abc".to_vec(), b"defg".to_vec()]);
    }

    #[test]
    fn out_of_order_segments_are_held_until_the_gap_fills() {
        let bytes = framed(&[b"first", b"second"]);
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        h.feed(seg(5, ACK, &bytes[4..]));
        assert!(h.got.is_empty());
        assert_eq!(h.streams.stats().out_of_order, 1);
        h.feed(seg(1, ACK, &bytes[..4]));
        assert_eq!(h.got, vec![b"first".to_vec(), b"second".to_vec()]);
    }

    #[test]
    fn unfillable_gap_resyncs_on_the_next_message() {
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        h.feed(seg(1, ACK, &framed(&[b"partial message"])[..6]));
        // Far beyond anything that could be held: give up and restart.
        let next = framed(&[b"fresh"]);
        h.feed(seg(1_000_000, ACK, &next));
        assert_eq!(h.got, vec![b"fresh".to_vec()]);
        assert_eq!(h.streams.stats().gaps, 1);
    }

    /// A DNS header + question for `id`, as a resolver writes it.
    fn query(id: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(b"\x03www\x06google\x03com\x00\x00\x01\x00\x01");
        m
    }

    #[test]
    fn gap_before_a_whole_plausible_message_resyncs_at_once() {
        // suricata-verify dns-tcp-ts-gap: the capture lost the client's
        // second query; the third starts a later segment.
        let (q0, q1, q2) = (query(0), query(1), query(2));
        let (s0, s1, s2) = (framed(&[&q0]), framed(&[&q1]), framed(&[&q2]));
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        h.feed(seg(1, ACK, &s0));
        let lost = 1 + s0.len() as u32;
        h.feed(seg(lost + s1.len() as u32, ACK, &s2));
        assert_eq!(h.got, vec![q0, q2]);
        assert_eq!(h.streams.stats().gaps, 1);
        assert_eq!(h.streams.stats().out_of_order, 0);
        // The lost bytes showing up late are behind the stream now.
        h.feed(seg(lost, ACK, &s1));
        assert_eq!(h.got.len(), 2);
        assert_eq!(h.streams.stats().retransmitted, 1);
    }

    #[test]
    fn gap_before_implausible_bytes_still_waits() {
        let q = query(7);
        let bytes = framed(&[&q]);
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        // The second half of a message: not a plausible start.
        h.feed(seg(1 + 10, ACK, &bytes[10..]));
        assert_eq!(h.streams.stats().out_of_order, 1);
        assert_eq!(h.streams.stats().gaps, 0);
        h.feed(seg(1, ACK, &bytes[..10]));
        assert_eq!(h.got, vec![q]);
        // A length prefix whose header claims more records than fit.
        let mut bogus = query(8);
        bogus[7] = 200;
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        h.feed(seg(50, ACK, &framed(&[&bogus])));
        assert_eq!(h.streams.stats().out_of_order, 1);
        assert!(h.got.is_empty());
    }

    #[test]
    fn cut_stream_counts_and_forgets() {
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        h.feed(seg(1, ACK | TcpFlags::FIN, &framed(&[b"truncated"])[..5]));
        assert!(h.got.is_empty());
        assert_eq!(h.streams.stats().cut, 1);
        assert!(h.streams.is_empty());
        h.feed(seg(0, TcpFlags::SYN, &[]));
        h.feed(seg(1, ACK, &framed(&[b"xx"])[..3]));
        h.feed(seg(4, TcpFlags::RST, &[]));
        assert_eq!(h.streams.stats().cut, 2);
        assert!(h.streams.is_empty());
    }

    #[test]
    fn joined_mid_stream_assumes_a_boundary() {
        let mut h = Harness::new();
        h.feed(seg(777, ACK, &framed(&[b"msg"])));
        assert_eq!(h.got, vec![b"msg".to_vec()]);
        assert_eq!(h.streams.stats().joined, 1);
    }

    #[test]
    fn snap_length_cut_drops_only_the_partial_message() {
        let bytes = framed(&[b"whole", b"cut-off-message"]);
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        let mut s = seg(1, ACK, &bytes[..10]);
        s.payload_len = bytes.len() as u32;
        h.feed(s);
        h.feed(seg(1 + bytes.len() as u32, ACK, &framed(&[b"next"])));
        assert_eq!(h.got, vec![b"whole".to_vec(), b"next".to_vec()]);
    }

    #[test]
    fn idle_directions_expire() {
        let mut h = Harness::new();
        h.feed(seg(0, TcpFlags::SYN, &[]));
        h.feed(seg(1, ACK, &framed(&[b"partial"])[..4]));
        h.streams.expire(Timestamp::from_secs_f64(30.0), 60.0);
        assert_eq!(h.streams.len(), 1);
        h.streams.expire(Timestamp::from_secs_f64(62.0), 60.0);
        assert!(h.streams.is_empty());
        assert_eq!(h.streams.stats().cut, 1);
    }

    #[test]
    fn table_is_bounded() {
        let mut streams = Streams::new(2);
        let s = seg(0, TcpFlags::SYN, &[]);
        let mut evicted = 0;
        for port in 0..5u16 {
            let src = SocketAddr::from(([10, 0, 0, 1], 1000 + port));
            let o = streams.segment(
                Timestamp(port as u64),
                src,
                addr("10.0.0.10:53"),
                &s,
                |_| {},
            );
            evicted += o.evicted as u32;
        }
        assert_eq!(streams.len(), 2);
        assert_eq!(evicted, 3);
        assert_eq!(streams.stats().evicted, 3);
    }
}
