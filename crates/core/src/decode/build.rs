//! Frame builder for tests: emits the wire formats [`decode`](super)
//! reads, so tests across the crate build packets instead of hand-writing
//! bytes. Allocates; not for the hot path. Test support only: compiled for
//! the crate's unit tests and under the `testkit` feature, which integration
//! tests, benches and the fuzz targets enable (see `Cargo.toml`).
//!
//! ```
//! use podpath_core::decode::{build::FrameBuilder, LinkType, TcpFlags, Transport};
//! use podpath_core::defrag::{Decoded, Defrag, Expired};
//! use podpath_core::Timestamp;
//!
//! let frame = FrameBuilder::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into())
//!     .link(LinkType::LinuxSll2)
//!     .packet_type(4)
//!     .ifindex(3)
//!     .tcp(40000, 80)
//!     .flags(TcpFlags::SYN)
//!     .seq(1000)
//!     .build();
//! let mut defrag = Defrag::new(64, 5.0);
//! let (mut reassembled, mut evicted) = (Vec::new(), Expired::default());
//! let Decoded::Packet(packet) =
//!     defrag.decode(Timestamp::ZERO, LinkType::LinuxSll2, &frame, &mut reassembled, &mut evicted)
//! else {
//!     panic!("a whole packet");
//! };
//! assert!(matches!(packet.transport, Transport::Tcp(s) if s.flags.syn() && s.seq == 1000));
//! ```
//!
//! Every header is emitted in the layouts drawn in `link.rs`, `ip.rs` and
//! `transport.rs`. IPv4 header, TCP, UDP and ICMP checksums are computed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ip::{PROTO_AH, PROTO_DEST_OPTS, PROTO_FRAGMENT, PROTO_HOP_BY_HOP, PROTO_ROUTING};
use super::link::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN};
use super::transport::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use super::LinkType;

/// TPID of an 802.1Q (customer) VLAN tag, for [`FrameBuilder::vlan`].
pub const TPID_8021Q: u16 = ETHERTYPE_VLAN;
/// TPID of an 802.1ad (service, outer QinQ) VLAN tag.
pub const TPID_8021AD: u16 = ETHERTYPE_QINQ;

/// An IPv6 extension header to insert between the fixed header and the upper
/// layer. Contents are zero padding (valid Pad1 options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6Ext {
    /// (len + 1) × 8 bytes.
    HopByHop { len: u8 },
    /// (len + 1) × 8 bytes.
    Routing { len: u8 },
    /// (len + 1) × 8 bytes.
    DestinationOptions { len: u8 },
    /// 8 bytes; `offset` in 8-byte units, `more` = M flag.
    Fragment { offset: u16, more: bool },
    /// (len + 2) × 4 bytes; `len` ≥ 1 for a valid AH.
    Ah { len: u8 },
}

impl Ipv6Ext {
    fn protocol(self) -> u8 {
        match self {
            Ipv6Ext::HopByHop { .. } => PROTO_HOP_BY_HOP,
            Ipv6Ext::Routing { .. } => PROTO_ROUTING,
            Ipv6Ext::DestinationOptions { .. } => PROTO_DEST_OPTS,
            Ipv6Ext::Fragment { .. } => PROTO_FRAGMENT,
            Ipv6Ext::Ah { .. } => PROTO_AH,
        }
    }

    fn emit(self, next_header: u8, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Ipv6Ext::HopByHop { len }
            | Ipv6Ext::Routing { len }
            | Ipv6Ext::DestinationOptions { len } => {
                out.resize(start + (usize::from(len) + 1) * 8, 0);
                out[start + 1] = len;
            }
            Ipv6Ext::Ah { len } => {
                out.resize(start + (usize::from(len) + 2) * 4, 0);
                out[start + 1] = len;
            }
            Ipv6Ext::Fragment { offset, more } => {
                out.resize(start + 8, 0);
                let field = (offset << 3) | u16::from(more);
                out[start + 2..start + 4].copy_from_slice(&field.to_be_bytes());
                out[start + 4..start + 8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            }
        }
        out[start] = next_header;
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        options: Vec<u8>,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    Icmp {
        kind: u8,
        code: u8,
    },
    /// Raw upper-layer bytes (`payload`) under this protocol number.
    Other {
        protocol: u8,
    },
}

/// Builds one frame: link header, IP header (with options / extension
/// headers), transport header, payload.
///
/// The family follows the addresses; if one is IPv4 and the other IPv6, the
/// IPv4 one is written as IPv4-mapped IPv6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameBuilder {
    link: LinkType,
    packet_type: u16,
    ifindex: u32,
    vlans: Vec<(u16, u16)>,
    null_big_endian: bool,
    pad_to: usize,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    ipv4_options: Vec<u8>,
    ipv4_fragment: (u16, bool),
    ipv6_ext: Vec<Ipv6Ext>,
    body: Body,
    payload: Vec<u8>,
}

