//! Packet sources. Live AF_PACKET capture and capture files feed the engine
//! the same way: frames with their packet timestamps, link type and, when the
//! kernel or the file says so, direction and interface.

pub mod file;
pub mod health;
pub mod live;
pub mod privilege;

use crate::Timestamp;
use health::FailReason;
use pcap_parser::PcapError;

pub use podpath_core::packet::RawPacket;

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
///
/// A variant that wraps another error names only where it happened and
/// keeps the error as its `source`: the binary prints the chain
/// (`{:#}`), so the cause is printed once and stays inspectable.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A capture file that could not be opened or read.
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file ({detail})")]
    NotACapture { path: String, detail: String },
    /// pcap-parser refused a block.
    #[error("{path}")]
    Parse {
        path: String,
        #[source]
        source: PcapError<&'static [u8]>,
    },
    /// A file podpath itself finds unusable (described in `detail`).
    #[error("{path}: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("capture: no interface in this network namespace")]
    NoInterface,
    #[error("capture: {count} interfaces; choose at most {max} with --interface", max = u16::MAX)]
    TooManyInterfaces { count: usize },
    /// An interface that had to be captured could not be. `detail` is the
    /// failure as the interface's health keeps it (metric label and log),
    /// the remedy included.
    #[error("capture: {interface}: {detail}")]
    Interface {
        interface: String,
        reason: FailReason,
        detail: String,
    },
}

/// A source of frames: live capture, capture files, or frames held in memory.
pub trait PacketSource {
    fn next_packet(&mut self) -> Result<Next<'_>, CaptureError>;

    /// Kernel counters per interface; empty for files.
    fn stats(&mut self) -> Vec<InterfaceStats> {
        Vec::new()
    }
}
