//! IPv4 and IPv6 headers.
//!
//! ```text
//! IPv4 (RFC 791):
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------+-------+---------------+-------------------------------+
//! |Version|  IHL  |    DSCP/ECN   |         Total Length          |
//! +-------+-------+---------------+-----+-------------------------+
//! |        Identification         |Flags|     Fragment Offset     |
//! +---------------+---------------+-----+-------------------------+
//! |      TTL      |   Protocol    |        Header Checksum        |
//! +---------------+---------------+-------------------------------+
//! |                        Source Address                         |
//! +---------------------------------------------------------------+
//! |                      Destination Address                      |
//! +---------------------------------------------------------------+
//! |                 Options (IHL × 4 − 20 bytes)                  |
//! +---------------------------------------------------------------+
//! Flags: reserved, DF (0x4000), MF (0x2000) in the top bits of byte 6.
//!
//! IPv6 (RFC 8200):
//! +-------+---------------+---------------------------------------+
//! |Version| Traffic Class |              Flow Label               |
//! +-------+---------------+-------+---------------+---------------+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-------------------------------+---------------+---------------+
//! |                  Source Address (16 bytes)                    |
//! +---------------------------------------------------------------+
//! |                Destination Address (16 bytes)                 |
//! +---------------------------------------------------------------+
//!
//! Extension headers: byte 0 is the next header. Hop-by-hop (0), routing
//! (43) and destination options (60) are (byte 1 + 1) × 8 bytes long; AH
//! (51) is (byte 1 + 2) × 4 bytes; fragment (44) is 8 bytes:
//! +---------------+---------------+-------------------------+---+-+
//! |  Next Header  |   Reserved    |     Fragment Offset     |Res|M|
//! +---------------+---------------+-------------------------+---+-+
//! |                        Identification                         |
//! +---------------------------------------------------------------+
//! ```
//!
//! Checksums are not verified: outgoing packets captured on the host carry
//! offloaded (unfinished) checksums.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::link::LinkFrame;
use super::{DecodeError, FragmentInfo, Layer, Network};

pub(crate) const PROTO_HOP_BY_HOP: u8 = 0;
pub(crate) const PROTO_ROUTING: u8 = 43;
pub(crate) const PROTO_FRAGMENT: u8 = 44;
pub(crate) const PROTO_AH: u8 = 51;
pub(crate) const PROTO_DEST_OPTS: u8 = 60;
/// Extension headers followed before [`DecodeError::ExtensionChain`].
pub(crate) const MAX_EXTENSION_HEADERS: usize = 8;

const IPV4_MIN_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;

/// An IPv4 header, fragments included: for a fragment, `payload` is the
/// fragment's data and `fragment` says where it goes. The view is built here
/// in one piece, link-layer fields included, not copied out of a smaller one.
pub(crate) fn ipv4<'a>(link: &LinkFrame<'a>) -> Result<Network<'a>, DecodeError> {
    let packet = link.ip;
    check_version(packet, 4, Layer::Ipv4)?;
    let (h, _) = packet
        .split_first_chunk::<IPV4_MIN_HEADER>()
        .ok_or(DecodeError::Truncated(Layer::Ipv4))?;
    let header_len = usize::from(h[0] & 0x0f) * 4;
    if header_len < IPV4_MIN_HEADER {
        return Err(DecodeError::Malformed(Layer::Ipv4));
    }
    let mut total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total_len == 0 {
        // TSO / BIG TCP super-packets handed to the tap before segmentation
        // carry total length 0; the captured length is all there is (tcpdump
        // does the same).
        total_len = packet.len();
    }
    if total_len < header_len {
        return Err(DecodeError::Malformed(Layer::Ipv4));
    }
    if packet.len() < header_len {
        return Err(DecodeError::Truncated(Layer::Ipv4));
    }
    let field = u16::from_be_bytes([h[6], h[7]]);
    let fragment = (field & (IPV4_MF | IPV4_OFFSET_MASK) != 0).then(|| FragmentInfo {
        id: u32::from(u16::from_be_bytes([h[4], h[5]])),
        offset: u32::from(field & IPV4_OFFSET_MASK) * 8,
        more: field & IPV4_MF != 0,
    });
    let end = total_len.min(packet.len());
    let payload = packet.get(header_len..end).unwrap_or_default();
    Ok(Network {
        packet_type: link.packet_type,
        ifindex: link.ifindex,
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        ip_len: len32(total_len),
        protocol: h[9],
        is_v6: false,
        payload,
        payload_len: len32(total_len - header_len),
        fragment,
    })
}