impl FrameBuilder {
    /// Ethernet frame, no payload, protocol 253 (experimental) until a
    /// transport is chosen.
    pub fn new(src: IpAddr, dst: IpAddr) -> FrameBuilder {
        let (src, dst) = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V6(d)) => (IpAddr::V6(s.to_ipv6_mapped()), IpAddr::V6(d)),
            (IpAddr::V6(s), IpAddr::V4(d)) => (IpAddr::V6(s), IpAddr::V6(d.to_ipv6_mapped())),
            same => same,
        };
        FrameBuilder {
            link: LinkType::Ethernet,
            packet_type: 0,
            ifindex: 1,
            vlans: Vec::new(),
            null_big_endian: false,
            pad_to: 0,
            src,
            dst,
            ttl: 64,
            ipv4_options: Vec::new(),
            ipv4_fragment: (0, false),
            ipv6_ext: Vec::new(),
            body: Body::Other { protocol: 253 },
            payload: Vec::new(),
        }
    }

    pub fn link(mut self, link: LinkType) -> Self {
        self.link = link;
        self
    }

    /// `sll_pkttype` for SLL (u16) and SLL2 (low byte); 0 = host, 4 = outgoing.
    pub fn packet_type(mut self, packet_type: u16) -> Self {
        self.packet_type = packet_type;
        self
    }

    /// Interface index written in SLL2 headers.
    pub fn ifindex(mut self, ifindex: u32) -> Self {
        self.ifindex = ifindex;
        self
    }

    /// Adds a VLAN tag (outermost first) with this TPID (0x8100, 0x88a8) and
    /// VLAN id. Emitted for Ethernet, SLL and SLL2.
    pub fn vlan(mut self, tpid: u16, vid: u16) -> Self {
        self.vlans.push((tpid, vid));
        self
    }

    /// Writes the NULL address family big-endian (as a big-endian host would).
    pub fn null_big_endian(mut self, big_endian: bool) -> Self {
        self.null_big_endian = big_endian;
        self
    }

    /// Pads the whole frame with zeros to at least `len` bytes (Ethernet's
    /// 60-byte minimum); padding is not part of the IP packet.
    pub fn pad_to(mut self, len: usize) -> Self {
        self.pad_to = len;
        self
    }

    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// IPv4 options, zero-padded to a multiple of 4 bytes (at most 40).
    pub fn ipv4_options(mut self, options: &[u8]) -> Self {
        self.ipv4_options = options.to_vec();
        self
    }

    /// IPv4 fragment offset (8-byte units) and MF flag.
    pub fn ipv4_fragment(mut self, offset: u16, more: bool) -> Self {
        self.ipv4_fragment = (offset, more);
        self
    }

    /// Appends an IPv6 extension header (in order, first is outermost).
    pub fn ipv6_ext(mut self, ext: Ipv6Ext) -> Self {
        self.ipv6_ext.push(ext);
        self
    }

    /// TCP segment with seq 0, ack 0, flags ACK until set otherwise.
    pub fn tcp(mut self, src_port: u16, dst_port: u16) -> Self {
        self.body = Body::Tcp {
            src_port,
            dst_port,
            seq: 0,
            ack: 0,
            flags: super::TcpFlags::ACK,
            options: Vec::new(),
        };
        self
    }

    pub fn seq(mut self, value: u32) -> Self {
        if let Body::Tcp { seq, .. } = &mut self.body {
            *seq = value;
        }
        self
    }

    pub fn ack(mut self, value: u32) -> Self {
        if let Body::Tcp { ack, .. } = &mut self.body {
            *ack = value;
        }
        self
    }

    /// TCP flag bits ([`TcpFlags`](super::TcpFlags) constants, or-ed).
    pub fn flags(mut self, value: u8) -> Self {
        if let Body::Tcp { flags, .. } = &mut self.body {
            *flags = value;
        }
        self
    }

    /// TCP options, zero-padded to a multiple of 4 bytes (at most 40).
    pub fn tcp_options(mut self, value: &[u8]) -> Self {
        if let Body::Tcp { options, .. } = &mut self.body {
            *options = value.to_vec();
        }
        self
    }

    pub fn udp(mut self, src_port: u16, dst_port: u16) -> Self {
        self.body = Body::Udp { src_port, dst_port };
        self
    }

    /// ICMP (IPv4) or ICMPv6 message of this type and code; the 4 bytes after
    /// the checksum are zero, then the payload.
    pub fn icmp(mut self, kind: u8, code: u8) -> Self {
        self.body = Body::Icmp { kind, code };
        self
    }

    /// ICMP error quoting `original` (a packet sent the other way): the
    /// original IP header + 8 bytes for IPv4, the whole original IP packet
    /// for IPv6.
    pub fn icmp_error(self, kind: u8, code: u8, original: &FrameBuilder) -> Self {
        let mut quoted = original.build_ip();
        if original.src.is_ipv4() {
            let header = 20 + padded_len(&original.ipv4_options);
            quoted.truncate(header + 8);
        }
        self.icmp(kind, code).payload(&quoted)
    }

    /// Port unreachable (ICMPv4 3/3, ICMPv6 1/4) quoting `original`.
    pub fn icmp_port_unreachable(self, original: &FrameBuilder) -> Self {
        let (kind, code) = match self.src {
            IpAddr::V4(_) => (3, 3),
            IpAddr::V6(_) => (1, 4),
        };
        self.icmp_error(kind, code, original)
    }

    /// Any other IP protocol carrying `payload` as is.
    pub fn protocol(mut self, protocol: u8) -> Self {
        self.body = Body::Other { protocol };
        self
    }

    /// Transport payload (TCP/UDP data, ICMP body, raw protocol bytes).
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// The whole frame for the chosen link type.
    pub fn build(&self) -> Vec<u8> {
        self.frame(&self.build_ip())
    }

    /// The packet split into IP fragments carrying at most `chunk` bytes of
    /// data each (rounded down to a multiple of 8, at least 8), one frame per
    /// fragment, in order. IPv4 fragments copy the header (options
    /// included); IPv6 ones get a fragment header (identification
    /// 0x12345678) right after the fixed header, so every extension header
    /// set with [`ipv6_ext`](Self::ipv6_ext) is in the fragmentable part.
    pub fn build_fragments(&self, chunk: usize) -> Vec<Vec<u8>> {
        let chunk = (chunk / 8 * 8).max(8);
        let mut whole = self.clone();
        whole.ipv4_fragment = (0, false);
        let ip = whole.build_ip();
        let v6 = matches!(self.src, IpAddr::V6(_));
        let header_len = if v6 {
            40
        } else {
            usize::from(ip[0] & 0x0f) * 4
        };
        let (header, data) = ip.split_at(header_len.min(ip.len()));
        let count = data.len().div_ceil(chunk).max(1);
        let mut frames = Vec::with_capacity(count);
        for i in 0..count {
            let start = i * chunk;
            let part = &data[start.min(data.len())..(start + chunk).min(data.len())];
            let more = i + 1 < count;
            let units = (start / 8) as u16;
            let mut packet = header.to_vec();
            if v6 {
                packet[4..6].copy_from_slice(&((8 + part.len()) as u16).to_be_bytes());
                let next = packet[6];
                packet[6] = PROTO_FRAGMENT;
                packet.extend_from_slice(&[next, 0]);
                packet.extend_from_slice(&((units << 3) | u16::from(more)).to_be_bytes());
                packet.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            } else {
                packet[2..4].copy_from_slice(&((header_len + part.len()) as u16).to_be_bytes());
                let field = (units & 0x1fff) | if more { 0x2000 } else { 0 };
                packet[6..8].copy_from_slice(&field.to_be_bytes());
                packet[10..12].copy_from_slice(&[0, 0]);
                let checksum = !fold(sum(&packet, 0));
                packet[10..12].copy_from_slice(&checksum.to_be_bytes());
            }
            packet.extend_from_slice(part);
            frames.push(self.frame(&packet));
        }
        frames
    }

    /// Wraps an IP packet in the chosen link header (and VLAN tags, padding).
    fn frame(&self, ip: &[u8]) -> Vec<u8> {
        let ethertype = match self.src {
            IpAddr::V4(_) => ETHERTYPE_IPV4,
            IpAddr::V6(_) => ETHERTYPE_IPV6,
        };
        let mut frame = Vec::with_capacity(ip.len() + 32);
        let first_type = self.vlans.first().map_or(ethertype, |&(tpid, _)| tpid);
        match self.link {
            LinkType::Ethernet => {
                frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
                frame.extend_from_slice(&first_type.to_be_bytes());
                self.emit_vlans(ethertype, &mut frame);
            }
            LinkType::LinuxSll => {
                frame.extend_from_slice(&self.packet_type.to_be_bytes());
                frame.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                frame.extend_from_slice(&6u16.to_be_bytes());
                frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0, 0]);
                frame.extend_from_slice(&first_type.to_be_bytes());
                self.emit_vlans(ethertype, &mut frame);
            }
            LinkType::LinuxSll2 => {
                frame.extend_from_slice(&first_type.to_be_bytes());
                frame.extend_from_slice(&[0, 0]);
                frame.extend_from_slice(&self.ifindex.to_be_bytes());
                frame.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                frame.push(self.packet_type as u8);
                frame.push(6);
                frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0, 0]);
                self.emit_vlans(ethertype, &mut frame);
            }
            LinkType::Null | LinkType::Loop => {
                let af: u32 = match self.src {
                    IpAddr::V4(_) => 2,
                    IpAddr::V6(_) => 30,
                };
                if self.link == LinkType::Loop || self.null_big_endian {
                    frame.extend_from_slice(&af.to_be_bytes());
                } else {
                    frame.extend_from_slice(&af.to_le_bytes());
                }
            }
            LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {}
        }
        frame.extend_from_slice(ip);
        if frame.len() < self.pad_to {
            frame.resize(self.pad_to, 0);
        }
        frame
    }

    fn emit_vlans(&self, ethertype: u16, frame: &mut Vec<u8>) {
        for (i, &(_, vid)) in self.vlans.iter().enumerate() {
            let next = self.vlans.get(i + 1).map_or(ethertype, |&(tpid, _)| tpid);
            frame.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
            frame.extend_from_slice(&next.to_be_bytes());
        }
    }

    /// The IP packet alone (what LINKTYPE_RAW carries).
    pub fn build_ip(&self) -> Vec<u8> {
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => self.build_ipv4(src, dst),
            (IpAddr::V6(src), IpAddr::V6(dst)) => self.build_ipv6(src, dst),
            // `new` maps mixed families to IPv6.
            (src, dst) => self.build_ipv6(to_v6(src), to_v6(dst)),
        }
    }

    fn build_ipv4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let (protocol, upper) = self.upper(&PseudoHeader::V4 { src, dst });
        let options_len = padded_len(&self.ipv4_options);
        let header_len = 20 + options_len;
        let total = (header_len + upper.len()) as u16;
        let (offset, more) = self.ipv4_fragment;
        let fragment = (offset & 0x1fff) | if more { 0x2000 } else { 0 };
        let mut out = Vec::with_capacity(usize::from(total));
        out.push(0x40 | (header_len / 4) as u8);
        out.push(0);
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&0x4242u16.to_be_bytes());
        out.extend_from_slice(&fragment.to_be_bytes());
        out.push(self.ttl);
        out.push(protocol);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&src.octets());
        out.extend_from_slice(&dst.octets());
        out.extend_from_slice(&self.ipv4_options);
        out.resize(header_len, 0);
        let checksum = !fold(sum(&out, 0));
        out[10..12].copy_from_slice(&checksum.to_be_bytes());
        out.extend_from_slice(&upper);
        out
    }

    fn build_ipv6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let (protocol, upper) = self.upper(&PseudoHeader::V6 { src, dst });
        let mut ext = Vec::new();
        for (i, header) in self.ipv6_ext.iter().enumerate() {
            let next = self.ipv6_ext.get(i + 1).map_or(protocol, |h| h.protocol());
            header.emit(next, &mut ext);
        }
        let first = self.ipv6_ext.first().map_or(protocol, |h| h.protocol());
        let payload_len = (ext.len() + upper.len()) as u16;
        let mut out = Vec::with_capacity(40 + usize::from(payload_len));
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.push(first);
        out.push(self.ttl);
        out.extend_from_slice(&src.octets());
        out.extend_from_slice(&dst.octets());
        out.extend_from_slice(&ext);
        out.extend_from_slice(&upper);
        out
    }

    /// Upper-layer protocol number and bytes, checksummed.
    fn upper(&self, pseudo: &PseudoHeader) -> (u8, Vec<u8>) {
        let is_v6 = matches!(pseudo, PseudoHeader::V6 { .. });
        let (protocol, checksum_at, mut out) = match &self.body {
            Body::Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                options,
            } => {
                let header_len = 20 + padded_len(options);
                let mut out = Vec::with_capacity(header_len + self.payload.len());
                out.extend_from_slice(&src_port.to_be_bytes());
                out.extend_from_slice(&dst_port.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&ack.to_be_bytes());
                out.push(((header_len / 4) as u8) << 4);
                out.push(*flags);
                out.extend_from_slice(&65535u16.to_be_bytes());
                out.extend_from_slice(&[0, 0, 0, 0]);
                out.extend_from_slice(options);
                out.resize(header_len, 0);
                (PROTO_TCP, Some(16), out)
            }
            Body::Udp { src_port, dst_port } => {
                let mut out = Vec::with_capacity(8 + self.payload.len());
                out.extend_from_slice(&src_port.to_be_bytes());
                out.extend_from_slice(&dst_port.to_be_bytes());
                out.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                (PROTO_UDP, Some(6), out)
            }
            Body::Icmp { kind, code } => {
                let out = vec![*kind, *code, 0, 0, 0, 0, 0, 0];
                let protocol = if is_v6 { PROTO_ICMPV6 } else { PROTO_ICMP };
                (protocol, Some(2), out)
            }
            Body::Other { protocol } => (*protocol, None, Vec::new()),
        };
        out.extend_from_slice(&self.payload);
        if let Some(at) = checksum_at {
            // ICMPv4 has no pseudo-header; the rest do.
            let initial = if protocol == PROTO_ICMP {
                0
            } else {
                pseudo.sum(protocol, out.len())
            };
            let mut checksum = !fold(sum(&out, initial));
            if protocol == PROTO_UDP && checksum == 0 {
                checksum = 0xffff;
            }
            out[at..at + 2].copy_from_slice(&checksum.to_be_bytes());
        }
        (protocol, out)
    }
}

