//! Structure-aware inputs shared by the fuzz targets: frames that are mostly
//! well-formed (so the fuzzer reaches DNS, flows and HTTP) mixed with raw
//! bytes (so it still reaches every decode error path).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::Arbitrary;
use podpath::capture::RawPacket;
use podpath::decode::build::{FrameBuilder, Ipv6Ext};
use podpath::decode::{LinkType, PacketType, TcpFlags, TcpSegment};
use podpath::Timestamp;

/// Every link type the decoder knows, indexed by a fuzzer byte.
pub fn link(b: u8) -> LinkType {
    LinkType::ALL[usize::from(b) % LinkType::ALL.len()]
}

/// A small address pool so that flows, DNS transactions and fragments meet.
pub fn addr(b: u8, v6: bool) -> IpAddr {
    let i = b % 6;
    match (v6, i) {
        (_, 5) if !v6 => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (false, _) => IpAddr::V4(Ipv4Addr::new(10, 0, 0, i + 1)),
        (true, 5) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (true, _) => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i) + 1)),
    }
}

const PORTS: [u16; 6] = [53, 80, 8080, 40000, 40001, 9090];

pub fn port(b: u8) -> u16 {
    PORTS[usize::from(b) % PORTS.len()]
}

/// A DNS message built from a few fuzzer choices.
#[derive(Arbitrary, Debug, Clone)]
pub struct DnsMsg {
    pub id: u8,
    pub response: bool,
    pub rcode: u8,
    pub name: u8,
    pub qtype_aaaa: bool,
    pub answers: Vec<(u8, u8, u32)>,
    /// Garbage appended (trailing bytes, bad counts).
    pub tail: Vec<u8>,
    pub use_pointer: bool,
}

const NAMES: [&[&str]; 6] = [
    &["api"],
    &["api", "default", "svc", "cluster", "local"],
    &["example", "com"],
    &["example", "com", "default", "svc", "cluster", "local"],
    &["db", "prod", "svc", "cluster", "local"],
    &["x"],
];

fn put_name(out: &mut Vec<u8>, labels: &[&str]) {
    for l in labels {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
}

impl DnsMsg {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let flags: u16 = if self.response { 0x8180 } else { 0x0100 } | u16::from(self.rcode & 0x0f);
        let answers = self.answers.len().min(16);
        out.extend_from_slice(&u16::from(self.id % 4).to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&(if self.response { answers as u16 } else { 0 }).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        put_name(&mut out, NAMES[usize::from(self.name) % NAMES.len()]);
        out.extend_from_slice(&(if self.qtype_aaaa { 28u16 } else { 1 }).to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        if self.response {
            for &(kind, target, ttl) in self.answers.iter().take(answers) {
                if self.use_pointer {
                    out.extend_from_slice(&[0xc0, 12]);
                } else {
                    put_name(&mut out, NAMES[usize::from(self.name) % NAMES.len()]);
                }
                match kind % 3 {
                    0 => {
                        out.extend_from_slice(&[0, 1, 0, 1]);
                        out.extend_from_slice(&ttl.to_be_bytes());
                        out.extend_from_slice(&[0, 4, 10, 96, 0, target]);
                    }
                    1 => {
                        out.extend_from_slice(&[0, 28, 0, 1]);
                        out.extend_from_slice(&ttl.to_be_bytes());
                        out.extend_from_slice(&[0, 16, 0xfd, 0, 0, 0, 0, 0, 0, 0]);
                        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, target]);
                    }
                    _ => {
                        out.extend_from_slice(&[0, 5, 0, 1]);
                        out.extend_from_slice(&ttl.to_be_bytes());
                        let mut rdata = Vec::new();
                        put_name(&mut rdata, NAMES[usize::from(target) % NAMES.len()]);
                        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                        out.extend_from_slice(&rdata);
                    }
                }
            }
        }
        out.extend_from_slice(&self.tail);
        out
    }
}

/// Transport payload: a DNS message, an HTTP/1 head, or raw bytes.
#[derive(Arbitrary, Debug, Clone)]
pub enum Payload {
    Dns(DnsMsg),
    /// Length-prefixed (DNS over TCP), possibly with a bogus prefix.
    DnsTcp(DnsMsg, Option<u16>),
    Http {
        request: bool,
        which: u8,
        body: Vec<u8>,
    },
    Raw(Vec<u8>),
}

const REQUESTS: [&[u8]; 4] = [
    b"GET / HTTP/1.1\r\nHost: api\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
    b"HEAD / HTTP/1.1\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\n\r\n",
];
const RESPONSES: [&[u8]; 4] = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 500 Err\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
];

