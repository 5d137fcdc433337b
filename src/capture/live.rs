//! Live capture on the interfaces of the current network namespace.
//!
//! One filtered AF_PACKET socket per interface (see `podpath_afpacket`: the
//! classic BPF program keeps DNS whole, TCP to headers plus the first
//! payload bytes, UDP to headers, ICMP errors, and drops the outgoing copy of
//! loopback packets), all read by the calling thread and merged across
//! interfaces in kernel timestamp order. Two ways to read (`CaptureMode`):
//!
//! - `ring` (the default, through `auto`): a TPACKET_V3 ring mapped into the
//!   process, no system call per frame; `poll()` only once every block
//!   handed over has been read. The kernel hands a block over when it is full
//!   or after its retire timer (8 ms), so a frame may become visible up to
//!   that late. With several interfaces a frame is therefore yielded only
//!   once it is older than a hold time (`RING_HOLD`) or every other
//!   interface has a later frame: frames still come out in time order.
//! - `recvmsg`: one `recvmsg()` per frame, `poll()` when every socket is
//!   empty; a frame is visible as soon as it is queued, so nothing is held.
//!
//! When nothing arrives within the poll interval the source yields
//! `Next::Idle` with the wall clock (less the hold time in ring mode), the
//! same CLOCK_REALTIME the kernel stamps packets with, so the engine's
//! timeouts still fire when traffic stops.
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pnet_datalink::NetworkInterface;
use podpath_afpacket::{
    capture_filter, FilterSpec, Options, Poller, Ring, RingFrame, RingOptions, Socket,
};

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
/// yielded in batches of at least this much traffic, one `poll` each.
const RING_MIN_WAIT: Duration = Duration::from_millis(RING_RETIRE_MS as u64 / 2);
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
            poll_interval: DEFAULT_POLL_INTERVAL,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

enum Reader {
    /// Holds the head frame's bytes in `buf`.
    Recv {
        socket: Socket,
        buf: Vec<u8>,
    },
    Ring(Ring),
}

struct Capture {
    name: String,
    reader: Reader,
    /// The frame read ahead from this interface, not yet yielded.
    head: Option<Head>,
    /// Time up to which this interface is known to have no frame besides
    /// the head: every frame stamped before it was read.
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
    /// Where the bytes are, for a ring.
    ring: Option<RingFrame>,
}