/// An IPv6 header, fragments included: for a fragment, `protocol` is the
/// fragment header's next header, `payload` the bytes after the fragment
/// header (the fragmentable part), and `fragment` says where they go.
pub(crate) fn ipv6<'a>(link: &LinkFrame<'a>) -> Result<Network<'a>, DecodeError> {
    let packet = link.ip;
    check_version(packet, 6, Layer::Ipv6)?;
    let (h, rest) = packet
        .split_first_chunk::<IPV6_HEADER>()
        .ok_or(DecodeError::Truncated(Layer::Ipv6))?;
    let mut declared = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if declared == 0 && h[6] != NO_NEXT_HEADER {
        // Jumbogram or BIG TCP: the real length is not in this field.
        declared = rest.len();
    }
    let captured = rest.get(..declared).unwrap_or(rest);
    let chain = extension_chain(h[6], captured, declared, Layer::Ipv6)?;
    Ok(Network {
        packet_type: link.packet_type,
        ifindex: link.ifindex,
        src: IpAddr::V6(addr6(h, 8)),
        dst: IpAddr::V6(addr6(h, 24)),
        ip_len: len32(declared + IPV6_HEADER),
        protocol: chain.protocol,
        is_v6: true,
        payload: captured.get(chain.header_len..).unwrap_or_default(),
        payload_len: len32(declared.saturating_sub(chain.header_len)),
        fragment: chain.fragment_info,
    })
}

const NO_NEXT_HEADER: u8 = 59;

/// The version nibble decides between "wrong family" (malformed) and "cut
/// short" (truncated) for packets shorter than the fixed header.
fn check_version(packet: &[u8], version: u8, layer: Layer) -> Result<(), DecodeError> {
    match packet.first() {
        None => Err(DecodeError::Truncated(layer)),
        Some(b) if b >> 4 != version => Err(DecodeError::Malformed(layer)),
        Some(_) => Ok(()),
    }
}

/// Reads the 16-byte address at `at` (8 or 24 in a fixed IPv6 header, which
/// the caller has length-checked).
pub(crate) fn addr6(h: &[u8], at: usize) -> Ipv6Addr {
    h.get(at..at + 16)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
        .map_or(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from)
}

/// Where an IPv6 packet sits in a fragmented datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragmentation {
    /// No fragment header, or an atomic one (offset 0, M = 0).
    None,
    /// Offset 0, more fragments follow: the upper-layer header is here.
    First,
    /// Offset ≠ 0: no upper-layer header.
    Later,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct ExtensionChain {
    /// Upper-layer protocol (59 for "no next header").
    pub protocol: u8,
    /// Bytes of extension headers before the upper layer.
    pub header_len: usize,
    pub fragment: Fragmentation,
    /// The fragment header's fields, for a non-atomic fragment.
    pub fragment_info: Option<FragmentInfo>,
}

/// Walks IPv6 extension headers starting at `next_header` over `data`
/// (captured bytes after the fixed header, at most `declared` long).
/// A header past `declared` is malformed; past `data` it is truncated.
/// Stops at the fragment header of a non-atomic fragment: what follows it is
/// the fragmentable part, whose headers may continue in later fragments.
pub(crate) fn extension_chain(
    mut next_header: u8,
    data: &[u8],
    declared: usize,
    layer: Layer,
) -> Result<ExtensionChain, DecodeError> {
    let mut offset = 0usize;
    for _ in 0..MAX_EXTENSION_HEADERS {
        if !is_extension(next_header) {
            return Ok(ExtensionChain {
                protocol: next_header,
                header_len: offset,
                fragment: Fragmentation::None,
                fragment_info: None,
            });
        }
        // Every extension header is at least 8 bytes long.
        let rest = data.get(offset..).unwrap_or_default();
        let Some((h, _)) = rest.split_first_chunk::<8>() else {
            return Err(if offset + 8 > declared {
                DecodeError::Malformed(layer)
            } else {
                DecodeError::Truncated(layer)
            });
        };
        let len = match next_header {
            PROTO_FRAGMENT => 8,
            PROTO_AH => (usize::from(h[1]) + 2) * 4,
            _ => (usize::from(h[1]) + 1) * 8,
        };
        if offset + len > declared {
            return Err(DecodeError::Malformed(layer));
        }
        if offset + len > data.len() {
            return Err(DecodeError::Truncated(layer));
        }
        if next_header == PROTO_FRAGMENT {
            let field = u16::from_be_bytes([h[2], h[3]]);
            let (units, more) = (field >> 3, field & 1 != 0);
            if units != 0 || more {
                return Ok(ExtensionChain {
                    protocol: h[0],
                    header_len: offset + len,
                    fragment: if units != 0 {
                        Fragmentation::Later
                    } else {
                        Fragmentation::First
                    },
                    fragment_info: Some(FragmentInfo {
                        id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                        offset: u32::from(units) * 8,
                        more,
                    }),
                });
            }
        }
        next_header = h[0];
        offset += len;
    }
    if is_extension(next_header) {
        return Err(DecodeError::ExtensionChain);
    }
    Ok(ExtensionChain {
        protocol: next_header,
        header_len: offset,
        fragment: Fragmentation::None,
        fragment_info: None,
    })
}

fn is_extension(next_header: u8) -> bool {
    matches!(
        next_header,
        PROTO_HOP_BY_HOP | PROTO_ROUTING | PROTO_FRAGMENT | PROTO_AH | PROTO_DEST_OPTS
    )
}

/// Lengths here come from 16-bit fields or a captured slice.
pub(crate) fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