fn to_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Options length rounded up to 4 bytes, capped at 40 (IHL/offset max 15).
fn padded_len(options: &[u8]) -> usize {
    options.len().div_ceil(4).min(10) * 4
}

enum PseudoHeader {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl PseudoHeader {
    fn sum(&self, protocol: u8, len: usize) -> u32 {
        let mut bytes = Vec::with_capacity(40);
        match self {
            PseudoHeader::V4 { src, dst } => {
                bytes.extend_from_slice(&src.octets());
                bytes.extend_from_slice(&dst.octets());
            }
            PseudoHeader::V6 { src, dst } => {
                bytes.extend_from_slice(&src.octets());
                bytes.extend_from_slice(&dst.octets());
            }
        }
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, protocol]);
        sum(&bytes, 0)
    }
}

/// One's-complement sum of 16-bit words (odd byte padded with zero).
fn sum(bytes: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    for pair in bytes.chunks(2) {
        let word = match pair {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        acc += u64::from(word);
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// A classic little-endian pcap file (microsecond timestamps) built in
/// memory: what integration tests feed `podpath analyze` when no recorded
/// capture has the case they need.
pub struct PcapWriter {
    bytes: Vec<u8>,
}

impl PcapWriter {
    /// The file header for `linktype` (the pcap number: 1 Ethernet, 113 SLL, …).
    pub fn new(linktype: u32, snaplen: u32) -> PcapWriter {
        let mut bytes = Vec::with_capacity(1 << 16);
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&snaplen.to_le_bytes());
        bytes.extend_from_slice(&linktype.to_le_bytes());
        PcapWriter { bytes }
    }

    /// One record, whole, at `micros` since the epoch.
    pub fn record(&mut self, micros: u64, frame: &[u8]) {
        let len = (frame.len() as u32).to_le_bytes();
        self.bytes
            .extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        self.bytes.extend_from_slice(&len);
        self.bytes.extend_from_slice(&len);
        self.bytes.extend_from_slice(frame);
    }

    /// The file so far.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}
