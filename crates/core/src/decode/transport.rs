//! TCP, UDP and ICMP/ICMPv6 errors.
//!
//! ```text
//! TCP (RFC 9293):
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------------------------------+-------------------------------+
//! |          Source Port          |       Destination Port        |
//! +-------------------------------+-------------------------------+
//! |                        Sequence Number                        |
//! +---------------------------------------------------------------+
//! |                     Acknowledgment Number                     |
//! +-------+-------+---------------+-------------------------------+
//! | Offset|  Rsvd |     Flags     |            Window             |
//! +-------+-------+---------------+-------------------------------+
//! |           Checksum            |        Urgent Pointer         |
//! +-------------------------------+-------------------------------+
//! |              Options (Offset × 4 − 20 bytes)                  |
//! +---------------------------------------------------------------+
//! Flags byte: CWR ECE URG ACK PSH RST SYN FIN.
//!
//! UDP (RFC 768):
//! +-------------------------------+-------------------------------+
//! |          Source Port          |       Destination Port        |
//! +-------------------------------+-------------------------------+
//! |     Length (header + data)    |           Checksum            |
//! +-------------------------------+-------------------------------+
//!
//! ICMP (RFC 792) / ICMPv6 (RFC 4443) error:
//! +---------------+---------------+-------------------------------+
//! |     Type      |     Code      |           Checksum            |
//! +---------------+---------------+-------------------------------+
//! |           Unused / MTU / pointer (4 bytes)                    |
//! +---------------------------------------------------------------+
//! | Original IP header + at least 8 bytes of its payload …        |
//! +---------------------------------------------------------------+
//! ICMPv4: 3 destination unreachable (code 3 port), 11 time exceeded,
//! 12 parameter problem. ICMPv6: 1 destination unreachable (code 4 port),
//! 2 packet too big, 3 time exceeded, 4 parameter problem.
//! ```

use std::net::{IpAddr, Ipv4Addr};

use super::ip::{addr6, extension_chain, len32, Fragmentation};
use super::{
    DecodeError, IcmpError, IcmpErrorKind, Layer, TcpFlags, TcpSegment, Transport, UdpDatagram,
};

pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_ICMPV6: u8 = 58;

const TCP_MIN_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
const ICMP_HEADER: usize = 8;

/// Decodes the upper layer. `payload` is what was captured, `payload_len`
/// what the IP header declares.
pub(crate) fn parse(
    protocol: u8,
    is_v6: bool,
    payload: &[u8],
    payload_len: u32,
) -> Result<Transport<'_>, DecodeError> {
    match (protocol, is_v6) {
        (PROTO_TCP, _) => tcp(payload, payload_len).map(Transport::Tcp),
        (PROTO_UDP, _) => udp(payload, payload_len).map(Transport::Udp),
        (PROTO_ICMP, false) => icmpv4(payload),
        (PROTO_ICMPV6, true) => icmpv6(payload),
        _ => Ok(Transport::Other { protocol }),
    }
}

fn tcp(segment: &[u8], declared: u32) -> Result<TcpSegment<'_>, DecodeError> {
    if declared < TCP_MIN_HEADER as u32 {
        return Err(DecodeError::Malformed(Layer::Tcp));
    }
    let (h, _) = segment
        .split_first_chunk::<TCP_MIN_HEADER>()
        .ok_or(DecodeError::Truncated(Layer::Tcp))?;
    let header_len = usize::from(h[12] >> 4) * 4;
    if header_len < TCP_MIN_HEADER || len32(header_len) > declared {
        return Err(DecodeError::Malformed(Layer::Tcp));
    }
    let payload = segment
        .get(header_len..)
        .ok_or(DecodeError::Truncated(Layer::Tcp))?;
    Ok(TcpSegment {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        flags: TcpFlags(h[13]),
        payload,
        payload_len: declared - len32(header_len),
    })
}

fn udp(datagram: &[u8], declared: u32) -> Result<UdpDatagram<'_>, DecodeError> {
    if declared < UDP_HEADER as u32 {
        return Err(DecodeError::Malformed(Layer::Udp));
    }
    let (h, rest) = datagram
        .split_first_chunk::<UDP_HEADER>()
        .ok_or(DecodeError::Truncated(Layer::Udp))?;
    let length = u32::from(u16::from_be_bytes([h[4], h[5]]));
    // Length 0: jumbogram or UDP GSO super-packet; the IP length is the truth.
    // A length beyond the IP packet is clamped to it.
    let length = match length {
        0 => declared,
        l if l < UDP_HEADER as u32 => return Err(DecodeError::Malformed(Layer::Udp)),
        l => l.min(declared),
    };
    let payload_len = length - UDP_HEADER as u32;
    let captured = usize::try_from(payload_len).unwrap_or(usize::MAX);
    Ok(UdpDatagram {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        payload: rest.get(..captured).unwrap_or(rest),
        payload_len,
    })
}

