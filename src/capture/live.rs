//! Live capture on the interfaces of the current network namespace.
//!
//! One filtered AF_PACKET socket per interface (see `podpath_afpacket`: the
//! classic BPF program keeps DNS whole, TCP to headers plus the first
//! payload bytes, UDP to headers, ICMP errors, and drops TCP pure ACKs and
//! the outgoing copy of loopback packets), all read by the calling thread
//! and merged across interfaces in kernel timestamp order. Two ways to read
//! (`CaptureMode`):
//!
//! - `ring` (the default, through `auto`): a TPACKET_V3 ring mapped into the
//!   process, no system call per frame; `poll()` only once every block
//!   handed over has been read. The kernel hands a block over when it is full
//!   or after its retire timer (8 ms), so a frame may become visible up to
//!   that late. With several interfaces a frame is therefore yielded only
//!   once it is older than a hold time (`RING_HOLD`) or every other
//!   interface has a later frame: frames still come out in time order.
//!   Wake-ups are batched: each costs a `poll`, a clock read and a context
//!   switch, which under light traffic outweighed the frames themselves, so
//!   the reader sleeps between batches long enough for `FRAMES_PER_WAKE`
//!   frames at the current rate (16 ms up to what the ring absorbs of a
//!   burst: 62.5 ms for one 4 MiB ring, 30.5 ms with the hold of several).
//! - `recvmsg`: one `recvmsg()` per frame, `poll()` when every socket is
//!   empty; a frame is visible as soon as it is queued, so nothing is held.
//!
//! When nothing arrives within the poll interval the source yields
//! `Next::Idle` with the wall clock (less the hold time in ring mode), the
//! same CLOCK_REALTIME the kernel stamps packets with, so the engine's
//! timeouts still fire when traffic stops.
//!
//! An interface that cannot be captured (no CAP_NET_RAW, missing, down,
//! ring refused, a socket error later) does not stop the others: it is
//! failed with a reason (`super::health`), retried with backoff by
//! `LiveSource::maintain`, and a socket that breaks later is closed and
//! reopened the same way. An interface that goes down keeps its socket: the
//! kernel resumes it when the interface is up again; if it was deleted
//! instead, the socket is bound to nothing and is reopened by name.
//!
//! Frames are Ethernet (on `lo` with a zeroed header); the direction comes
//! from the kernel (`sll_pkttype`), not from addresses.
//!
//! Timestamps: the kernel stamps frames only while some socket on the
//! machine asks for it, and turns this on lazily (a static key flipped from
//! a workqueue, usually within milliseconds of the first such socket). Frames
//! captured before that carry the time they were read, so during the first
//! moments after `open` on an otherwise quiet machine the order across
//! interfaces is the read order.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pnet_datalink::NetworkInterface;
use podpath_afpacket::{
    capture_filter, FilterSpec, Frame, Options, Poller, Ring, RingOptions, Socket,
};

use super::health::{Backoff, FailReason, Health, Log};
use super::{CaptureError, InterfaceStats, Next, PacketSource, RawPacket};
use crate::decode::{LinkType, PacketType};
use crate::Timestamp;

/// Read buffer per interface: larger than any frame the kernel hands over
/// (veth and loopback deliver GRO/GSO frames up to 64 KiB and more), so that
/// a frame the filter keeps whole is never cut here.
pub const READ_BUFFER: usize = 256 * 1024;
/// Default socket receive buffer, against drops in bursts. The kernel
/// charges each queued frame its whole skb (a 64 KiB GRO frame counts fully
/// even when the filter keeps 1158 bytes) and doubles the value asked for.
/// Measured on veth with a 2 GB/s TCP burst on 2 busy cores: 4 MiB dropped
/// ~0.5 % of frames, 8 MiB up to 1 %, 16 MiB none. Memory is only held while
/// the reader lags.
pub const DEFAULT_RCVBUF: usize = 16 << 20;
/// Default TPACKET_V3 ring per interface. The mapping stays resident (it
/// counts in RSS). A frame costs its snap length plus ~80 bytes of headers in
/// the ring, so at 50 000 frames/s of ~400 bytes 4 MiB holds ~200 ms of
/// traffic while the reader is descheduled.
pub const DEFAULT_RING_SIZE: usize = 4 << 20;
/// How long the kernel keeps a block that is not full before handing it over.
pub const RING_RETIRE_MS: u32 = 8;
/// With several interfaces, how old a ring frame must be before it is
/// yielded while another interface shows nothing later: the retire timer,
/// twice over for timer slack, plus 16 ms for a late softirq.
pub const RING_HOLD: Duration = Duration::from_millis(2 * RING_RETIRE_MS as u64 + 16);
/// The shortest wait for a held frame to come of age: frames are then
/// yielded in batches of at least this much traffic, one `poll` each. Each
/// wake-up costs a `poll`, a clock read and a context switch (~15 µs here
/// on a busy 2-core VM): at 4 ms podpath woke ~200 times a second under the
/// benchmark load, tcpdump ~46. The reader lags the kernel by the hold time
/// plus this, which the ring must hold (48 ms: ~1.1 MiB at 50 000 frames/s).
const RING_MIN_WAIT: Duration = Duration::from_millis(2 * RING_RETIRE_MS as u64);
/// The longest a ring reader lets frames gather between wake-ups when
/// traffic is light (see [`batch_period`]); tcpdump's libpcap waits up to
/// its 1 s timeout. Bounded further by the ring size (`BURST_BYTES_PER_SEC`).
const RING_MAX_WAIT: Duration = Duration::from_millis(64);
/// Frames a wake-up should find: below this rate the wait between wake-ups
/// grows (at ~190 frames/s podpath woke ~59 times a second, tcpdump once,
/// and the wake-ups were nearly all of podpath's CPU).
const FRAMES_PER_WAKE: u64 = 512;
/// A burst that starts while the reader sleeps its longest wait must fit in
/// the ring: the reader then lags by the hold time plus the wait, which may
/// not exceed ring bytes / this rate (62.5 ms for 4 MiB; 30.5 ms of wait
/// with the 32 ms hold of several interfaces).
const BURST_BYTES_PER_SEC: u64 = 64 << 20;
/// Default poll timeout: the longest an idle source waits before yielding
/// `Idle`, and the longest a stop request waits to be seen.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How frames are read from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CaptureMode {
    /// The ring; `recvmsg` if the kernel refuses the ring (logged).
    Auto,
    /// A TPACKET_V3 ring mapped into the process.
    Ring,
    /// One `recvmsg()` per frame.
    Recvmsg,
}