impl Capture {
    /// Reads one frame into the head; `false` if none was visible. `hold`
    /// is how late a frame may become visible (ring mode); `clock` a wall
    /// clock reading taken before this call (ring mode: an earlier reading
    /// only makes `empty_as_of` more conservative, and reading the clock is
    /// a system call on some virtual machines).
    fn refill(&mut self, hold: Duration, clock: Timestamp) -> Result<bool, CaptureError> {
        match &mut self.reader {
            Reader::Ring(ring) => match ring.peek() {
                Some(f) => {
                    self.head = Some(Head {
                        ts: Timestamp::from_secs_nanos(f.ts.as_secs(), f.ts.subsec_nanos()),
                        len: f.len,
                        orig_len: f.orig_len,
                        pkttype: f.pkttype,
                        ring: Some(f),
                    });
                    Ok(true)
                }
                None => {
                    self.empty_as_of = earlier(clock, hold);
                    Ok(false)
                }
            },
            Reader::Recv { socket, buf } => match socket.recv(buf) {
                Ok(Some(r)) => {
                    let ts =
                        r.ts.map(|d| Timestamp::from_secs_nanos(d.as_secs(), d.subsec_nanos()))
                            .unwrap_or_else(wall_clock);
                    self.head = Some(Head {
                        ts,
                        len: r.len,
                        orig_len: r.orig_len,
                        pkttype: r.pkttype,
                        ring: None,
                    });
                    Ok(true)
                }
                Ok(None) => {
                    self.empty_as_of = wall_clock();
                    Ok(false)
                }
                // The interface went down; the socket stays bound and resumes
                // when it comes back up.
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                    tracing::warn!(interface = %self.name, "interface went down");
                    self.empty_as_of = wall_clock();
                    Ok(false)
                }
                Err(e) => Err(CaptureError::Live(format!("{}: recvmsg: {e}", self.name))),
            },
        }
    }

    /// Done with the frame last yielded from this interface.
    fn consumed(&mut self) {
        if let Reader::Ring(ring) = &mut self.reader {
            ring.advance();
        }
    }

    fn data(&self, head: &Head) -> &[u8] {
        match (&self.reader, &head.ring) {
            (Reader::Ring(ring), Some(f)) => ring.data(f),
            (Reader::Recv { buf, .. }, _) => buf.get(..head.len).unwrap_or(&[]),
            (Reader::Ring(_), None) => &[],
        }
    }

    fn fd(&self) -> &dyn std::os::fd::AsRawFd {
        match &self.reader {
            Reader::Ring(ring) => ring,
            Reader::Recv { socket, .. } => socket,
        }
    }

    /// Clears and logs a pending socket error (the interface went down).
    /// Capture resumes by itself when the interface comes back up.
    fn clear_error(&self) {
        let taken = match &self.reader {
            Reader::Ring(ring) => ring.take_error(),
            Reader::Recv { socket, .. } => socket.take_error(),
        };
        match taken {
            Ok(Some(e)) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                tracing::warn!(interface = %self.name, "interface went down");
            }
            Ok(Some(e)) => {
                tracing::warn!(interface = %self.name, error = %e, "capture socket error")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(interface = %self.name, error = %e, "SO_ERROR"),
        }
    }

    fn stats(&self) -> io::Result<podpath_afpacket::Stats> {
        match &self.reader {
            Reader::Ring(ring) => ring.stats(),
            Reader::Recv { socket, .. } => socket.stats(),
        }
    }
}

/// Live AF_PACKET capture on a set of interfaces.
pub struct LiveSource {
    captures: Vec<Capture>,
    poller: Poller,
    poll_interval: Duration,
    /// How late a frame may become visible after its timestamp (zero for
    /// recvmsg, or with one interface, where there is nothing to merge).
    hold: Duration,
    /// The interface whose head was yielded last: consumed on the next call.
    yielded: Option<usize>,
    /// The wall clock when the source last woke from `poll`.
    clock: Timestamp,
    mode: CaptureMode,
    stop: Arc<AtomicBool>,
}

impl LiveSource {
    /// Opens one socket per chosen interface. Fails if any cannot be
    /// opened: the caller asked for all of them.
    pub fn open(config: &LiveConfig) -> Result<LiveSource, CaptureError> {
        let chosen = select_interfaces(pnet_datalink::interfaces(), &config.interfaces)?;
        let mut captures = Vec::with_capacity(chosen.len());
        let mut mode = config.mode;
        for iface in chosen {
            let spec = FilterSpec {
                loopback: iface.is_loopback(),
                tcp_payload: config.tcp_payload,
                own_dns: config.own_dns,
            };
            let filter = capture_filter(&spec);
            let mut reader = None;
            if mode != CaptureMode::Recvmsg {
                let options = RingOptions::with_size(config.ring_size, RING_RETIRE_MS);
                match Ring::open(iface.index, &filter, &options) {
                    Ok(ring) => {
                        tracing::debug!(
                            interface = %iface.name,
                            ifindex = iface.index,
                            ring_bytes = ring.mapped_bytes(),
                            blocks = options.block_count,
                            "capture ring open"
                        );
                        mode = CaptureMode::Ring;
                        reader = Some(Reader::Ring(ring));
                    }
                    Err(e @ podpath_afpacket::Error::NeedsCapNetRaw { .. }) => {
                        return Err(open_error(&iface.name, e))
                    }
                    Err(e) if mode == CaptureMode::Auto && captures.is_empty() => {
                        tracing::warn!(
                            interface = %iface.name,
                            error = %e,
                            "TPACKET_V3 ring refused; capturing with recvmsg (one system call per frame)"
                        );
                        mode = CaptureMode::Recvmsg;
                    }
                    Err(e) => return Err(CaptureError::Live(format!("{}: {e}", iface.name))),
                }
            }
            let reader = match reader {
                Some(r) => r,
                None => Reader::Recv {
                    socket: open_socket(&iface, &filter, config.rcvbuf)?,
                    buf: vec![0; READ_BUFFER],
                },
            };
            captures.push(Capture {
                name: iface.name,
                reader,
                head: None,
                empty_as_of: Timestamp::ZERO,
                received: 0,
                dropped: 0,
                bad_blocks: 0,
            });
        }
        let poller = Poller::new(captures.iter().map(Capture::fd));
        let hold = if mode == CaptureMode::Ring && captures.len() > 1 {
            RING_HOLD
        } else {
            Duration::ZERO
        };
        Ok(LiveSource {
            captures,
            poller,
            poll_interval: config.poll_interval,
            hold,
            yielded: None,
            clock: wall_clock(),
            mode,
            stop: Arc::clone(&config.stop),
        })
    }

