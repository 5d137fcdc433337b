//! TLS: the client's first flight of a connection, reassembled from TCP
//! segments (bounded), read for SNI and ALPN. No I/O, no allocation beyond
//! the bounded buffer, no panic on any input.
//!
//! The live capture keeps only the first bytes of each TCP segment
//! (`podpath_afpacket::filter::DEFAULT_TCP_PAYLOAD`, 1024). A ClientHello
//! longer than that (post-quantum key shares make them ~1.8 KB) is read up to
//! the cut: the SNI is found when it lies before it, and otherwise the hello
//! is reported as [`SniStatus::Unknown`].

mod hello;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use hello::{looks_like_hello, scan, Scan, TlsError};

#[cfg(any(test, feature = "testkit"))]
pub use hello::testkit::client_hello as hello_for_tests;

/// Bytes of the first client flight kept for reassembly.
pub const MAX_FLIGHT: usize = 16 * 1024;

/// What the hello said about the server name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SniStatus {
    /// The hello carried a host name.
    Present,
    /// The whole hello was read and it has no (valid) server_name.
    Absent,
    /// The hello was cut (capture snap length, a lost segment, the buffer
    /// bound) or malformed before any server_name was read.
    Unknown,
}

impl SniStatus {
    /// The metric label value when there is no name to show.
    pub fn label(self) -> &'static str {
        match self {
            SniStatus::Present => "",
            SniStatus::Absent => "~none",
            SniStatus::Unknown => "~unknown",
        }
    }
}

/// The outcome for one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    pub sni: Option<String>,
    pub status: SniStatus,
    /// The first protocol the client offered (ALPN), e.g. `h2`.
    pub alpn: Option<String>,
}

impl ClientHello {
    fn from_scan(s: Scan) -> ClientHello {
        let status = match (&s.sni, s.complete) {
            (Some(_), _) => SniStatus::Present,
            (None, true) => SniStatus::Absent,
            (None, false) if s.sni_invalid => SniStatus::Absent,
            (None, false) => SniStatus::Unknown,
        };
        ClientHello {
            sni: s.sni,
            status,
            alpn: s.alpn.into_iter().next(),
        }
    }

    fn unknown() -> ClientHello {
        ClientHello {
            sni: None,
            status: SniStatus::Unknown,
            alpn: None,
        }
    }
}

/// First-flight bytes the engine's pool allows per tracked flow: about what
/// one captured segment of a large hello holds (the live capture keeps 1 024
/// payload bytes per segment), which is what the memory model charges per
/// flow (`config::memory::FLOW_STATE`, with the tracker's own ~60 bytes).
pub const FLIGHT_BYTES_PER_FLOW: usize = 1_000;

/// The bytes every connection's first-flight buffer may hold together. Each
/// buffer is bounded ([`MAX_FLIGHT`]), but tens of thousands of connections
/// each sending its hello in small segments would hold gigabytes: past the
/// pool's capacity a hello stops growing and is read as cut
/// ([`SniStatus::Unknown`] when its SNI was not reached). Clones share the
/// pool; buffers give their bytes back when dropped.
#[derive(Clone, Debug)]
pub struct FlightPool {
    held: Arc<AtomicUsize>,
    capacity: usize,
}

impl FlightPool {
    pub fn new(capacity: usize) -> FlightPool {
        FlightPool {
            held: Arc::new(AtomicUsize::new(0)),
            capacity,
        }
    }