/// What to capture and how.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface names; empty means every interface that is up.
    pub interfaces: Vec<String>,
    pub mode: CaptureMode,
    /// Ring bytes per interface (ring mode).
    pub ring_size: usize,
    /// Socket receive buffer in bytes (recvmsg mode); `None` keeps the
    /// kernel default.
    pub rcvbuf: Option<usize>,
    /// TCP payload bytes kept past the headers (HTTP/1 heads, TLS ClientHello).
    pub tcp_payload: u32,
    /// The capturing process's own DNS client (local port, server:53): the
    /// kernel filter drops its datagrams both ways.
    pub own_dns: Option<(u16, std::net::SocketAddr)>,
    /// Drop TCP segments with no SYN, FIN, RST or payload (pure ACKs) in the
    /// kernel: the engine reads nothing in them but the time a connection
    /// was last active (see `podpath_afpacket::filter`).
    pub drop_pure_acks: bool,
    pub poll_interval: Duration,
    /// Set it (from a signal handler, say) to end the capture: the next call
    /// returns `Next::End` within one poll interval.
    pub stop: Arc<AtomicBool>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            interfaces: Vec::new(),
            mode: CaptureMode::Auto,
            ring_size: DEFAULT_RING_SIZE,
            rcvbuf: Some(DEFAULT_RCVBUF),
            tcp_payload: podpath_afpacket::filter::DEFAULT_TCP_PAYLOAD,
            own_dns: None,
            drop_pure_acks: false,
            poll_interval: DEFAULT_POLL_INTERVAL,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

enum Reader {
    /// Holds the head frame's bytes in `buf`.
    Recv { socket: Socket, buf: Vec<u8> },
    /// Holds the head frame in the ring, kept unread until it is yielded.
    Ring(Ring),
}

struct Capture {
    name: String,
    /// The interface the reader is bound to (its index changes when the
    /// interface is deleted and created again).
    ifindex: u32,
    /// `None` while failed without a socket (see `health`).
    reader: Option<Reader>,
    health: Health,
    /// The frame read ahead from this interface, not yet yielded.
    head: Option<Head>,
    /// Time up to which this interface is known to have no frame besides
    /// the head: every frame stamped before it was read. The end of time
    /// while there is no reader, so a failed interface holds nothing back.
    empty_as_of: Timestamp,
    /// Cumulative PACKET_STATISTICS (the kernel resets them on each read).
    received: u64,
    dropped: u64,
    /// Corrupt ring blocks already logged.
    bad_blocks: u64,
}

#[derive(Clone, Copy)]
struct Head {
    ts: Timestamp,
    len: usize,
    orig_len: u32,
    pkttype: u8,
}

/// What one read attempt found.
enum Refill {
    Frame,
    Empty,
    /// The kernel reported the interface down (ENETDOWN).
    Down,
    Failed(io::Error),
}

impl Capture {
    fn new(name: String) -> Capture {
        Capture {
            name,
            ifindex: 0,
            reader: None,
            health: Health::default(),
            head: None,
            empty_as_of: Timestamp(u64::MAX),
            received: 0,
            dropped: 0,
            bad_blocks: 0,
        }
    }