    /// Interface names in the order of `RawPacket::interface`.
    pub fn interface_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.captures.iter().map(|c| c.name.as_str())
    }

    /// How frames are read: `Ring` or `Recvmsg` (never `Auto`).
    pub fn mode(&self) -> CaptureMode {
        self.mode
    }

    /// The flag that ends the capture when set.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// After a wait: clears the errors `poll` reported, which it would
    /// otherwise report again at once, forever (a busy loop while an
    /// interface is down).
    fn clear_errors(&self) {
        for (i, c) in self.captures.iter().enumerate() {
            if self.poller.has_error(i) {
                c.clear_error();
            }
        }
    }
}

/// The error for a socket or ring that could not be opened on `interface`.
fn open_error(interface: &str, e: podpath_afpacket::Error) -> CaptureError {
    CaptureError::Live(format!("{interface}: {}", permission_denied_message(&e)))
}

/// The message for a socket the kernel refused (lack of CAP_NET_RAW, or a
/// policy): what failed, the cause read from this process and its remedy
/// (`privilege::denied_message`). Other errors are worded as they are.
pub fn permission_denied_message(err: &podpath_afpacket::Error) -> String {
    super::privilege::denied_message(err)
}

/// A recvmsg socket on `iface`, with the buffer check logged.
fn open_socket(
    iface: &NetworkInterface,
    filter: &[podpath_afpacket::Instruction],
    rcvbuf: Option<usize>,
) -> Result<Socket, CaptureError> {
    let socket = Socket::open(iface.index, filter, &Options { rcvbuf })
        .map_err(|e| open_error(&iface.name, e))?;
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
        if let Some(i) = self.yielded.take() {
            if let Some(c) = self.captures.get_mut(i) {
                c.consumed();
            }
        }
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
            for c in &mut self.captures {
                if c.head.is_none() && c.empty_as_of < before {
                    refilled |= c.refill(self.hold, self.clock)?;
                }
            }
            if refilled {
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
                    .max(RING_MIN_WAIT);
                for (j, c) in self.captures.iter().enumerate() {
                    self.poller.set_enabled(j, c.head.is_none());
                }
                self.poller.wait(wait).map_err(live("poll"))?;
                self.clock = wall_clock();
                self.clear_errors();
                for c in &mut self.captures {
                    if c.head.is_none() {
                        c.empty_as_of = Timestamp::ZERO;
                    }
                }
                continue;
            }
            // Every interface was just found empty.
            for j in 0..self.captures.len() {
                self.poller.set_enabled(j, true);
            }
            let ready = self.poller.wait(self.poll_interval).map_err(live("poll"))?;
            self.clock = wall_clock();
            if ready == 0 {
                return Ok(Next::Idle {
                    now: earlier(self.clock, self.hold),
                });
            }
            self.clear_errors();
            for c in &mut self.captures {
                c.empty_as_of = Timestamp::ZERO;
            }
        };
        self.yielded = Some(i);
        let Some(c) = self.captures.get(i) else {
            return Ok(Next::End);
        };
        Ok(Next::Packet(RawPacket {
            ts: head.ts,
            link: LinkType::Ethernet,
            data: c.data(&head),
            orig_len: head.orig_len,
            packet_type: Some(PacketType::from_raw(u16::from(head.pkttype))),
            // `open` keeps the list within u16 (see select_interfaces).
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
                match c.stats() {
                    Ok(st) => {
                        c.received = c.received.saturating_add(u64::from(st.packets));
                        c.dropped = c.dropped.saturating_add(u64::from(st.drops));
                    }
                    Err(e) => tracing::warn!(interface = %c.name, error = %e, "PACKET_STATISTICS"),
                }
                if let Reader::Ring(ring) = &c.reader {
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

/// `ts` less `d`, at zero at the least.
fn earlier(ts: Timestamp, d: Duration) -> Timestamp {
    Timestamp(ts.0.saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

fn live(op: &'static str) -> impl Fn(io::Error) -> CaptureError {
    move |e| CaptureError::Live(format!("{op}: {e}"))
}

fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::from_secs_nanos(d.as_secs(), d.subsec_nanos())
}

/// Picks the interfaces to capture on: the named ones, in the order given
/// (duplicates once), or every interface that is up.
pub fn select_interfaces(
    available: Vec<NetworkInterface>,
    wanted: &[String],
) -> Result<Vec<NetworkInterface>, CaptureError> {
    let chosen: Vec<NetworkInterface> = if wanted.is_empty() {
        let up: Vec<NetworkInterface> = available.iter().filter(|i| i.is_up()).cloned().collect();
        if up.is_empty() {
            return Err(CaptureError::Live(format!(
                "no interface is up in this network namespace (present: {})",
                names(&available)
            )));
        }
        up
    } else {
        let mut chosen: Vec<NetworkInterface> = Vec::new();
        for name in wanted {
            if chosen.iter().any(|i| &i.name == name) {
                continue;
            }
            match available.iter().find(|i| &i.name == name) {
                Some(i) => chosen.push(i.clone()),
                None => {
                    return Err(CaptureError::Live(format!(
                        "no interface named {name:?} in this network namespace (available: {})",
                        names(&available)
                    )))
                }
            }
        }
        chosen
    };
    if chosen.len() > usize::from(u16::MAX) {
        return Err(CaptureError::Live(format!(
            "{} interfaces; choose at most {} with --interface",
            chosen.len(),
            u16::MAX
        )));
    }
    Ok(chosen)
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

    fn chosen_names(r: Result<Vec<NetworkInterface>, CaptureError>) -> Vec<String> {
        r.map(|v| v.into_iter().map(|i| i.name).collect())
            .unwrap_or_else(|e| vec![e.to_string()])
    }

    #[test]
    fn default_is_every_interface_that_is_up() {
        assert_eq!(chosen_names(select_interfaces(lab(), &[])), ["lo", "eth0"]);
    }

    #[test]
    fn named_interfaces_keep_their_order_once_even_when_down() {
        let wanted = ["eth0", "tunl0", "eth0"].map(String::from);
        assert_eq!(
            chosen_names(select_interfaces(lab(), &wanted)),
            ["eth0", "tunl0"]
        );
    }

    #[test]
    fn unknown_interface_lists_the_available_ones() {
        let err = select_interfaces(lab(), &["eth9".to_string()])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "capture: no interface named \"eth9\" in this network namespace \
                 (available: lo, eth0, tunl0)"
            )
        );
    }

    #[test]
    fn no_interface_up_is_an_error() {
        let err = select_interfaces(vec![iface("eth0", 2, false)], &[])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("capture: no interface is up in this network namespace (present: eth0)")
        );
    }

    #[test]
    fn opening_an_unknown_interface_fails_before_any_socket() {
        let config = LiveConfig {
            interfaces: vec!["pp-no-such-if".to_string()],
            ..LiveConfig::default()
        };
        let err = LiveSource::open(&config).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|m| m.contains("no interface named \"pp-no-such-if\"")),
            "{err:?}"
        );
    }
}