    /// Bytes held by live buffers.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes up to `want` bytes; returns how many were granted.
    fn take(&self, want: usize) -> usize {
        let granted = want.min(self.capacity.saturating_sub(self.held()));
        self.held.fetch_add(granted, Ordering::Relaxed);
        granted
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Default for FlightPool {
    /// No shared bound beyond each buffer's own.
    fn default() -> Self {
        FlightPool::new(usize::MAX)
    }
}

/// Reassembles the client's first flight, in sequence order, until the
/// ClientHello is complete or can no longer grow.
#[derive(Debug)]
pub struct HelloTracker {
    /// Sequence number of the first buffered byte.
    start: u32,
    buf: Vec<u8>,
    done: bool,
    pool: FlightPool,
    /// Bytes taken from `pool` (`buf`'s length), given back on drop.
    taken: usize,
}

impl Drop for HelloTracker {
    fn drop(&mut self) {
        self.pool.give_back(self.taken);
    }
}

impl HelloTracker {
    /// Starts on the connection's first client payload, if it looks like a
    /// ClientHello. The caller feeds that same segment next.
    pub fn start(seq: u32, payload: &[u8]) -> Option<HelloTracker> {
        Self::start_in(&FlightPool::default(), seq, payload)
    }

    /// [`HelloTracker::start`], its buffer drawn from `pool`.
    pub fn start_in(pool: &FlightPool, seq: u32, payload: &[u8]) -> Option<HelloTracker> {
        looks_like_hello(payload).then(|| HelloTracker {
            start: seq,
            buf: Vec::new(),
            done: false,
            pool: pool.clone(),
            taken: 0,
        })
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// A client segment: `payload` is what was captured of its
    /// `payload_len` bytes. Returns the hello once it is complete, or once
    /// it can no longer complete (cut, gap, malformed).
    pub fn on_client_data(
        &mut self,
        seq: u32,
        payload: &[u8],
        payload_len: u32,
    ) -> Option<ClientHello> {
        if self.done || payload_len == 0 {
            return None;
        }
        let expected = self.start.wrapping_add(self.buf.len() as u32);
        let offset = expected.wrapping_sub(seq);
        if offset >= payload_len {
            // Entirely before what is buffered (a retransmission), or a
            // segment after a gap (the offset wrapped).
            let ahead = seq.wrapping_sub(expected);
            return if ahead > 0 && ahead < (1 << 30) {
                self.finish()
            } else {
                None
            };
        }
        let fresh = payload.get(offset as usize..).unwrap_or(&[]);
        let room = MAX_FLIGHT.saturating_sub(self.buf.len());
        let take = self.pool.take(fresh.len().min(room));
        self.taken += take;
        // No more than granted: the buffer's capacity stays its length.
        self.buf.reserve_exact(take);
        self.buf.extend_from_slice(fresh.get(..take).unwrap_or(&[]));
        let cut = payload.len() < payload_len as usize || take < fresh.len();
        match scan(&self.buf) {
            Ok(s) if s.complete => {
                self.done = true;
                Some(ClientHello::from_scan(s))
            }
            Ok(s) if cut => {
                self.done = true;
                Some(ClientHello::from_scan(s))
            }
            Ok(_) => None,
            Err(_) => {
                self.done = true;
                Some(ClientHello::unknown())
            }
        }
    }

    /// The hello can no longer grow (the server answered, the connection
    /// ended): reports what was read, once.
    pub fn finish(&mut self) -> Option<ClientHello> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(match scan(&self.buf) {
            Ok(s) => ClientHello::from_scan(s),
            Err(_) => ClientHello::unknown(),
        })
    }
}

/// Whether a server name confirms a DNS name the app looked up: equal, or
/// one of `expansions` (the search-list forms of the name), ignoring case
/// and a trailing dot.
pub fn sni_matches<'a>(
    sni: &str,
    name: &str,
    expansions: impl IntoIterator<Item = &'a str>,
) -> bool {
    let norm = |s: &str| -> String { s.trim_end_matches('.').to_ascii_lowercase() };
    let sni = norm(sni);
    sni == norm(name) || expansions.into_iter().any(|e| norm(e) == sni)
}

#[cfg(test)]
mod tests {
    use super::hello::testkit::client_hello;
    use super::*;

    #[test]
    fn the_shared_pool_bounds_every_buffer_together_and_refills_on_drop() {
        // A 1500-byte hello arriving in 500-byte segments; the pool holds
        // 1200 bytes for all connections.
        let hello = client_hello(Some("late.example"), &[], 1300);
        let pool = FlightPool::new(1200);
        let feed = |t: &mut HelloTracker, upto: usize| {
            let mut out = None;
            for (i, part) in hello[..upto].chunks(500).enumerate() {
                let seq = 1000 + (i * 500) as u32;
                out = out.or(t.on_client_data(seq, part, part.len() as u32));
            }
            out
        };
        let mut a = HelloTracker::start_in(&pool, 1000, &hello).unwrap();
        assert_eq!(feed(&mut a, 1000), None, "still reading");
        assert_eq!(pool.held(), 1000);
        // The second connection gets the 200 bytes left: its hello is cut
        // before the SNI.
        let mut b = HelloTracker::start_in(&pool, 1000, &hello).unwrap();
        let cut = feed(&mut b, 1000).expect("cut by the pool");
        assert_eq!(cut.status, SniStatus::Unknown);
        assert_eq!(pool.held(), 1200);
        drop(b);
        drop(a);
        assert_eq!(pool.held(), 0);
        // With the bytes back, a hello completes.
        let big = FlightPool::new(4096);
        let mut c = HelloTracker::start_in(&big, 1000, &hello).unwrap();
        let h = feed(&mut c, hello.len()).expect("complete");
        assert_eq!(h.sni.as_deref(), Some("late.example"));
        drop(c);
        assert_eq!(big.held(), 0);
    }