    /// Reads one frame into the head. `hold` is how late a frame may become
    /// visible (ring mode); `clock` a wall clock reading taken before this
    /// call (ring mode: an earlier reading only makes `empty_as_of` more
    /// conservative, and reading the clock is a system call on some virtual
    /// machines).
    fn refill(&mut self, hold: Duration, clock: Timestamp) -> Refill {
        match &mut self.reader {
            None => {
                self.empty_as_of = Timestamp(u64::MAX);
                Refill::Empty
            }
            Some(Reader::Ring(ring)) => {
                let as_of = earlier(clock, hold);
                // Found empty at this clock reading already: a frame handed
                // over since is stamped at `as_of` or later (the hold), so
                // looking again would not move `empty_as_of`. Saves reading
                // an idle ring (lo) once per frame of a busy one.
                if self.empty_as_of == as_of {
                    return Refill::Empty;
                }
                match ring.next_frame().map(Frame::keep) {
                    Some(f) => {
                        self.head = Some(Head {
                            ts: Timestamp::from_secs_nanos(f.ts.as_secs(), f.ts.subsec_nanos()),
                            len: f.len,
                            orig_len: f.orig_len,
                            pkttype: f.pkttype,
                        });
                        Refill::Frame
                    }
                    None => {
                        self.empty_as_of = as_of;
                        Refill::Empty
                    }
                }
            }
            Some(Reader::Recv { socket, buf }) => match socket.recv(buf) {
                Ok(Some(r)) => {
                    let ts =
                        r.ts.map(|d| Timestamp::from_secs_nanos(d.as_secs(), d.subsec_nanos()))
                            .unwrap_or_else(wall_clock);
                    self.head = Some(Head {
                        ts,
                        len: r.len,
                        orig_len: r.orig_len,
                        pkttype: r.pkttype,
                    });
                    Refill::Frame
                }
                Ok(None) => {
                    self.empty_as_of = wall_clock();
                    Refill::Empty
                }
                // The interface went down (or away); a socket still bound
                // resumes when it comes back up.
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                    self.empty_as_of = wall_clock();
                    Refill::Down
                }
                Err(e) => Refill::Failed(e),
            },
        }
    }

    /// The bytes of `head`, taken from the reader: a ring consumes the
    /// frame when it is next read, which the borrow orders after the
    /// caller is done with the bytes.
    fn take_data(&mut self, head: &Head) -> &[u8] {
        match &mut self.reader {
            Some(Reader::Ring(ring)) => ring.next_frame().map_or(&[], Frame::into_data),
            Some(Reader::Recv { buf, .. }) => buf.get(..head.len).unwrap_or(&[]),
            None => &[],
        }
    }

    fn fd(&self) -> Option<&dyn std::os::fd::AsRawFd> {
        match &self.reader {
            Some(Reader::Ring(ring)) => Some(ring),
            Some(Reader::Recv { socket, .. }) => Some(socket),
            None => None,
        }
    }

    /// Takes the socket's pending error, which `poll` reported.
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match &self.reader {
            Some(Reader::Ring(ring)) => ring.take_error(),
            Some(Reader::Recv { socket, .. }) => socket.take_error(),
            None => Ok(None),
        }
    }

    /// Adds the kernel's counters since the last read (it resets them).
    fn read_stats(&mut self) {
        let st = match &self.reader {
            Some(Reader::Ring(ring)) => ring.stats(),
            Some(Reader::Recv { socket, .. }) => socket.stats(),
            None => return,
        };
        match st {
            Ok(st) => {
                self.received = self.received.saturating_add(u64::from(st.packets));
                self.dropped = self.dropped.saturating_add(u64::from(st.drops));
            }
            Err(e) => tracing::warn!(interface = %self.name, error = %e, "PACKET_STATISTICS"),
        }
    }

    /// Closes the socket, keeping its last counters.
    fn close(&mut self) {
        self.read_stats();
        self.reader = None;
        self.head = None;
        self.ifindex = 0;
        self.empty_as_of = Timestamp(u64::MAX);
    }

    /// Records a failure; logs it when the cause is new.
    fn fail(&mut self, reason: FailReason, detail: String, now: Instant) {
        if self.health.failed(reason, detail, now) == Log::Quiet {
            let f = self.health.failure();
            tracing::debug!(
                interface = %self.name,
                reason = reason.as_str(),
                attempts = f.map_or(0, |f| f.attempts),
                retry_in_ms = f.map_or(0, |f| f.retry_at.saturating_duration_since(now).as_millis()),
                "capture retry failed"
            );
        } else {
            let detail = self.health.failure().map_or("", |f| f.detail.as_str());
            tracing::warn!(
                interface = %self.name,
                reason = reason.as_str(),
                error = %detail,
                remedy = reason.remedy(),
                "capture failed on this interface; retrying with backoff (up to every {} s), \
                 capture on the others goes on",
                Backoff::default().max.as_secs()
            );
        }
    }

    /// Records that capture works; logs a recovery.
    fn up(&mut self) {
        if let Log::Recovered { after, attempts } = self.health.up() {
            tracing::info!(
                interface = %self.name,
                after = after.as_str(),
                attempts,
                "capturing again"
            );
        }
    }

    /// The kernel reported the interface down: keep the socket (it resumes
    /// by itself on the way back up); `maintain` tells down from deleted.
    fn down(&mut self, now: Instant) {
        if self.health.reason() != Some(FailReason::InterfaceDown) {
            self.fail(
                FailReason::InterfaceDown,
                "the interface is down".to_string(),
                now,
            );
        }
    }
}

/// How each capture of a source opens its socket.
#[derive(Clone, Debug)]
struct OpenOptions {
    mode: CaptureMode,
    ring_size: usize,
    rcvbuf: Option<usize>,
    tcp_payload: u32,
    own_dns: Option<(u16, std::net::SocketAddr)>,
    drop_pure_acks: bool,
}

/// The message for a socket the kernel refused (lack of CAP_NET_RAW, or a
/// policy): what failed, the cause read from this process and its remedy
/// (`privilege::denied_message`), worded in this one place.
pub fn permission_denied_message(err: &podpath_afpacket::Error) -> String {
    super::privilege::denied_message(err)
}

