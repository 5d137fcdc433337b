//! The classic BPF program attached to every capture socket.
//!
//! The kernel runs it on each frame before copying anything; its return
//! value is the number of bytes to keep (0 drops the frame). Frames on an
//! AF_PACKET `SOCK_RAW` socket start with the Ethernet header, also on `lo`
//! (a zeroed 14-byte header), so the offsets below are the same everywhere:
//!
//! ```text
//!        [loopback only]
//!        ld   #type                 A = pkt_type (SKF_AD_OFF + SKF_AD_PKTTYPE)
//!        jeq  #4, drop              PACKET_OUTGOING: lo shows every packet twice,
//!                                   keep only the incoming (PACKET_HOST) copy
//!        ldh  [12]                  EtherType
//!        jeq  #0x0800, ipv4
//!        jeq  #0x86dd, ipv6
//!        jeq  #0x8100, trunc        VLAN tag left in the frame: userspace decodes it
//!        jeq  #0x88a8, trunc, drop  everything else (ARP, LLDP, ...) is dropped
//! ipv4:  ldh  [20]                  flags + fragment offset
//!        jset #0x1fff, whole        a later fragment has no ports; it may be DNS
//!        ldxb 4*([14]&0xf)          X = IPv4 header length
//!        ldb  [23]                  protocol
//!        jeq  #6, tcp
//!        jeq  #17, udp
//!        jeq  #1, icmp4, drop
//! icmp4: ldb  [x+14]                ICMP type: 3 unreachable, 4 source quench,
//!        jeq  #3, icmp              11 time exceeded, 12 parameter problem
//!        jeq  #4, icmp
//!        jeq  #11, icmp
//!        jeq  #12, icmp, drop       echo and the rest are dropped
//! ipv6:  ldx  #40                   X = fixed IPv6 header length
//!        ldb  [20]                  next header
//!        jeq  #6, tcp
//!        jeq  #17, udp
//!        jeq  #58, icmp6
//!        jeq  #44, whole            fragment header: may be DNS, keep it all
//!        jeq  #0, hbh               hop-by-hop, routing, destination options,
//!        jeq  #43, trunc            AH: the filter does not walk extension
//!        jeq  #60, trunc            headers, userspace does
//!        jeq  #51, trunc, drop
//! hbh:   ldb  [54]                  next header after hop-by-hop: ICMPv6 there
//!        jeq  #58, drop, trunc      is MLD (router alert), sent on every link
//! icmp6: ldb  [54]                  ICMPv6 type; < 128 is an error message
//!        jge  #128, drop, icmp      (NDP, echo, MLD are >= 128)
//! tcp:   ldh  [x+14]                source port
//!        jeq  #53, whole
//!        ldh  [x+16]                destination port
//!        jeq  #53, whole, tcpsnap   (pure ACKs dropped: jeq #53, whole; see below)
//! udp:   ldh  [x+14]
//!        jeq  #53, whole            (with an own DNS client: jeq #53, ownans)
//!        [jeq #P, ownq]             own DNS client's port P (see below)
//!        ldh  [x+16]
//!        jeq  #53, whole, udpsnap
//! whole:   ret #0xffffffff          DNS (and fragments): the whole frame
//! tcpsnap: ret #tcp_snap            14 + 60 + 60 + tcp_payload
//! trunc:   ret #tcp_snap
//! udpsnap: ret #82                  14 + 60 + 8: headers only
//! icmp:    ret #202                 14 + 60 + 8 + 60 + 60: the quoted header too
//! drop:    ret #0
//! ```
//!
//! A load past the end of a short frame ends the program with 0, so
//! malformed frames are dropped by the kernel.
//!
//! With [`FilterSpec::drop_pure_acks`], a TCP segment (not to or from port
//! 53) without SYN, FIN or RST and without payload is dropped: podpath reads
//! nothing in it (connections count at the SYN, connect latency ends at the
//! SYN-ACK, failures are RSTs and SYN timeouts, bytes and HTTP/TLS/HTTP/2 are
//! payload). The payload length comes from the IP header, not the captured
//! bytes (a segment whose payload the snap length cut is not empty):
//!
//! ```text
//!        ldb  [x+27]                TCP flags
//!        jset #0x07, tcpsnap        SYN, RST or FIN
//!        ldb  [x+26]                data offset, high nibble
//!        and  #0xf0
//!        rsh  #2                    A = TCP header length
//!        jge  #20, N, tcpsnap       shorter is malformed: userspace counts it
//!        st   M[0]
//!        ldh  [12]
//!        jeq  #0x0800, N, tcp6
//!        ldh  [16]                  IPv4 total length
//!        sub  x                     less the IPv4 header
//!        ldx  M[0]
//!        sub  x                     less the TCP header
//!        jeq  #0, drop, tcpsnap
//! tcp6:  ldh  [18]                  IPv6 payload length (no extension header
//!        ldx  M[0]                  on this path: those go to trunc)
//!        sub  x
//!        jeq  #0, drop, tcpsnap
//! ```
//!
//! A length field smaller than the headers wraps to a large value, so the
//! segment is kept: IPv4 BIG TCP frames (total length 0) and malformed ones
//! reach userspace as before.
//!
//! With [`FilterSpec::own_dns`] (podpath's own DNS client socket: local port
//! P, server S:53) its queries and answers are dropped in the kernel, by the
//! exact tuple; anything else about port 53 stays whole:
//!
//! ```text
//! ownq:   ldh [x+16]; jeq #53, qaddr, udpsnap       P -> 53
//! qaddr:  ldh [12]; jeq #family, N, whole
//!         ld  [dst address word i] ; jeq #S[i], N, whole   (1 word v4, 4 v6)
//!         ... the last: jeq #S[last], drop, whole
//! ownans: ldh [x+16]; jeq #P, aaddr, whole          53 -> P
//! aaddr:  as qaddr, with the source address
//! ```

