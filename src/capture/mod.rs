//! Packet sources. Live AF_PACKET capture and capture files feed the engine
//! the same way: frames with their packet timestamps, link type and, when the
//! kernel or the file says so, direction and interface.

pub mod file;
pub mod health;
pub mod live;
pub mod privilege;

use crate::decode::{LinkType, PacketType};
use crate::Timestamp;

/// One captured frame, borrowed from the source's buffer until the next call.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    /// Captured bytes (possibly cut by a snap length).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// Direction as the kernel reported it (`sll_pkttype`), when known.
    pub packet_type: Option<PacketType>,
    /// Index into the source's interface list (live) or the file's interface (pcapng IDB).
    pub interface: u16,
}

/// What a source yields.
#[derive(Debug)]
pub enum Next<'a> {
    Packet(RawPacket<'a>),
    /// Nothing arrived within the source's poll interval. `now` is the
    /// source's best estimate of packet time, so that timeouts still fire
    /// when traffic stops.
    Idle {
        now: Timestamp,
    },
    /// The source is exhausted (end of the last file, or capture stopped).
    End,
}

/// Packets received and dropped by the kernel on one interface, cumulative.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    pub name: String,
    pub received: u64,
    pub dropped: u64,
}

/// Errors a source reports to its caller. Per-packet problems inside a file
/// are not errors: they are skipped and counted by the engine.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The I/O error is part of the message (not a `source`), so that a
    /// report prints it once.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: not a pcap or pcapng file ({detail})")]
    NotACapture { path: String, detail: String },
    #[error("{path}: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("capture: {0}")]
    Live(String),
}

/// A source of frames: live capture, capture files, or frames held in memory.
pub trait PacketSource {
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError>;

    /// Kernel counters per interface; empty for files.
    fn stats(&mut self) -> Vec<InterfaceStats> {
        Vec::new()
    }
}