/// Opens a reader on `iface` as `options` say, or says why it failed.
fn open_reader(
    iface: &NetworkInterface,
    options: &OpenOptions,
) -> Result<Reader, (FailReason, String)> {
    let spec = FilterSpec {
        loopback: iface.is_loopback(),
        tcp_payload: options.tcp_payload,
        own_dns: options.own_dns,
        drop_pure_acks: options.drop_pure_acks,
    };
    let filter = capture_filter(&spec);
    let classify = |e: podpath_afpacket::Error, otherwise: FailReason| match e {
        e @ podpath_afpacket::Error::NeedsCapNetRaw { .. } => {
            (FailReason::PermissionDenied, permission_denied_message(&e))
        }
        e => (otherwise, e.to_string()),
    };
    if options.mode != CaptureMode::Recvmsg {
        let ring_options = RingOptions::with_size(options.ring_size, RING_RETIRE_MS);
        match Ring::open(iface.index, &filter, &ring_options) {
            Ok(ring) => {
                tracing::debug!(
                    interface = %iface.name,
                    ifindex = iface.index,
                    ring_bytes = ring.mapped_bytes(),
                    blocks = ring_options.block_count,
                    "capture ring open"
                );
                return Ok(Reader::Ring(ring));
            }
            Err(e @ podpath_afpacket::Error::NeedsCapNetRaw { .. }) => {
                return Err(classify(e, FailReason::PermissionDenied))
            }
            Err(e) if options.mode == CaptureMode::Auto => {
                tracing::warn!(
                    interface = %iface.name,
                    error = %e,
                    "TPACKET_V3 ring refused; capturing with recvmsg (one system call per frame)"
                );
            }
            Err(e) => return Err(classify(e, FailReason::RingRefused)),
        }
    }
    let socket = open_socket(iface, &filter, options.rcvbuf)
        .map_err(|e| classify(e, FailReason::SocketError))?;
    Ok(Reader::Recv {
        socket,
        buf: vec![0; READ_BUFFER],
    })
}

/// Live AF_PACKET capture on a set of interfaces.
///
/// An interface that cannot be captured is a state, not an error: it is
/// retried with backoff by [`LiveSource::maintain`] and reported by
/// [`LiveSource::health`], while the others go on.
pub struct LiveSource {
    captures: Vec<Capture>,
    poller: Poller,
    /// Each capture's slot in `poller`, `None` without a socket.
    slots: Vec<Option<usize>>,
    poll_interval: Duration,
    /// How late a frame may become visible after its timestamp (zero for
    /// recvmsg, or with one socket, where there is nothing to merge).
    hold: Duration,
    /// The wall clock when the source last woke from `poll`.
    clock: Timestamp,
    /// Frames yielded since that wake-up.
    yielded: u64,
    /// The least time between wake-ups while frames keep coming (rings
    /// only): [`batch_period`] of the last cycle.
    period: Duration,
    /// The longest `period` this source's rings can absorb a burst for.
    max_period: Duration,
    /// Some capture reads a ring: wake-ups are batched.
    batching: bool,
    options: OpenOptions,
    /// A failing `poll` was logged (it is retried every poll interval).
    poll_error_logged: bool,
    stop: Arc<AtomicBool>,
}

impl LiveSource {
    /// Opens one socket per chosen interface. Fails if any cannot be
    /// opened: the caller asked for all of them. (`podpath run` uses
    /// [`LiveSource::start`], which goes on without them.)
    pub fn open(config: &LiveConfig) -> Result<LiveSource, CaptureError> {
        let source = LiveSource::start(config)?;
        // A socket on an interface that is down is open all the same: the
        // kernel starts delivering when it comes up.
        if let Some((name, f)) = source
            .captures
            .iter()
            .filter(|c| c.reader.is_none())
            .find_map(|c| c.health.failure().map(|f| (&c.name, f)))
        {
            return Err(CaptureError::Interface {
                interface: name.clone(),
                reason: f.reason,
                detail: f.detail.clone(),
            });
        }
        Ok(source)
    }

    /// Opens what it can on the chosen interfaces; the others are failed
    /// (see [`LiveSource::health`]) and retried by [`LiveSource::maintain`].
    /// Errs only when the choice itself is impossible (more interfaces
    /// named than a packet can index, or no interface at all).
    pub fn start(config: &LiveConfig) -> Result<LiveSource, CaptureError> {
        let available = pnet_datalink::interfaces();
        let names = choose_interfaces(&available, &config.interfaces)?;
        let mut source = LiveSource {
            captures: names.into_iter().map(Capture::new).collect(),
            poller: Poller::new(std::iter::empty::<&Socket>()),
            slots: Vec::new(),
            poll_interval: config.poll_interval,
            hold: Duration::ZERO,
            clock: wall_clock(),
            yielded: 0,
            period: RING_MIN_WAIT,
            max_period: RING_MIN_WAIT,
            batching: false,
            options: OpenOptions {
                mode: config.mode,
                ring_size: config.ring_size,
                rcvbuf: config.rcvbuf,
                tcp_payload: config.tcp_payload,
                own_dns: config.own_dns,
                drop_pure_acks: config.drop_pure_acks,
            },
            poll_error_logged: false,
            stop: Arc::clone(&config.stop),
        };
        let now = Instant::now();
        for i in 0..source.captures.len() {
            source.open_capture(i, &available, now);
        }
        source.rebuild_poller();
        Ok(source)
    }