use std::net::{IpAddr, SocketAddr};

/// One cBPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcode parts from <linux/filter.h>.
const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ST: u16 = 0x02;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_IMM: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_MEM: u16 = 0x60;
const BPF_MSH: u16 = 0xa0;
const BPF_SUB: u16 = 0x10;
const BPF_AND: u16 = 0x50;
const BPF_RSH: u16 = 0x70;
const BPF_JEQ: u16 = 0x10;
const BPF_JGE: u16 = 0x30;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;
const BPF_X: u16 = 0x08;

/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: the ancillary load of `skb->pkt_type`.
const SKF_AD_PKTTYPE_OFF: u32 = (-0x1000i32 + 4) as u32;
const PACKET_OUTGOING: u32 = 4;

const ETH_HLEN: u32 = 14;
/// Largest IPv4 header (IHL 15); also covers the 40-byte IPv6 header.
const MAX_IP_HLEN: u32 = 60;
const MAX_TCP_HLEN: u32 = 60;
const UDP_HLEN: u32 = 8;
const ICMP_HLEN: u32 = 8;

/// Bytes kept of a non-DNS UDP frame: headers only.
pub const UDP_SNAP: u32 = ETH_HLEN + MAX_IP_HLEN + UDP_HLEN;
/// Bytes kept of an ICMP/ICMPv6 error: outer headers plus the quoted
/// original IP header and the start of its transport header.
pub const ICMP_SNAP: u32 = ETH_HLEN + MAX_IP_HLEN + ICMP_HLEN + MAX_IP_HLEN + MAX_TCP_HLEN;
/// Return value for frames kept whole.
pub const WHOLE: u32 = u32::MAX;
/// Default TCP payload kept past the headers: an HTTP/1 request or status
/// line with its usual headers, or the start of a TLS ClientHello.
pub const DEFAULT_TCP_PAYLOAD: u32 = 1024;

/// What to build a filter for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterSpec {
    /// The socket is bound to a loopback interface: drop the outgoing copy.
    pub loopback: bool,
    /// TCP payload bytes kept past the largest possible IP and TCP headers.
    pub tcp_payload: u32,
    /// A UDP DNS client of the capturing process: (its local port, the
    /// server's address with port 53). Its datagrams both ways are dropped.
    pub own_dns: Option<(u16, SocketAddr)>,
    /// Drop TCP segments without SYN, FIN, RST or payload (pure ACKs,
    /// window updates, keepalive probes), except DNS's.
    pub drop_pure_acks: bool,
}

impl FilterSpec {
    /// Bytes kept of a non-DNS TCP segment (and of frames the filter cannot
    /// classify but passes on).
    pub fn tcp_snap(&self) -> u32 {
        (ETH_HLEN + MAX_IP_HLEN + MAX_TCP_HLEN).saturating_add(self.tcp_payload)
    }
}

