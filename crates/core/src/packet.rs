//! What a packet source hands the engine.

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