    /// (Re)opens capture `i` on its interface as listed in `available`.
    fn open_capture(&mut self, i: usize, available: &[NetworkInterface], now: Instant) {
        let options = self.options.clone();
        let Some(c) = self.captures.get_mut(i) else {
            return;
        };
        let Some(iface) = available.iter().find(|f| f.name == c.name) else {
            let detail = format!(
                "no interface named {:?} in this network namespace (available: {})",
                c.name,
                names(available)
            );
            c.fail(FailReason::InterfaceMissing, detail, now);
            return;
        };
        match open_reader(iface, &options) {
            Ok(reader) => {
                c.reader = Some(reader);
                c.ifindex = iface.index;
                c.head = None;
                c.empty_as_of = Timestamp::ZERO;
                if iface.is_up() {
                    c.up();
                } else {
                    // Bound anyway: the kernel starts delivering when it is up.
                    c.down(now);
                }
            }
            Err((reason, detail)) => c.fail(reason, detail, now),
        }
    }

    /// Retries the failed interfaces whose backoff is over: reopens them,
    /// or, for an interface that went down with its socket kept, checks
    /// whether it is up again or was deleted. Cheap when nothing is due;
    /// call it about once a second.
    pub fn maintain(&mut self) {
        let now = Instant::now();
        if !self.captures.iter().any(|c| c.health.retry_due(now)) {
            return;
        }
        let available = pnet_datalink::interfaces();
        let mut changed = false;
        for i in 0..self.captures.len() {
            let Some(c) = self.captures.get_mut(i) else {
                continue;
            };
            if !c.health.retry_due(now) {
                continue;
            }
            if c.reader.is_some() {
                match available.iter().find(|f| f.name == c.name) {
                    Some(f) if f.index == c.ifindex && f.is_up() => c.up(),
                    Some(f) if f.index == c.ifindex => c.fail(
                        FailReason::InterfaceDown,
                        "the interface is down".into(),
                        now,
                    ),
                    // Deleted (and maybe created again, with a new index):
                    // the old socket is bound to nothing now.
                    _ => {
                        c.close();
                        changed = true;
                        self.open_capture(i, &available, now);
                    }
                }
            } else {
                self.open_capture(i, &available, now);
                changed |= self.captures.get(i).is_some_and(|c| c.reader.is_some());
            }
        }
        if changed {
            self.rebuild_poller();
        }
    }