impl Payload {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Dns(m) => m.encode(),
            Payload::DnsTcp(m, prefix) => {
                let body = m.encode();
                let len = prefix.unwrap_or(body.len() as u16);
                let mut out = len.to_be_bytes().to_vec();
                out.extend_from_slice(&body);
                out
            }
            Payload::Http {
                request,
                which,
                body,
            } => {
                let set = if *request { &REQUESTS } else { &RESPONSES };
                let mut out = set[usize::from(*which) % set.len()].to_vec();
                out.extend_from_slice(body);
                out
            }
            Payload::Raw(b) => b.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Ext {
    HopByHop(u8),
    Routing(u8),
    Dest(u8),
    Fragment(u16, bool),
    Ah(u8),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Body {
    Tcp {
        sport: u8,
        dport: u8,
        seq: u32,
        ack: u32,
        flags: u8,
    },
    Udp {
        sport: u8,
        dport: u8,
    },
    IcmpUnreachable {
        sport: u8,
        dport: u8,
    },
    Other(u8),
}

/// A frame built with [`FrameBuilder`], then optionally cut or split into
/// IP fragments.
#[derive(Arbitrary, Debug, Clone)]
pub struct Built {
    pub link: u8,
    pub v6: bool,
    pub src: u8,
    pub dst: u8,
    pub packet_type: u8,
    pub vlan: bool,
    pub body: Body,
    pub payload: Payload,
    pub ext: Vec<Ext>,
    pub ipv4_fragment: Option<(u16, bool)>,
    /// Split the IP packet into fragments of this many 8-byte units.
    pub split: Option<u8>,
    /// Cut the frame to this many bytes (snap length).
    pub snap: Option<u16>,
}

impl Built {
    /// The frames this description produces (several when split).
    pub fn frames(&self) -> (LinkType, Vec<Vec<u8>>) {
        let link = link(self.link);
        let (src, dst) = (addr(self.src, self.v6), addr(self.dst, self.v6));
        let mut b = FrameBuilder::new(src, dst)
            .link(link)
            .packet_type(u16::from(self.packet_type % 6));
        if self.vlan {
            b = b.vlan(podpath::decode::build::TPID_8021Q, 7);
        }
        b = match self.body {
            Body::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
            } => b
                .tcp(port(sport), port(dport))
                .seq(seq % 4096)
                .ack(ack % 4096)
                .flags(
                    flags
                        & (TcpFlags::FIN
                            | TcpFlags::SYN
                            | TcpFlags::RST
                            | TcpFlags::PSH
                            | TcpFlags::ACK),
                ),
            Body::Udp { sport, dport } => b.udp(port(sport), port(dport)),
            Body::IcmpUnreachable { sport, dport } => {
                let original = FrameBuilder::new(dst, src).udp(port(sport), port(dport));
                b.icmp_port_unreachable(&original)
            }
            Body::Other(p) => b.protocol(p),
        };
        for e in self.ext.iter().take(12) {
            b = b.ipv6_ext(match *e {
                Ext::HopByHop(len) => Ipv6Ext::HopByHop { len: len % 4 },
                Ext::Routing(len) => Ipv6Ext::Routing { len: len % 4 },
                Ext::Dest(len) => Ipv6Ext::DestinationOptions { len: len % 4 },
                Ext::Fragment(offset, more) => Ipv6Ext::Fragment {
                    offset: offset % 64,
                    more,
                },
                Ext::Ah(len) => Ipv6Ext::Ah { len: len % 4 },
            });
        }
        if let Some((offset, more)) = self.ipv4_fragment {
            b = b.ipv4_fragment(offset % 64, more);
        }
        b = b.payload(&self.payload.bytes());
        let mut frames = match self.split {
            Some(units) => b.build_fragments(usize::from(units % 16 + 1) * 8),
            None => vec![b.build()],
        };
        if let Some(snap) = self.snap {
            for f in &mut frames {
                f.truncate(usize::from(snap));
            }
        }
        (link, frames)
    }
}

/// One step of an engine run.
#[derive(Arbitrary, Debug, Clone)]
pub enum Frame {
    Raw { link: u8, data: Vec<u8> },
    Built(Built),
}

/// Time steps: mostly small and forward, sometimes backwards or far ahead.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Step {
    Millis(u16),
    Back(u16),
    Jump(u32),
    Same,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Run {
    pub start: u32,
    pub frames: Vec<(Step, Frame)>,
}

impl Run {
    /// Calls `f` with each raw packet, in order.
    pub fn replay(&self, mut f: impl FnMut(&RawPacket<'_>)) {
        let mut ts = Timestamp::from_secs_nanos(u64::from(self.start), 0);
        for (step, frame) in self.frames.iter().take(256) {
            ts = match *step {
                Step::Millis(ms) => Timestamp(ts.0.saturating_add(u64::from(ms) * 1_000_000)),
                Step::Back(ms) => Timestamp(ts.0.saturating_sub(u64::from(ms) * 1_000_000)),
                Step::Jump(s) => Timestamp(ts.0.saturating_add(u64::from(s) * 1_000_000_000)),
                Step::Same => ts,
            };
            let (link, frames) = match frame {
                Frame::Raw { link: l, data } => (link(*l), vec![data.clone()]),
                Frame::Built(b) => b.frames(),
            };
            for data in &frames {
                f(&RawPacket {
                    ts,
                    link,
                    data,
                    orig_len: data.len() as u32,
                    packet_type: None::<PacketType>,
                    interface: 0,
                });
            }
        }
    }
}

/// One TCP segment of a DNS-over-TCP conversation between a fixed client and server.
#[derive(Arbitrary, Debug, Clone)]
pub struct TcpStep {
    pub from_client: bool,
    /// Relative to the direction's initial sequence number.
    pub seq: u16,
    pub flags: u8,
    pub payload: Payload,
    /// Bytes the snap length cut off the end.
    pub cut: u8,
    pub millis: u16,
}

pub const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
pub const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)), 53);

impl TcpStep {
    pub fn segment<'a>(&self, isn: u32, payload: &'a [u8]) -> TcpSegment<'a> {
        let (src_port, dst_port) = if self.from_client {
            (CLIENT.port(), SERVER.port())
        } else {
            (SERVER.port(), CLIENT.port())
        };
        let cut = usize::from(self.cut).min(payload.len());
        TcpSegment {
            src_port,
            dst_port,
            seq: isn.wrapping_add(u32::from(self.seq)),
            ack: 0,
            flags: TcpFlags(self.flags),
            payload: &payload[..payload.len() - cut],
            payload_len: payload.len() as u32,
        }
    }
}
