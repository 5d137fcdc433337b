//! Link layers: find the IP packet inside a captured frame.
//!
//! ```text
//! Ethernet (LINKTYPE_ETHERNET), up to two 802.1Q (0x8100) / 802.1ad (0x88a8) tags:
//!  0                   6                   12      14
//! +-------------------+-------------------+-------+------------------+
//! |   destination     |      source       | type  | payload …        |
//! +-------------------+-------------------+-------+------------------+
//! with a tag, `type` is the TPID and 4 bytes follow it:
//! +-------+-------+
//! |  TCI  | type  |   (repeated for the outer/inner tag of QinQ)
//! +-------+-------+
//!
//! Linux cooked v1 (LINKTYPE_LINUX_SLL), 16 bytes, network order:
//!  0       2       4       6                               14      16
//! +-------+-------+-------+-------------------------------+-------+
//! |pkttype|hatype | halen |        address (8 bytes)      | proto |
//! +-------+-------+-------+-------------------------------+-------+
//!
//! Linux cooked v2 (LINKTYPE_LINUX_SLL2), 20 bytes, network order:
//!  0       2       4               8       10  11  12                              20
//! +-------+-------+---------------+-------+---+---+-------------------------------+
//! | proto | rsvd  |    ifindex    |hatype |pkt|len|        address (8 bytes)      |
//! +-------+-------+---------------+-------+---+---+-------------------------------+
//!
//! BSD NULL (LINKTYPE_NULL): 4-byte address family in the capturing host's
//! byte order. LOOP (LINKTYPE_LOOP): the same in network order.
//! AF_INET = 2 everywhere; AF_INET6 = 24 (NetBSD/OpenBSD), 28 (FreeBSD),
//! 30 (Darwin).
//!
//! RAW: the IP header itself, version in the first nibble. LINKTYPE_IPV4 /
//! LINKTYPE_IPV6: the IP header, family fixed by the link type.
//! ```

use super::{DecodeError, Layer, LinkType, PacketType};

pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
pub(crate) const ETHERTYPE_VLAN: u16 = 0x8100;
pub(crate) const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ TPID still emitted by some switches.
const ETHERTYPE_QINQ_LEGACY: u16 = 0x9100;
/// VLAN tags followed before giving up (802.1ad defines two).
const MAX_VLAN_TAGS: usize = 2;

const AF_INET: u32 = 2;
const AF_INET6_BSD: u32 = 24;
const AF_INET6_FREEBSD: u32 = 28;
const AF_INET6_DARWIN: u32 = 30;

/// IP family of the packet the link layer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// What the link layer told us, and the bytes of the IP packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkFrame<'a> {
    pub packet_type: Option<PacketType>,
    pub ifindex: Option<u32>,
    pub family: Family,
    pub ip: &'a [u8],
}

impl<'a> LinkFrame<'a> {
    fn plain(family: Family, ip: &'a [u8]) -> LinkFrame<'a> {
        LinkFrame {
            packet_type: None,
            ifindex: None,
            family,
            ip,
        }
    }
}

pub(crate) fn parse(link: LinkType, frame: &[u8]) -> Result<LinkFrame<'_>, DecodeError> {
    match link {
        LinkType::Ethernet => ethernet(frame),
        LinkType::LinuxSll => sll(frame),
        LinkType::LinuxSll2 => sll2(frame),
        LinkType::Null => null(frame, false),
        LinkType::Loop => null(frame, true),
        LinkType::Raw => raw(frame),
        LinkType::Ipv4 => Ok(LinkFrame::plain(Family::V4, frame)),
        LinkType::Ipv6 => Ok(LinkFrame::plain(Family::V6, frame)),
    }
}

fn ethernet(frame: &[u8]) -> Result<LinkFrame<'_>, DecodeError> {
    let (header, rest) = frame
        .split_first_chunk::<14>()
        .ok_or(DecodeError::Truncated(Layer::Link))?;
    let ethertype = u16::from_be_bytes([header[12], header[13]]);
    let (family, ip) = ethertype_payload(ethertype, rest)?;
    Ok(LinkFrame::plain(family, ip))
}

fn sll(frame: &[u8]) -> Result<LinkFrame<'_>, DecodeError> {
    let (header, rest) = frame
        .split_first_chunk::<16>()
        .ok_or(DecodeError::Truncated(Layer::Link))?;
    let packet_type = u16::from_be_bytes([header[0], header[1]]);
    let protocol = u16::from_be_bytes([header[14], header[15]]);
    let (family, ip) = ethertype_payload(protocol, rest)?;
    Ok(LinkFrame {
        packet_type: Some(PacketType::from_raw(packet_type)),
        ifindex: None,
        family,
        ip,
    })
}

fn sll2(frame: &[u8]) -> Result<LinkFrame<'_>, DecodeError> {
    let (header, rest) = frame
        .split_first_chunk::<20>()
        .ok_or(DecodeError::Truncated(Layer::Link))?;
    let protocol = u16::from_be_bytes([header[0], header[1]]);
    let ifindex = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let (family, ip) = ethertype_payload(protocol, rest)?;
    Ok(LinkFrame {
        packet_type: Some(PacketType::from_raw(u16::from(header[10]))),
        ifindex: Some(ifindex),
        family,
        ip,
    })
}

/// Follows up to [`MAX_VLAN_TAGS`] VLAN tags, then maps the EtherType.
/// libpcap re-inserts stripped tags after the cooked header too, so SLL and
/// SLL2 go through here as well.
fn ethertype_payload(mut ethertype: u16, mut rest: &[u8]) -> Result<(Family, &[u8]), DecodeError> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ethertype {
            ETHERTYPE_IPV4 => return Ok((Family::V4, rest)),
            ETHERTYPE_IPV6 => return Ok((Family::V6, rest)),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_LEGACY => {
                let (tag, inner) = rest
                    .split_first_chunk::<4>()
                    .ok_or(DecodeError::Truncated(Layer::Link))?;
                ethertype = u16::from_be_bytes([tag[2], tag[3]]);
                rest = inner;
            }
            _ => return Err(DecodeError::NotIp),
        }
    }
    // A third tag: not something a pod interface produces.
    Err(DecodeError::Malformed(Layer::Link))
}

fn null(frame: &[u8], network_order: bool) -> Result<LinkFrame<'_>, DecodeError> {
    let (header, rest) = frame
        .split_first_chunk::<4>()
        .ok_or(DecodeError::Truncated(Layer::Link))?;
    let big = u32::from_be_bytes(*header);
    // NULL is in the capturing host's order, which the file does not say:
    // the families are small numbers, so only one reading can match.
    let family = family_of(big).or_else(|| {
        if network_order {
            None
        } else {
            family_of(u32::from_le_bytes(*header))
        }
    });
    match family {
        Some(family) => Ok(LinkFrame::plain(family, rest)),
        None => Err(DecodeError::NotIp),
    }
}

fn family_of(af: u32) -> Option<Family> {
    match af {
        AF_INET => Some(Family::V4),
        AF_INET6_BSD | AF_INET6_FREEBSD | AF_INET6_DARWIN => Some(Family::V6),
        _ => None,
    }
}

fn raw(frame: &[u8]) -> Result<LinkFrame<'_>, DecodeError> {
    let first = frame.first().ok_or(DecodeError::Truncated(Layer::Link))?;
    match first >> 4 {
        4 => Ok(LinkFrame::plain(Family::V4, frame)),
        6 => Ok(LinkFrame::plain(Family::V6, frame)),
        _ => Err(DecodeError::NotIp),
    }
}