    /// Each interface's name and capture health, in the order of
    /// `RawPacket::interface`.
    pub fn health(&self) -> impl Iterator<Item = (&str, &Health)> + '_ {
        self.captures.iter().map(|c| (c.name.as_str(), &c.health))
    }

    /// Polls the open sockets; after a change of sockets.
    fn rebuild_poller(&mut self) {
        let mut next = 0;
        self.slots = self
            .captures
            .iter()
            .map(|c| {
                c.reader.as_ref().map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        self.poller = Poller::new(self.captures.iter().filter_map(Capture::fd));
        let rings = self
            .captures
            .iter()
            .filter(|c| matches!(c.reader, Some(Reader::Ring(_))))
            .count();
        self.hold = if rings > 0 && next > 1 {
            RING_HOLD
        } else {
            Duration::ZERO
        };
        self.batching = rings > 0;
        self.max_period = max_batch_period(self.options.ring_size, self.hold);
    }

    /// Interface names in the order of `RawPacket::interface`.
    pub fn interface_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.captures.iter().map(|c| c.name.as_str())
    }

    /// How frames are read: `Ring` or `Recvmsg` (never `Auto`: `Recvmsg`
    /// once the kernel refused a ring).
    pub fn mode(&self) -> CaptureMode {
        match self.options.mode {
            CaptureMode::Auto
                if self
                    .captures
                    .iter()
                    .any(|c| matches!(c.reader, Some(Reader::Recv { .. }))) =>
            {
                CaptureMode::Recvmsg
            }
            CaptureMode::Auto => CaptureMode::Ring,
            mode => mode,
        }
    }

    /// The flag that ends the capture when set.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// After a wait: takes the errors `poll` reported, which it would
    /// otherwise report again at once, forever (a busy loop while an
    /// interface is down). Returns whether a socket was closed.
    fn clear_errors(&mut self) -> bool {
        let mut closed = false;
        for (c, slot) in self.captures.iter_mut().zip(&self.slots) {
            if !slot.is_some_and(|s| self.poller.has_error(s)) {
                continue;
            }
            match c.take_error() {
                Ok(Some(e)) if e.raw_os_error() == Some(libc::ENETDOWN) => c.down(Instant::now()),
                Ok(Some(e)) => {
                    c.close();
                    c.fail(
                        FailReason::SocketError,
                        format!("socket error: {e}"),
                        Instant::now(),
                    );
                    closed = true;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(interface = %c.name, error = %e, "SO_ERROR"),
            }
        }
        closed
    }

    /// After a wait: reads the clock and sets the next batch period from
    /// the frames of the cycle that ended.
    fn woke(&mut self) {
        let now = wall_clock();
        let cycle = Duration::from_nanos(now.0.saturating_sub(self.clock.0));
        self.period = batch_period(self.yielded, cycle, self.max_period);
        self.yielded = 0;
        self.clock = now;
    }

    /// Waits on the enabled sockets; a failing `poll` (never seen) is
    /// logged once and waited out, not returned: capture must not end.
    fn wait(&mut self, timeout: Duration) -> usize {
        match self.poller.wait(timeout) {
            Ok(n) => n,
            Err(e) => {
                if !self.poll_error_logged {
                    self.poll_error_logged = true;
                    tracing::error!(error = %e, "poll failed; retrying every poll interval");
                }
                std::thread::sleep(timeout);
                0
            }
        }
    }
}

/// Which interfaces to capture on, by name: the named ones, in the order
/// given (duplicates once), present or not; or every interface that is up
/// (if none is, every one there is: they are reported down until they are
/// up).
pub fn choose_interfaces(
    available: &[NetworkInterface],
    wanted: &[String],
) -> Result<Vec<String>, CaptureError> {
    let chosen: Vec<String> = if wanted.is_empty() {
        let up: Vec<String> = available
            .iter()
            .filter(|i| i.is_up())
            .map(|i| i.name.clone())
            .collect();
        if up.is_empty() {
            available.iter().map(|i| i.name.clone()).collect()
        } else {
            up
        }
    } else {
        let mut chosen: Vec<String> = Vec::new();
        for name in wanted {
            if !chosen.contains(name) {
                chosen.push(name.clone());
            }
        }
        chosen
    };
    if chosen.is_empty() {
        return Err(CaptureError::NoInterface);
    }
    if chosen.len() > usize::from(u16::MAX) {
        return Err(CaptureError::TooManyInterfaces {
            count: chosen.len(),
        });
    }
    Ok(chosen)
}

/// A recvmsg socket on `iface`, with the buffer check logged.
fn open_socket(
    iface: &NetworkInterface,
    filter: &[podpath_afpacket::Instruction],
    rcvbuf: Option<usize>,
) -> Result<Socket, podpath_afpacket::Error> {
    let socket = Socket::open(iface.index, filter, &Options { rcvbuf })?;
    let granted = socket.rcvbuf().unwrap_or(0);
    tracing::debug!(
        interface = %iface.name,
        ifindex = iface.index,
        rcvbuf = granted,
        "capture socket open"
    );
    // The kernel reports twice what it granted; less than twice the
    // request means SO_RCVBUFFORCE was refused (no CAP_NET_ADMIN)
    // and net.core.rmem_max capped the buffer.
    if let Some(wanted) = rcvbuf {
        if granted / 2 < wanted {
            tracing::warn!(
                interface = %iface.name,
                requested = wanted,
                granted = granted / 2,
                "capture buffer capped by net.core.rmem_max (no CAP_NET_ADMIN); \
                 bursts may be dropped, see podpath_capture_drops_total"
            );
        }
    }
    Ok(socket)
}

impl PacketSource for LiveSource {
    /// Yields frames from all interfaces in kernel timestamp order.
    ///
    /// Each interface holds at most one frame read ahead (its head). The
    /// head with the earliest timestamp is yielded only once every other
    /// interface either has a head or is known to hold nothing stamped
    /// before it: a recvmsg socket found empty after that timestamp, a ring
    /// found empty at least the hold time after it. So a DNS answer on `lo`
    /// is never yielded after a later SYN on `eth0`, however the queues
    /// filled. With recvmsg and one busy interface this costs one `recvmsg`
    /// per frame, plus one finding each other socket empty; with the ring,
    /// reading a frame is a few loads from shared memory.
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        let (i, head) = loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(Next::End);
            }
            let earliest = self
                .captures
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.head.map(|h| (h.ts, i)))
                .min();
            let before = earliest.map_or(Timestamp(u64::MAX), |(ts, _)| ts);
            let mut refilled = false;
            let mut closed = false;
            for c in &mut self.captures {
                if c.head.is_none() && c.empty_as_of < before {
                    match c.refill(self.hold, self.clock) {
                        Refill::Frame => refilled = true,
                        Refill::Empty => {}
                        Refill::Down => c.down(Instant::now()),
                        Refill::Failed(e) => {
                            c.close();
                            let detail = format!("recvmsg: {e}");
                            c.fail(FailReason::SocketError, detail, Instant::now());
                            closed = true;
                        }
                    }
                }
            }
            if closed {
                self.rebuild_poller();
            }
            if refilled || closed {
                continue;
            }
            if let Some((ts, i)) = earliest {
                // A ring that showed nothing may still have an earlier frame
                // in a block the kernel has not handed over: wait until the
                // head is older than the hold time, polling only the rings
                // without a head (a held block would wake the poll at once).
                let waiting = !self.hold.is_zero()
                    && self
                        .captures
                        .iter()
                        .any(|c| c.head.is_none() && c.empty_as_of < ts);
                if !waiting {
                    if let Some(head) = self.captures.get_mut(i).and_then(|c| c.head.take()) {
                        break (i, head);
                    }
                    continue;
                }
                let ready_at = ts.0.saturating_add(self.hold.as_nanos() as u64);
                let wait = Duration::from_nanos(ready_at.saturating_sub(wall_clock().0))
                    .min(self.poll_interval)
                    .max(self.period);
                for (c, slot) in self.captures.iter().zip(&self.slots) {
                    if let Some(s) = slot {
                        self.poller.set_enabled(*s, c.head.is_none());
                    }
                }
                self.wait(wait);
                self.woke();
                if self.clear_errors() {
                    self.rebuild_poller();
                }
                for c in &mut self.captures {
                    if c.head.is_none() && c.reader.is_some() {
                        c.empty_as_of = Timestamp::ZERO;
                    }
                }
                continue;
            }
            // Every interface was just found empty (or has no socket).
            if self.batching && self.yielded > 0 {
                // Frames came since the last wake-up: let the next ones
                // gather in the rings for a period instead of waking at the
                // next block the kernel hands over (every 8 ms under light
                // traffic).
                for s in self.slots.iter().flatten() {
                    self.poller.set_enabled(*s, false);
                }
                self.wait(self.period);
                self.woke();
                for c in &mut self.captures {
                    if c.reader.is_some() {
                        c.empty_as_of = Timestamp::ZERO;
                    }
                }
                continue;
            }
            for s in self.slots.iter().flatten() {
                self.poller.set_enabled(*s, true);
            }
            let ready = self.wait(self.poll_interval);
            self.woke();
            if ready == 0 {
                return Ok(Next::Idle {
                    now: earlier(self.clock, self.hold),
                });
            }
            if self.clear_errors() {
                self.rebuild_poller();
            }
            for c in &mut self.captures {
                if c.reader.is_some() {
                    c.empty_as_of = Timestamp::ZERO;
                }
            }
        };
        self.yielded += 1;
        let Some(c) = self.captures.get_mut(i) else {
            return Ok(Next::End);
        };
        if !c.health.is_up() {
            // A frame: the interface is back up (the socket was kept).
            c.up();
        }
        Ok(Next::Packet(RawPacket {
            ts: head.ts,
            link: LinkType::Ethernet,
            data: c.take_data(&head),
            orig_len: head.orig_len,
            packet_type: Some(PacketType::from_raw(u16::from(head.pkttype))),
            // `start` keeps the list within u16 (see choose_interfaces).
            interface: u16::try_from(i).unwrap_or(u16::MAX),
        }))
    }

    /// Cumulative kernel counters per interface. `received` is
    /// PACKET_STATISTICS `tp_packets`: frames that passed the filter,
    /// including the `dropped` ones the receive buffer (or ring) had no room
    /// for (the libpcap convention).
    fn stats(&mut self) -> Vec<InterfaceStats> {
        self.captures
            .iter_mut()
            .map(|c| {
                c.read_stats();
                if let Some(Reader::Ring(ring)) = &c.reader {
                    // Never seen: a block whose headers point outside it.
                    if ring.bad_blocks() > c.bad_blocks {
                        c.bad_blocks = ring.bad_blocks();
                        tracing::warn!(
                            interface = %c.name,
                            blocks = c.bad_blocks,
                            "ring blocks with corrupt frame headers skipped; their frames are lost"
                        );
                    }
                }
                InterfaceStats {
                    name: c.name.clone(),
                    received: c.received,
                    dropped: c.dropped,
                }
            })
            .collect()
    }
}