impl Default for FilterSpec {
    fn default() -> Self {
        FilterSpec {
            loopback: false,
            tcp_payload: DEFAULT_TCP_PAYLOAD,
            own_dns: None,
            drop_pure_acks: true,
        }
    }
}

/// Builds the program documented in the module header.
pub fn capture_filter(spec: &FilterSpec) -> Vec<Instruction> {
    use Target::{Label as L, Next as N};
    let mut a = Asm::default();
    if spec.loopback {
        a.stmt(BPF_LD | BPF_W | BPF_ABS, SKF_AD_PKTTYPE_OFF);
        a.jump(BPF_JEQ, PACKET_OUTGOING, L("drop"), N);
    }
    a.stmt(BPF_LD | BPF_H | BPF_ABS, 12);
    a.jump(BPF_JEQ, 0x0800, L("ipv4"), N);
    a.jump(BPF_JEQ, 0x86dd, L("ipv6"), N);
    a.jump(BPF_JEQ, 0x8100, L("trunc"), N);
    a.jump(BPF_JEQ, 0x88a8, L("trunc"), L("drop"));

    a.label("ipv4");
    a.stmt(BPF_LD | BPF_H | BPF_ABS, 20);
    a.jump(BPF_JSET, 0x1fff, L("whole"), N);
    a.stmt(BPF_LDX | BPF_B | BPF_MSH, ETH_HLEN);
    a.stmt(BPF_LD | BPF_B | BPF_ABS, 23);
    a.jump(BPF_JEQ, 6, L("tcp"), N);
    a.jump(BPF_JEQ, 17, L("udp"), N);
    a.jump(BPF_JEQ, 1, N, L("drop"));
    a.stmt(BPF_LD | BPF_B | BPF_IND, ETH_HLEN);
    a.jump(BPF_JEQ, 3, L("icmp"), N);
    a.jump(BPF_JEQ, 4, L("icmp"), N);
    a.jump(BPF_JEQ, 11, L("icmp"), N);
    a.jump(BPF_JEQ, 12, L("icmp"), L("drop"));

    a.label("ipv6");
    a.stmt(BPF_LDX | BPF_W | BPF_IMM, 40);
    a.stmt(BPF_LD | BPF_B | BPF_ABS, 20);
    a.jump(BPF_JEQ, 6, L("tcp"), N);
    a.jump(BPF_JEQ, 17, L("udp"), N);
    a.jump(BPF_JEQ, 58, L("icmp6"), N);
    a.jump(BPF_JEQ, 44, L("whole"), N);
    a.jump(BPF_JEQ, 0, L("hbh"), N);
    a.jump(BPF_JEQ, 43, L("trunc"), N);
    a.jump(BPF_JEQ, 60, L("trunc"), N);
    a.jump(BPF_JEQ, 51, L("trunc"), L("drop"));
    a.label("hbh");
    a.stmt(BPF_LD | BPF_B | BPF_ABS, ETH_HLEN + 40);
    a.jump(BPF_JEQ, 58, L("drop"), L("trunc"));
    a.label("icmp6");
    a.stmt(BPF_LD | BPF_B | BPF_ABS, ETH_HLEN + 40);
    a.jump(BPF_JGE, 128, L("drop"), L("icmp"));

    a.label("tcp");
    a.stmt(BPF_LD | BPF_H | BPF_IND, ETH_HLEN);
    a.jump(BPF_JEQ, 53, L("whole"), N);
    a.stmt(BPF_LD | BPF_H | BPF_IND, ETH_HLEN + 2);
    if spec.drop_pure_acks {
        a.jump(BPF_JEQ, 53, L("whole"), N);
        a.stmt(BPF_LD | BPF_B | BPF_IND, ETH_HLEN + 13);
        a.jump(BPF_JSET, 0x07, L("tcpsnap"), N);
        a.stmt(BPF_LD | BPF_B | BPF_IND, ETH_HLEN + 12);
        a.stmt(BPF_ALU | BPF_AND | BPF_K, 0xf0);
        a.stmt(BPF_ALU | BPF_RSH | BPF_K, 2);
        a.jump(BPF_JGE, 20, N, L("tcpsnap"));
        a.stmt(BPF_ST, 0);
        a.stmt(BPF_LD | BPF_H | BPF_ABS, 12);
        a.jump(BPF_JEQ, 0x0800, N, L("tcp6"));
        a.stmt(BPF_LD | BPF_H | BPF_ABS, ETH_HLEN + 2);
        a.stmt(BPF_ALU | BPF_SUB | BPF_X, 0);
        a.stmt(BPF_LDX | BPF_W | BPF_MEM, 0);
        a.stmt(BPF_ALU | BPF_SUB | BPF_X, 0);
        a.jump(BPF_JEQ, 0, L("drop"), L("tcpsnap"));
        a.label("tcp6");
        a.stmt(BPF_LD | BPF_H | BPF_ABS, ETH_HLEN + 4);
        a.stmt(BPF_LDX | BPF_W | BPF_MEM, 0);
        a.stmt(BPF_ALU | BPF_SUB | BPF_X, 0);
        a.jump(BPF_JEQ, 0, L("drop"), L("tcpsnap"));
    } else {
        a.jump(BPF_JEQ, 53, L("whole"), L("tcpsnap"));
    }
    a.label("udp");
    a.stmt(BPF_LD | BPF_H | BPF_IND, ETH_HLEN);
    match spec.own_dns {
        None => a.jump(BPF_JEQ, 53, L("whole"), N),
        Some((port, _)) => {
            a.jump(BPF_JEQ, 53, L("ownans"), N);
            a.jump(BPF_JEQ, u32::from(port), L("ownq"), N);
        }
    }
    a.stmt(BPF_LD | BPF_H | BPF_IND, ETH_HLEN + 2);
    a.jump(BPF_JEQ, 53, L("whole"), L("udpsnap"));
    if let Some((port, server)) = spec.own_dns {
        a.label("ownq");
        a.stmt(BPF_LD | BPF_H | BPF_IND, ETH_HLEN + 2);
        a.jump(BPF_JEQ, u32::from(server.port()), N, L("udpsnap"));
        match_address(&mut a, server.ip(), false);
        a.label("ownans");
        a.stmt(BPF_LD | BPF_H | BPF_IND, ETH_HLEN + 2);
        a.jump(BPF_JEQ, u32::from(port), N, L("whole"));
        match_address(&mut a, server.ip(), true);
    }

    a.label("whole");
    a.stmt(BPF_RET | BPF_K, WHOLE);
    a.label("tcpsnap");
    a.stmt(BPF_RET | BPF_K, spec.tcp_snap());
    a.label("trunc");
    a.stmt(BPF_RET | BPF_K, spec.tcp_snap());
    a.label("udpsnap");
    a.stmt(BPF_RET | BPF_K, UDP_SNAP);
    a.label("icmp");
    a.stmt(BPF_RET | BPF_K, ICMP_SNAP);
    a.label("drop");
    a.stmt(BPF_RET | BPF_K, 0);
    a.finish()
}