fn icmpv4(message: &[u8]) -> Result<Transport<'_>, DecodeError> {
    let (h, original) = message
        .split_first_chunk::<ICMP_HEADER>()
        .ok_or(DecodeError::Truncated(Layer::Icmp))?;
    let kind = match (h[0], h[1]) {
        (3, 3) => IcmpErrorKind::PortUnreachable,
        (3, _) => IcmpErrorKind::Unreachable,
        (11 | 12, _) => IcmpErrorKind::Other,
        _ => {
            return Ok(Transport::Other {
                protocol: PROTO_ICMP,
            })
        }
    };
    embedded_ipv4(original, kind).map(Transport::IcmpError)
}

fn icmpv6(message: &[u8]) -> Result<Transport<'_>, DecodeError> {
    let (h, original) = message
        .split_first_chunk::<ICMP_HEADER>()
        .ok_or(DecodeError::Truncated(Layer::Icmp))?;
    let kind = match (h[0], h[1]) {
        (1, 4) => IcmpErrorKind::PortUnreachable,
        (1, _) => IcmpErrorKind::Unreachable,
        (2..=4, _) => IcmpErrorKind::Other,
        _ => {
            return Ok(Transport::Other {
                protocol: PROTO_ICMPV6,
            })
        }
    };
    embedded_ipv6(original, kind).map(Transport::IcmpError)
}

/// Ports of the original packet, when its first bytes are a TCP/UDP header
/// (both start with source and destination port).
fn ports(protocol: u8, first_fragment: bool, l4: &[u8]) -> Result<(u16, u16), DecodeError> {
    if !first_fragment || !matches!(protocol, PROTO_TCP | PROTO_UDP) {
        return Ok((0, 0));
    }
    let (p, _) = l4
        .split_first_chunk::<4>()
        .ok_or(DecodeError::Truncated(Layer::Icmp))?;
    Ok((
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    ))
}

fn embedded_ipv4(original: &[u8], kind: IcmpErrorKind) -> Result<IcmpError, DecodeError> {
    let (h, _) = original
        .split_first_chunk::<20>()
        .ok_or(DecodeError::Truncated(Layer::Icmp))?;
    let header_len = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || header_len < 20 {
        return Err(DecodeError::Malformed(Layer::Icmp));
    }
    let l4 = original
        .get(header_len..)
        .ok_or(DecodeError::Truncated(Layer::Icmp))?;
    let first_fragment = u16::from_be_bytes([h[6], h[7]]) & 0x1fff == 0;
    let (src_port, dst_port) = ports(h[9], first_fragment, l4)?;
    Ok(IcmpError {
        kind,
        original_src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        original_dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        original_protocol: h[9],
        original_src_port: src_port,
        original_dst_port: dst_port,
    })
}

fn embedded_ipv6(original: &[u8], kind: IcmpErrorKind) -> Result<IcmpError, DecodeError> {
    let (h, rest) = original
        .split_first_chunk::<40>()
        .ok_or(DecodeError::Truncated(Layer::Icmp))?;
    if h[0] >> 4 != 6 {
        return Err(DecodeError::Malformed(Layer::Icmp));
    }
    // The error carries as much of the original as fits, so the original's
    // payload length says nothing about what is here: no header is
    // "beyond the declared length", only beyond what was quoted.
    let chain = extension_chain(h[6], rest, usize::MAX, Layer::Icmp)?;
    let l4 = rest.get(chain.header_len..).unwrap_or_default();
    let (src_port, dst_port) = ports(chain.protocol, chain.fragment != Fragmentation::Later, l4)?;
    Ok(IcmpError {
        kind,
        original_src: IpAddr::V6(addr6(h, 8)),
        original_dst: IpAddr::V6(addr6(h, 24)),
        original_protocol: chain.protocol,
        original_src_port: src_port,
        original_dst_port: dst_port,
    })
}