/// The least time between two wake-ups of a ring reader that read `frames`
/// in the last `cycle`: long enough for [`FRAMES_PER_WAKE`] frames at that
/// rate, within [`RING_MIN_WAIT`] and `max`. Under load a wake-up every
/// 16 ms; under light traffic every `max`; idle, no wake-up at all (the
/// source blocks in `poll` until a ring has a block).
fn batch_period(frames: u64, cycle: Duration, max: Duration) -> Duration {
    let max = max.max(RING_MIN_WAIT);
    if frames == 0 {
        return max;
    }
    let ns = u64::try_from(cycle.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(ns.saturating_mul(FRAMES_PER_WAKE) / frames).clamp(RING_MIN_WAIT, max)
}

/// The longest batch period after which rings of `ring_size` bytes, read
/// `hold` late, still absorb a burst of [`BURST_BYTES_PER_SEC`], within
/// [`RING_MIN_WAIT`] and [`RING_MAX_WAIT`].
fn max_batch_period(ring_size: usize, hold: Duration) -> Duration {
    let bytes = u64::try_from(ring_size).unwrap_or(u64::MAX);
    Duration::from_nanos(bytes.saturating_mul(1_000_000_000) / BURST_BYTES_PER_SEC)
        .saturating_sub(hold)
        .clamp(RING_MIN_WAIT, RING_MAX_WAIT)
}

/// `ts` less `d`, at zero at the least.
fn earlier(ts: Timestamp, d: Duration) -> Timestamp {
    Timestamp(ts.0.saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::from_secs_nanos(d.as_secs(), d.subsec_nanos())
}

fn names(interfaces: &[NetworkInterface]) -> String {
    if interfaces.is_empty() {
        return "none".to_string();
    }
    interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, index: u32, up: bool) -> NetworkInterface {
        NetworkInterface {
            name: name.to_string(),
            description: String::new(),
            index,
            mac: None,
            ips: Vec::new(),
            flags: if up { libc::IFF_UP as _ } else { 0 },
        }
    }

    fn lab() -> Vec<NetworkInterface> {
        vec![
            iface("lo", 1, true),
            iface("eth0", 2, true),
            iface("tunl0", 3, false),
        ]
    }

    fn chosen(r: Result<Vec<String>, CaptureError>) -> Vec<String> {
        r.unwrap_or_else(|e| vec![e.to_string()])
    }

    #[test]
    fn wake_ups_are_batched_more_the_lighter_the_traffic() {
        let ms = Duration::from_millis;
        // 4 MiB at 64 MiB/s, less the hold of several interfaces.
        assert_eq!(
            max_batch_period(DEFAULT_RING_SIZE, Duration::ZERO),
            Duration::from_micros(62_500)
        );
        let max = max_batch_period(DEFAULT_RING_SIZE, RING_HOLD);
        assert_eq!(max, Duration::from_micros(30_500));
        // Under load (50 000 frames/s): the shortest wait.
        assert_eq!(batch_period(800, ms(16), max), RING_MIN_WAIT);
        // 20 000 frames/s: 512 frames take 25.6 ms.
        assert_eq!(
            batch_period(320, ms(16), max),
            Duration::from_micros(25_600)
        );
        // Light (190/s) or none: the longest.
        assert_eq!(batch_period(3, ms(16), max), max);
        assert_eq!(batch_period(0, ms(200), max), max);
        // A small ring absorbs a burst for less time; never below the floor.
        assert_eq!(max_batch_period(1 << 20, Duration::ZERO), ms(16));
        assert_eq!(max_batch_period(1 << 20, RING_HOLD), RING_MIN_WAIT);
        assert_eq!(max_batch_period(16 << 10, Duration::ZERO), RING_MIN_WAIT);
        assert_eq!(max_batch_period(usize::MAX, RING_HOLD), RING_MAX_WAIT);
        assert_eq!(batch_period(u64::MAX, Duration::MAX, max), RING_MIN_WAIT);
    }

    #[test]
    fn default_is_every_interface_that_is_up() {
        assert_eq!(chosen(choose_interfaces(&lab(), &[])), ["lo", "eth0"]);
    }

    #[test]
    fn named_interfaces_keep_their_order_once_even_when_down_or_missing() {
        let wanted = ["eth0", "tunl0", "eth9", "eth0"].map(String::from);
        assert_eq!(
            chosen(choose_interfaces(&lab(), &wanted)),
            ["eth0", "tunl0", "eth9"]
        );
    }

    #[test]
    fn with_no_interface_up_every_one_is_chosen() {
        let down = vec![iface("lo", 1, false), iface("eth0", 2, false)];
        assert_eq!(chosen(choose_interfaces(&down, &[])), ["lo", "eth0"]);
        assert_eq!(
            chosen(choose_interfaces(&[], &[])),
            ["capture: no interface in this network namespace"]
        );
    }

    #[test]
    fn an_unknown_interface_is_a_failed_state_that_lists_the_available_ones() {
        let config = LiveConfig {
            interfaces: vec!["pp-no-such-if".to_string()],
            ..LiveConfig::default()
        };
        let source = LiveSource::start(&config).expect("start never fails on a missing interface");
        let health: Vec<(&str, Option<FailReason>)> =
            source.health().map(|(n, h)| (n, h.reason())).collect();
        assert_eq!(
            health,
            [("pp-no-such-if", Some(FailReason::InterfaceMissing))]
        );
        let detail = source
            .health()
            .next()
            .and_then(|(_, h)| h.failure())
            .map(|f| f.detail.clone());
        assert!(
            detail.as_deref().is_some_and(|m| m.starts_with(
                "no interface named \"pp-no-such-if\" in this network namespace (available: "
            ) && m.contains("lo")),
            "{detail:?}"
        );
        // The strict constructor still refuses it, naming it, with the
        // reason typed for callers that act on it.
        let err = LiveSource::open(&config).err();
        assert!(
            matches!(
                &err,
                Some(CaptureError::Interface { interface, reason: FailReason::InterfaceMissing, .. })
                    if interface == "pp-no-such-if"
            ),
            "{err:?}"
        );
        let err = err.map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|m| m.starts_with("capture: pp-no-such-if: no interface named")),
            "{err:?}"
        );
    }

    #[test]
    fn a_source_with_every_interface_failed_idles_and_stops() {
        let config = LiveConfig {
            interfaces: vec!["pp-no-such-if".to_string()],
            poll_interval: Duration::from_millis(20),
            ..LiveConfig::default()
        };
        let mut source = LiveSource::start(&config).expect("start");
        let t0 = Instant::now();
        assert!(matches!(source.next_packet(), Ok(Next::Idle { .. })));
        assert!(t0.elapsed() >= Duration::from_millis(15), "no busy loop");
        // Not due yet: nothing is retried, the failure stays.
        source.maintain();
        assert_eq!(
            source
                .health()
                .next()
                .map(|(_, h)| h.failure().map(|f| f.attempts)),
            Some(Some(1))
        );
        source.stop_flag().store(true, Ordering::SeqCst);
        assert!(matches!(source.next_packet(), Ok(Next::End)));
        assert_eq!(source.stats()[0].received, 0);
    }
}