    #[test]
    fn hello_split_in_two_segments() {
        let hello = client_hello(Some("demo-app.default.svc"), &["h2"], 300);
        let (a, b) = hello.split_at(200);
        let mut t = HelloTracker::start(1000, a).unwrap();
        assert_eq!(t.on_client_data(1000, a, a.len() as u32), None);
        // A retransmission of the first segment changes nothing.
        assert_eq!(t.on_client_data(1000, a, a.len() as u32), None);
        let h = t.on_client_data(1200, b, b.len() as u32).expect("complete");
        assert_eq!(h.sni.as_deref(), Some("demo-app.default.svc"));
        assert_eq!(h.status, SniStatus::Present);
        assert_eq!(h.alpn.as_deref(), Some("h2"));
        assert!(t.is_done());
        assert_eq!(t.finish(), None);
    }

    #[test]
    fn capture_cut_before_the_sni_is_unknown_after_it_is_present() {
        // 1500-byte hello, 1024 bytes captured per segment.
        let late = client_hello(Some("late.example"), &[], 1300);
        let mut t = HelloTracker::start(1, &late).unwrap();
        let h = t
            .on_client_data(1, &late[..1024], late.len() as u32)
            .unwrap();
        assert_eq!(h.status, SniStatus::Unknown);
        assert_eq!(h.status.label(), "~unknown");

        let mut early = client_hello(Some("early.example"), &["h2"], 0);
        early.truncate(early.len() - 1);
        let mut t = HelloTracker::start(1, &early).unwrap();
        let h = t.on_client_data(1, &early, 1400).unwrap();
        assert_eq!(h.sni.as_deref(), Some("early.example"));
    }

    #[test]
    fn no_sni_and_gaps() {
        let hello = client_hello(None, &[], 0);
        let mut t = HelloTracker::start(7, &hello).unwrap();
        let h = t.on_client_data(7, &hello, hello.len() as u32).unwrap();
        assert_eq!(h.status, SniStatus::Absent);

        // The second segment is lost: the third ends reassembly.
        let hello = client_hello(Some("gap.example"), &[], 600);
        let mut t = HelloTracker::start(0, &hello).unwrap();
        assert_eq!(t.on_client_data(0, &hello[..100], 100), None);
        let h = t.on_client_data(400, &hello[400..], 300).unwrap();
        assert_eq!(h.status, SniStatus::Unknown);
    }

    #[test]
    fn not_a_hello_does_not_start() {
        assert!(HelloTracker::start(1, b"GET / HTTP/1.1\r\n").is_none());
        assert!(HelloTracker::start(1, &[22, 3, 3, 0, 5, 2]).is_none());
    }

    #[test]
    fn sni_matching_accepts_search_forms() {
        assert!(sni_matches("Demo-App.", "demo-app", []));
        assert!(sni_matches(
            "demo-app.default.svc.cluster.local",
            "demo-app",
            ["demo-app.default.svc.cluster.local"]
        ));
        assert!(!sni_matches(
            "other.example",
            "demo-app",
            ["demo-app.default.svc"]
        ));
    }
}

#[cfg(test)]
mod prop {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Arbitrary first flights, in arbitrary segments, never panic and
        /// never buffer past the bound.
        #[test]
        fn arbitrary_flights_never_panic(
            head in proptest::collection::vec(any::<u8>(), 0..64),
            segments in proptest::collection::vec(
                (0u32..20_000, proptest::collection::vec(any::<u8>(), 0..2_000), 0u32..3_000),
                0..8,
            ),
        ) {
            let _ = scan(&head);
            let mut first = vec![22u8, 3, 1, 0x02, 0x00, 1];
            first.extend_from_slice(&head);
            let started = HelloTracker::start(0, &first);
            prop_assert!(started.is_some());
            if let Some(mut t) = started {
                let _ = t.on_client_data(0, &first, first.len() as u32);
                for (seq, bytes, extra) in &segments {
                    let _ = t.on_client_data(*seq, bytes, bytes.len() as u32 + extra);
                    prop_assert!(t.buf.len() <= MAX_FLIGHT);
                }
                let _ = t.finish();
                prop_assert!(t.is_done());
            }
        }
    }
}
