//! Pure decoding: a captured frame (`&[u8]`) in, a typed view out.
//!
//! No I/O, no allocation, no panic. Lengths are checked once at each layer;
//! after that every accessor is in bounds. Sizes come from the IP header, not
//! from the captured length (a snap length may have cut the payload).
//!
//! One pipeline, entered through `crate::defrag::Defrag::decode`: link and
//! IP headers into a [`Network`] view (`network`); a whole packet then
//! decodes its transport layer from the frame (`Network::packet`), a
//! fragment waits in `crate::defrag` until its datagram is complete and
//! then decodes it (`Network::reassembled`). Production, tests, benches
//! and fuzz targets all take that path.
//!
//! Link layers: Ethernet (with 802.1Q/802.1ad VLAN tags), Linux cooked v1
//! (SLL) and v2 (SLL2, `tcpdump -i any`), raw IPv4/IPv6, BSD NULL/LOOP.
//! Network: IPv4 with options, IPv6 with extension headers. Transport: TCP,
//! UDP, ICMP/ICMPv6 errors (the embedded original header).

use std::net::IpAddr;

#[cfg(any(test, feature = "testkit"))]
pub mod build;
mod ip;
mod link;
mod transport;

#[cfg(test)]
mod tests;

/// pcap `LINKTYPE_*` values this decoder understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_NULL (0): 4-byte host-endian address family.
    Null,
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101) and the legacy 12/14: IPv4 or IPv6 by version nibble.
    Raw,
    /// LINKTYPE_LOOP (108): 4-byte network-order address family.
    Loop,
    /// LINKTYPE_LINUX_SLL (113).
    LinuxSll,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
}

impl LinkType {
    /// Every link type, in a fixed order: fuzz inputs index into it (see
    /// `fuzz/scripts/seed.sh`), so new ones go at the end.
    pub const ALL: [LinkType; 8] = [
        LinkType::Null,
        LinkType::Ethernet,
        LinkType::Raw,
        LinkType::Loop,
        LinkType::LinuxSll,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::LinuxSll2,
    ];

    /// Maps a pcap/pcapng link-type number; `None` for unsupported ones.
    pub fn from_linktype(value: u32) -> Option<LinkType> {
        Some(match value {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }
}

/// Who the packet was for, as the kernel tells it (`sll_pkttype`): present for
/// SLL/SLL2 captures and live AF_PACKET, absent for Ethernet files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// PACKET_HOST (0): addressed to this host.
    Host,
    /// PACKET_BROADCAST (1).
    Broadcast,
    /// PACKET_MULTICAST (2).
    Multicast,
    /// PACKET_OTHERHOST (3).
    OtherHost,
    /// PACKET_OUTGOING (4): sent by this host.
    Outgoing,
    /// Any other value.
    Other(u16),
}

impl PacketType {
    pub fn from_raw(value: u16) -> PacketType {
        match value {
            0 => PacketType::Host,
            1 => PacketType::Broadcast,
            2 => PacketType::Multicast,
            3 => PacketType::OtherHost,
            4 => PacketType::Outgoing,
            v => PacketType::Other(v),
        }
    }
}

/// TCP flag bits (low byte of the flags field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// Payload bytes actually captured (may be shorter than `payload_len`).
    pub payload: &'a [u8],
    /// Payload length from the IP header (total length − IP header − TCP header).
    pub payload_len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// Payload bytes actually captured, never beyond the UDP length field.
    pub payload: &'a [u8],
    /// Payload length from the UDP header (length − 8).
    pub payload_len: u32,
}

/// An ICMP/ICMPv6 error carrying the start of the packet that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    pub kind: IcmpErrorKind,
    /// The original packet's header, as embedded in the error: `src` is the
    /// host that sent the packet the error answers.
    pub original_src: IpAddr,
    pub original_dst: IpAddr,
    /// IP protocol number of the original packet (6 TCP, 17 UDP).
    pub original_protocol: u8,
    pub original_src_port: u16,
    pub original_dst_port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcmpErrorKind {
    /// ICMPv4 type 3 code 3, ICMPv6 type 1 code 4.
    PortUnreachable,
    /// Any other destination-unreachable code.
    Unreachable,
    /// Time exceeded, parameter problem, packet too big.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(TcpSegment<'a>),
    Udp(UdpDatagram<'a>),
    IcmpError(IcmpError),
    /// Any other IP protocol (or ICMP that is not an error); counted, not tracked.
    Other {
        protocol: u8,
    },
}

/// One decoded IP packet: the network-layer fields the engine reads and its
/// transport layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// From SLL/SLL2 headers; `None` for link types that do not carry it.
    pub packet_type: Option<PacketType>,
    /// Interface index from SLL2; `None` otherwise.
    pub ifindex: Option<u32>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Bytes of the IP packet according to its header (IPv4 total length,
    /// IPv6 payload length + 40).
    pub ip_len: u32,
    pub transport: Transport<'a>,
}

/// Where an IP fragment's data goes in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// IPv4 identification (16 bits) or IPv6 fragment header identification.
    pub id: u32,
    /// Byte offset of this fragment's data in the reassembled payload.
    pub offset: u32,
    /// More fragments follow (IPv4 MF, IPv6 M).
    pub more: bool,
}

