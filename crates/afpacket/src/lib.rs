//! AF_PACKET capture sockets for podpath, the one place in the project with
//! `unsafe` code (libc calls, each with a `SAFETY:` comment).
//!
//! Why not `pnet_datalink`'s channel: its `next()` throws away the
//! `sockaddr_ll` (no direction, no interface index), takes no kernel
//! timestamp, cuts frames silently at its read buffer size, and attaches no
//! filter. Here each socket is:
//!
//! 1. created with `socket(AF_PACKET, SOCK_RAW, 0)`: protocol 0, so nothing
//!    is queued yet;
//! 2. given the classic BPF program of [`filter`] (`SO_ATTACH_FILTER`), whose
//!    return value is the snap length: the kernel copies only what podpath
//!    reads, and drops the rest before it costs a copy;
//! 3. asked for `SO_TIMESTAMPNS` (kernel receive time, CLOCK_REALTIME) and
//!    `PACKET_AUXDATA` (the frame's length before the snap cut), and given a
//!    larger receive buffer against bursts;
//! 4. bound to one interface with `ETH_P_ALL`, which starts the capture.
//!
//! [`Socket::recv`] uses `recvmsg(MSG_TRUNC | MSG_DONTWAIT)` and returns the
//! direction (`sll_pkttype`), interface, timestamp and original length with
//! the bytes: one system call per frame. [`Ring`] is the other way in: a
//! TPACKET_V3 ring mapped into the process (same filter, same metadata), read
//! without a system call per frame; each [`Frame`] borrows the ring, and its
//! block goes back to the kernel only once the frame is done with. [`Socket::stats`] reads `PACKET_STATISTICS`. [`Poller`] waits on
//! several sockets at once. [`file_capability`] reads an executable's file
//! capability, for saying why a socket was refused. [`MappedFile`] maps a
//! capture file for `podpath analyze` (here because mapping is `unsafe`).
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(rust_2018_idioms)]

mod fcaps;
pub mod filter;
mod mapped;
mod ring;
mod socket;

pub use fcaps::file_capability;
pub use filter::{capture_filter, FilterSpec, Instruction};
pub use mapped::MappedFile;
pub use ring::{Frame, FrameInfo, Ring, RingOptions};
pub use socket::{Options, Poller, Received, Socket, Stats};

/// Frame direction values of `sll_pkttype` (<linux/if_packet.h>).
pub mod pkttype {
    pub const HOST: u8 = 0;
    pub const BROADCAST: u8 = 1;
    pub const MULTICAST: u8 = 2;
    pub const OTHERHOST: u8 = 3;
    pub const OUTGOING: u8 = 4;
}

/// Why a socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process lacks CAP_NET_RAW in its network namespace's user namespace.
    #[error("needs CAP_NET_RAW: {op} failed: {source} (run as root, or grant the capability: file capability cap_net_raw+ep on the binary, or capabilities.add: [NET_RAW] in the container spec)")]
    NeedsCapNetRaw {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} failed: {source}")]
    Os {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}