/// Drops the frame if its source (`source`) or destination address is
/// `addr`, else keeps it whole (it is DNS). Checks the EtherType first: the
/// address offsets differ by family.
fn match_address(a: &mut Asm, addr: IpAddr, source: bool) {
    use Target::{Label as L, Next as N};
    let (ethertype, offset, words): (u32, u32, Vec<u32>) = match addr {
        IpAddr::V4(v4) => (0x0800, if source { 26 } else { 30 }, vec![u32::from(v4)]),
        IpAddr::V6(v6) => (
            0x86dd,
            if source { 22 } else { 38 },
            v6.octets()
                .chunks_exact(4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .collect(),
        ),
    };
    a.stmt(BPF_LD | BPF_H | BPF_ABS, 12);
    a.jump(BPF_JEQ, ethertype, N, L("whole"));
    let last = words.len() - 1;
    for (i, w) in words.into_iter().enumerate() {
        a.stmt(BPF_LD | BPF_W | BPF_ABS, offset + 4 * i as u32);
        if i == last {
            a.jump(BPF_JEQ, w, L("drop"), L("whole"));
        } else {
            a.jump(BPF_JEQ, w, N, L("whole"));
        }
    }
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Label(&'static str),
}

/// A forward-only assembler: jumps name labels, resolved in `finish`.
#[derive(Default)]
struct Asm {
    code: Vec<(u16, u32, Target, Target)>,
    labels: Vec<(&'static str, usize)>,
}

impl Asm {
    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push((code, k, Target::Next, Target::Next));
    }

    fn jump(&mut self, op: u16, k: u32, jt: Target, jf: Target) {
        self.code.push((BPF_JMP | op | BPF_K, k, jt, jf));
    }

    fn label(&mut self, name: &'static str) {
        self.labels.push((name, self.code.len()));
    }

    /// Resolves labels to relative offsets. The program is a constant built
    /// by this module, so a missing label or a backward or too-long jump is
    /// a bug here, caught by the tests, not a runtime condition.
    fn finish(self) -> Vec<Instruction> {
        let offset = |at: usize, target: Target| -> u8 {
            match target {
                Target::Next => 0,
                Target::Label(name) => {
                    let to = self
                        .labels
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, pos)| *pos)
                        .unwrap_or(usize::MAX);
                    to.checked_sub(at + 1)
                        .and_then(|d| u8::try_from(d).ok())
                        .unwrap_or_else(|| panic!("cBPF label {name} unreachable from {at}"))
                }
            }
        };
        self.code
            .iter()
            .enumerate()
            .map(|(at, &(code, k, jt, jf))| Instruction {
                code,
                jt: offset(at, jt),
                jf: offset(at, jf),
                k,
            })
            .collect()
    }
}