/// A frame decoded down to its network layer, fragments included: the one
/// view between the headers and the transport layer. A whole packet goes on
/// through `Network::packet`; a fragment to reassembly (`crate::defrag`),
/// whose completed datagram goes on through `Network::reassembled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network<'a> {
    pub packet_type: Option<PacketType>,
    pub ifindex: Option<u32>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Whole packet length according to the IP header.
    pub ip_len: u32,
    /// Upper-layer protocol after any IPv6 extension headers; for an IPv6
    /// fragment, the fragment header's next header (extension headers may
    /// follow in the reassembled payload).
    pub protocol: u8,
    pub is_v6: bool,
    /// Upper-layer bytes captured, never beyond the header-declared end (for
    /// a fragment: its data).
    pub payload: &'a [u8],
    /// Upper-layer length according to the header (for a fragment: its data length).
    pub payload_len: u32,
    /// Set for a non-atomic IP fragment.
    pub fragment: Option<FragmentInfo>,
}

impl<'a> Network<'a> {
    /// The transport layer of a whole packet, from the frame's own bytes.
    /// The IP header walk already stopped at the upper layer, so it is
    /// parsed directly.
    pub(crate) fn packet(&self) -> Result<Packet<'a>, DecodeError> {
        if self.fragment.is_some() {
            return Err(DecodeError::Fragment);
        }
        let transport =
            transport::parse(self.protocol, self.is_v6, self.payload, self.payload_len)?;
        Ok(self.with(transport))
    }

    /// The transport layer of a datagram reassembled from fragments, `self`
    /// being the one that completed it: `payload` is the whole upper-layer
    /// data, `protocol` the first fragment's. For IPv6 that is the fragment
    /// header's next header, so the extension headers that open the
    /// fragmentable part are walked first.
    pub(crate) fn reassembled<'p>(
        &self,
        protocol: u8,
        payload: &'p [u8],
    ) -> Result<Packet<'p>, DecodeError> {
        let len = ip::len32(payload.len());
        if !self.is_v6 {
            return Ok(self.with(transport::parse(protocol, false, payload, len)?));
        }
        let chain = ip::extension_chain(protocol, payload, payload.len(), Layer::Ipv6)?;
        if chain.fragment_info.is_some() {
            // A fragment header inside a reassembled datagram.
            return Err(DecodeError::Fragment);
        }
        let rest = payload.get(chain.header_len..).unwrap_or_default();
        let rest_len = len.saturating_sub(ip::len32(chain.header_len));
        Ok(self.with(transport::parse(chain.protocol, true, rest, rest_len)?))
    }

    fn with<'p>(&self, transport: Transport<'p>) -> Packet<'p> {
        Packet {
            packet_type: self.packet_type,
            ifindex: self.ifindex,
            src: self.src,
            dst: self.dst,
            ip_len: self.ip_len,
            transport,
        }
    }
}

/// Why a frame was not decoded. Small and `Copy`: this is on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported link type")]
    UnsupportedLinkType,
    /// ARP, LLDP, … : not IP.
    #[error("not an IP packet")]
    NotIp,
    #[error("frame truncated in the {0} header")]
    Truncated(Layer),
    #[error("malformed {0} header")]
    Malformed(Layer),
    /// An IP fragment where a whole packet was expected: a fragment header
    /// inside a reassembled IPv6 datagram.
    #[error("IP fragment")]
    Fragment,
    /// IPv6 extension-header chain longer than the decoder follows.
    #[error("IPv6 extension header chain too long")]
    ExtensionChain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    Link,
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmp,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layer::Link => "link",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Tcp => "TCP",
            Layer::Udp => "UDP",
            Layer::Icmp => "ICMP",
        })
    }
}

/// Decodes a frame's link and network headers; a fragment is not an error
/// here but comes back with its data and position for reassembly. The one
/// entry point from bytes to a [`Packet`] is `crate::defrag::Defrag::decode`.
pub(crate) fn network(link: LinkType, frame: &[u8]) -> Result<Network<'_>, DecodeError> {
    let frame = link::parse(link, frame)?;
    match frame.family {
        link::Family::V4 => ip::ipv4(&frame),
        link::Family::V6 => ip::ipv6(&frame),
    }
}