/// A cBPF interpreter for the instructions this module emits, so tests can
/// check the program's verdicts on synthetic frames without a kernel.
#[cfg(test)]
pub(crate) fn run(prog: &[Instruction], frame: &[u8], pkttype: u32) -> u32 {
    let load = |off: u32, size: usize| -> Option<u32> {
        if off == SKF_AD_PKTTYPE_OFF {
            return Some(pkttype);
        }
        let start = off as usize;
        let bytes = frame.get(start..start.checked_add(size)?)?;
        Some(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
    };
    let size = |code: u16| match code & 0x18 {
        BPF_H => 2,
        BPF_B => 1,
        _ => 4,
    };
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let mut mem = [0u32; 16];
    while let Some(ins) = prog.get(pc) {
        pc += 1;
        match ins.code & 0x07 {
            BPF_ST => mem[ins.k as usize] = a,
            BPF_ALU => {
                let operand = if ins.code & BPF_X != 0 { x } else { ins.k };
                a = match ins.code & 0xf0 {
                    BPF_SUB => a.wrapping_sub(operand),
                    BPF_AND => a & operand,
                    BPF_RSH => a >> operand,
                    other => panic!("unsupported alu op {other:#x}"),
                };
            }
            BPF_LD => {
                let off = match ins.code & 0xe0 {
                    BPF_ABS => ins.k,
                    BPF_IND => x.wrapping_add(ins.k),
                    other => panic!("unsupported ld mode {other:#x}"),
                };
                match load(off, size(ins.code)) {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            BPF_LDX => match ins.code & 0xe0 {
                BPF_IMM => x = ins.k,
                BPF_MEM => x = mem[ins.k as usize],
                BPF_MSH => match load(ins.k, 1) {
                    Some(v) => x = (v & 0xf) * 4,
                    None => return 0,
                },
                other => panic!("unsupported ldx mode {other:#x}"),
            },
            BPF_JMP => {
                let taken = match ins.code & 0xf0 {
                    BPF_JEQ => a == ins.k,
                    BPF_JGE => a >= ins.k,
                    BPF_JSET => a & ins.k != 0,
                    other => panic!("unsupported jump {other:#x}"),
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            BPF_RET => return ins.k,
            other => panic!("unsupported class {other:#x}"),
        }
    }
    panic!("program fell off the end")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: u32 = 0;

    fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn ipv4(proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let total = (20 + l4.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(l4);
        eth(0x0800, &h)
    }

    fn ipv4_with_options(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![
            0x46, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        h.extend_from_slice(&[1, 1, 1, 0]);
        let total = (24 + l4.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(l4);
        eth(0x0800, &h)
    }

    fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        h[4..6].copy_from_slice(&(rest.len() as u16).to_be_bytes());
        h.extend_from_slice(&[0; 32]);
        h.extend_from_slice(rest);
        eth(0x86dd, &h)
    }

    fn ports(src: u16, dst: u16, len: usize) -> Vec<u8> {
        let mut l4 = vec![0u8; len];
        l4[0..2].copy_from_slice(&src.to_be_bytes());
        l4[2..4].copy_from_slice(&dst.to_be_bytes());
        l4
    }

    /// A TCP header of `doff` 32-bit words with `flags`, then `payload`
    /// bytes.
    fn tcp(src: u16, dst: u16, flags: u8, doff: u8, payload: usize) -> Vec<u8> {
        let mut l4 = ports(src, dst, usize::from(doff) * 4 + payload);
        l4[12] = doff << 4;
        l4[13] = flags;
        l4
    }

    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const PSH: u8 = 0x08;
    const ACK: u8 = 0x10;
    const ECE: u8 = 0x40;

    fn verdict(spec: FilterSpec, frame: &[u8], pkttype: u32) -> u32 {
        run(&capture_filter(&spec), frame, pkttype)
    }

    #[test]
    fn dns_is_kept_whole_in_both_directions_and_families() {
        let spec = FilterSpec::default();
        for (src, dst) in [(40000, 53), (53, 40000)] {
            assert_eq!(
                verdict(spec, &ipv4(17, 0, &ports(src, dst, 600)), HOST),
                WHOLE
            );
            assert_eq!(
                verdict(spec, &ipv4(6, 0, &ports(src, dst, 600)), HOST),
                WHOLE
            );
            assert_eq!(verdict(spec, &ipv6(17, &ports(src, dst, 600)), HOST), WHOLE);
            assert_eq!(verdict(spec, &ipv6(6, &ports(src, dst, 600)), HOST), WHOLE);
        }
        assert_eq!(
            verdict(spec, &ipv4_with_options(17, &ports(1, 53, 40)), HOST),
            WHOLE
        );
    }

    #[test]
    fn other_tcp_is_cut_to_headers_and_payload_and_udp_to_headers() {
        let spec = FilterSpec::default();
        assert_eq!(
            verdict(spec, &ipv4(6, 0, &ports(40000, 80, 1480)), HOST),
            1158
        );
        assert_eq!(
            verdict(spec, &ipv6(6, &ports(443, 40000, 1480)), HOST),
            1158
        );
        assert_eq!(
            verdict(spec, &ipv4(17, 0, &ports(40000, 443, 1200)), HOST),
            82
        );
        assert_eq!(verdict(spec, &ipv6(17, &ports(40000, 443, 1200)), HOST), 82);
        let wide = FilterSpec {
            tcp_payload: 4096,
            ..spec
        };
        assert_eq!(
            verdict(wide, &ipv4(6, 0, &ports(1, 2, 20)), HOST),
            14 + 120 + 4096
        );
    }

    #[test]
    fn segments_without_syn_fin_rst_or_payload_are_dropped() {
        let spec = FilterSpec::default();
        let snap = spec.tcp_snap();
        for flags in [ACK, ACK | PSH, ACK | ECE, 0] {
            // Plain 20-byte header, and 32 bytes with timestamps.
            for doff in [5, 8] {
                let seg = tcp(40000, 80, flags, doff, 0);
                assert_eq!(verdict(spec, &ipv4(6, 0, &seg), HOST), 0, "{flags:#x}");
                assert_eq!(verdict(spec, &ipv6(6, &seg), HOST), 0, "{flags:#x}");
                assert_eq!(verdict(spec, &ipv4_with_options(6, &seg), HOST), 0);
            }
        }
        // Anything with a handshake or close flag, or a byte of payload, is read.
        for (flags, payload) in [
            (SYN, 0),
            (SYN | ACK, 0),
            (FIN | ACK, 0),
            (RST, 0),
            (RST | ACK, 0),
            (ACK, 1),
            (ACK | PSH, 1400),
        ] {
            let seg = tcp(80, 40000, flags, 8, payload);
            assert_eq!(verdict(spec, &ipv4(6, 0, &seg), HOST), snap, "{flags:#x}");
            assert_eq!(verdict(spec, &ipv6(6, &seg), HOST), snap, "{flags:#x}");
        }
        // DNS over TCP stays whole, pure ACKs included.
        for (src, dst) in [(40000, 53), (53, 40000)] {
            let seg = tcp(src, dst, ACK, 5, 0);
            assert_eq!(verdict(spec, &ipv4(6, 0, &seg), HOST), WHOLE);
            assert_eq!(verdict(spec, &ipv6(6, &seg), HOST), WHOLE);
        }
        // Off: every segment is kept.
        let keep = FilterSpec {
            drop_pure_acks: false,
            ..spec
        };
        let ack = tcp(40000, 80, ACK, 5, 0);
        assert_eq!(verdict(keep, &ipv4(6, 0, &ack), HOST), snap);
        assert_eq!(verdict(keep, &ipv6(6, &ack), HOST), snap);
    }

    #[test]
    fn the_payload_length_comes_from_the_ip_header_not_the_frame() {
        let spec = FilterSpec::default();
        let snap = spec.tcp_snap();
        // A 54-byte pure ACK padded to Ethernet's 60-byte minimum: dropped.
        let mut padded = ipv4(6, 0, &tcp(40000, 80, ACK, 5, 0));
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(verdict(spec, &padded, HOST), 0);
        let mut padded6 = ipv6(6, &tcp(40000, 80, ACK, 5, 0));
        padded6.extend_from_slice(&[0; 6]);
        assert_eq!(verdict(spec, &padded6, HOST), 0);
        // Lengths that do not add up are userspace's to judge (and count):
        // IPv4 BIG TCP's total length 0, a total length shorter than the
        // headers, an IPv6 payload length of 0, a data offset below 5.
        let mut big = ipv4(6, 0, &tcp(40000, 80, ACK, 5, 0));
        big[16..18].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(verdict(spec, &big, HOST), snap);
        let mut short = ipv4(6, 0, &tcp(40000, 80, ACK, 8, 0));
        short[16..18].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(verdict(spec, &short, HOST), snap);
        let mut jumbo = ipv6(6, &tcp(40000, 80, ACK, 5, 0));
        jumbo[18..20].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(verdict(spec, &jumbo, HOST), snap);
        for doff in [0, 4] {
            let seg = tcp(40000, 80, ACK, doff, 20 - usize::from(doff) * 4);
            assert_eq!(verdict(spec, &ipv4(6, 0, &seg), HOST), snap, "{doff}");
        }
        // A frame cut before the TCP flags cannot be judged: dropped, as
        // every frame too short for a load is.
        let cut = ipv4(6, 0, &tcp(40000, 80, ACK, 5, 0));
        assert_eq!(verdict(spec, &cut[..14 + 20 + 13], HOST), 0);
    }

    #[test]
    fn ip_fragments_past_the_first_are_kept_whole() {
        let spec = FilterSpec::default();
        // Offset 185 * 8: no transport header in this frame.
        assert_eq!(verdict(spec, &ipv4(17, 185, &[0xab; 1480]), HOST), WHOLE);
        // First fragment (MF set, offset 0) of a non-DNS datagram: headers only.
        assert_eq!(
            verdict(spec, &ipv4(17, 0x2000, &ports(1, 2, 1480)), HOST),
            82
        );
        assert_eq!(
            verdict(spec, &ipv4(17, 0x2000, &ports(1, 53, 1480)), HOST),
            WHOLE
        );
        assert_eq!(
            verdict(spec, &ipv6(44, &[17, 0, 0, 0, 0, 0, 0, 1]), HOST),
            WHOLE
        );
    }

    #[test]
    fn icmp_errors_pass_and_the_rest_is_dropped() {
        let spec = FilterSpec::default();
        for t in [3u8, 4, 11, 12] {
            assert_eq!(
                verdict(spec, &ipv4(1, 0, &[t, 0, 0, 0, 0, 0, 0, 0]), HOST),
                ICMP_SNAP
            );
        }
        assert_eq!(
            verdict(spec, &ipv4(1, 0, &[8, 0, 0, 0, 0, 0, 0, 0]), HOST),
            0
        );
        for t in [1u8, 2, 3, 4] {
            assert_eq!(
                verdict(spec, &ipv6(58, &[t, 0, 0, 0, 0, 0, 0, 0]), HOST),
                ICMP_SNAP
            );
        }
        for t in [128u8, 135, 136, 143] {
            assert_eq!(verdict(spec, &ipv6(58, &[t, 0, 0, 0, 0, 0, 0, 0]), HOST), 0);
        }
        let arp = eth(0x0806, &[0; 28]);
        assert_eq!(verdict(spec, &arp, HOST), 0);
        assert_eq!(verdict(spec, &ipv4(47, 0, &[0; 40]), HOST), 0);
    }

    #[test]
    fn ipv6_extension_headers_go_to_userspace_truncated() {
        let spec = FilterSpec::default();
        for next in [0u8, 43, 60, 51] {
            assert_eq!(
                verdict(spec, &ipv6(next, &[6, 0, 0, 0, 0, 0, 0, 0]), HOST),
                1158
            );
        }
        assert_eq!(verdict(spec, &eth(0x8100, &[0; 60]), HOST), 1158);
    }

    #[test]
    fn loopback_drops_only_the_outgoing_copy() {
        let lo = FilterSpec {
            loopback: true,
            ..FilterSpec::default()
        };
        let frame = ipv4(17, 0, &ports(40000, 53, 100));
        assert_eq!(verdict(lo, &frame, PACKET_OUTGOING), 0);
        assert_eq!(verdict(lo, &frame, HOST), WHOLE);
        // On other interfaces the outgoing direction is the app's own traffic.
        assert_eq!(
            verdict(FilterSpec::default(), &frame, PACKET_OUTGOING),
            WHOLE
        );
    }

    #[test]
    fn short_frames_are_dropped() {
        let spec = FilterSpec::default();
        let frame = ipv4(6, 0, &ports(1, 2, 20));
        for cut in [0, 10, 13, 20, 30, 35] {
            assert_eq!(
                verdict(spec, frame.get(..cut).unwrap_or(&[]), HOST),
                0,
                "cut {cut}"
            );
        }
    }

    /// Rewrites the addresses of a frame built by `ipv4` or `ipv6`.
    fn addresses(mut frame: Vec<u8>, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                frame[26..30].copy_from_slice(&s.octets());
                frame[30..34].copy_from_slice(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                frame[22..38].copy_from_slice(&s.octets());
                frame[38..54].copy_from_slice(&d.octets());
            }
            _ => panic!("mixed families"),
        }
        frame
    }

    #[test]
    fn own_dns_client_traffic_is_dropped_by_its_exact_tuple() {
        for (pod, server, other) in [
            ("10.244.1.20", "10.96.0.10", "10.96.0.11"),
            ("fd00::20", "fd00:10:96::a", "fd00:10:96::b"),
        ] {
            let ip = |s: &str| s.parse::<IpAddr>().unwrap();
            let spec = FilterSpec {
                own_dns: Some((45353, SocketAddr::new(ip(server), 53))),
                ..FilterSpec::default()
            };
            let udp = |src: &str, sport, dst: &str, dport| {
                let l4 = ports(sport, dport, 60);
                let frame = if ip(src).is_ipv4() {
                    ipv4(17, 0, &l4)
                } else {
                    ipv6(17, &l4)
                };
                verdict(spec, &addresses(frame, ip(src), ip(dst)), HOST)
            };
            // Our query and its answer: dropped.
            assert_eq!(udp(pod, 45353, server, 53), 0, "{server}");
            assert_eq!(udp(server, 53, pod, 45353), 0, "{server}");
            // The app's DNS, and our port towards another server: whole.
            assert_eq!(udp(pod, 40000, server, 53), WHOLE);
            assert_eq!(udp(server, 53, pod, 40000), WHOLE);
            assert_eq!(udp(pod, 45353, other, 53), WHOLE);
            assert_eq!(udp(other, 53, pod, 45353), WHOLE);
            // A peer whose port happens to be ours, not DNS: headers as usual.
            assert_eq!(udp(other, 45353, pod, 8125), UDP_SNAP);
            assert_eq!(udp(pod, 8125, other, 45353), UDP_SNAP);
        }
        // The other family with the same ports is not ours.
        let spec = FilterSpec {
            own_dns: Some((45353, "10.96.0.10:53".parse().unwrap())),
            ..FilterSpec::default()
        };
        assert_eq!(verdict(spec, &ipv6(17, &ports(45353, 53, 60)), HOST), WHOLE);
        assert_eq!(verdict(spec, &ipv6(17, &ports(53, 45353, 60)), HOST), WHOLE);
        // TCP DNS is untouched.
        assert_eq!(
            verdict(spec, &ipv4(6, 0, &ports(45353, 53, 60)), HOST),
            WHOLE
        );
    }

    #[test]
    fn every_label_resolves_within_jump_range() {
        for (loopback, own_dns, drop_pure_acks) in [
            (false, None, true),
            (true, None, false),
            (true, Some((1, "10.0.0.1:53".parse().unwrap())), true),
            (false, Some((1, "[fd00::1]:53".parse().unwrap())), false),
        ] {
            let prog = capture_filter(&FilterSpec {
                loopback,
                own_dns,
                drop_pure_acks,
                ..FilterSpec::default()
            });
            assert!(prog.len() < 4096, "BPF_MAXINSNS");
            for (at, ins) in prog.iter().enumerate() {
                if ins.code & 0x07 == BPF_JMP {
                    assert!(at + 1 + usize::from(ins.jt.max(ins.jf)) < prog.len());
                }
            }
            assert_eq!(prog.last().map(|i| i.code), Some(BPF_RET | BPF_K));
        }
    }
}
