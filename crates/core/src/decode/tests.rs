//! Decoder tests: frames emitted by [`FrameBuilder`], decoded back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::build::{FrameBuilder, Ipv6Ext, TPID_8021AD, TPID_8021Q};
use super::*;
use crate::defrag::{Decoded, Defrag, Expired};
use crate::Timestamp;

/// One frame through the pipeline's entry point with a fresh reassembly
/// table. A fragment, alone, is held (or dropped as malformed): no packet,
/// reported as [`DecodeError::Fragment`].
fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
    match entry(link, frame, &mut Vec::new()) {
        Decoded::Packet(p) => Ok(p),
        Decoded::Invalid(e) => Err(e),
        Decoded::Held | Decoded::Skipped { .. } => Err(DecodeError::Fragment),
        Decoded::Reassembled(p) => panic!("one frame reassembled: {p:?}"),
    }
}

fn entry<'f, 'b>(link: LinkType, frame: &'f [u8], buf: &'b mut Vec<u8>) -> Decoded<'f, 'b> {
    let mut evicted = Expired::default();
    let decoded = Defrag::new(4, 5.0).decode(Timestamp::ZERO, link, frame, buf, &mut evicted);
    assert_eq!(evicted, Expired::default(), "nothing to evict");
    decoded
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last))
}

#[test]
fn the_list_of_link_types_is_what_pcap_numbers_map_onto() {
    // Every link type once, and each one reachable from a file: the list
    // tests, benches and fuzz iterate is the decoder's own.
    let mut mapped: Vec<LinkType> = (0..=u16::MAX)
        .filter_map(|n| LinkType::from_linktype(u32::from(n)))
        .collect();
    mapped.dedup();
    let mut all = LinkType::ALL.to_vec();
    for list in [&mut mapped, &mut all] {
        list.sort_by_key(|l| format!("{l:?}"));
        list.dedup();
    }
    assert_eq!(all.len(), LinkType::ALL.len(), "listed twice");
    assert_eq!(mapped, all);
}

fn family_links(is_v6: bool) -> impl Iterator<Item = LinkType> {
    LinkType::ALL
        .into_iter()
        .filter(move |l| !matches!((l, is_v6), (LinkType::Ipv4, true) | (LinkType::Ipv6, false)))
}

fn link_header_len(link: LinkType) -> usize {
    match link {
        LinkType::Ethernet => 14,
        LinkType::LinuxSll => 16,
        LinkType::LinuxSll2 => 20,
        LinkType::Null | LinkType::Loop => 4,
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => 0,
    }
}

fn tcp(packet: &Packet<'_>) -> TcpSegment<'static> {
    match packet.transport {
        Transport::Tcp(s) => TcpSegment {
            payload: s.payload.to_vec().leak(),
            ..s
        },
        other => panic!("expected TCP, got {other:?}"),
    }
}

fn udp(packet: &Packet<'_>) -> UdpDatagram<'static> {
    match packet.transport {
        Transport::Udp(d) => UdpDatagram {
            payload: d.payload.to_vec().leak(),
            ..d
        },
        other => panic!("expected UDP, got {other:?}"),
    }
}

#[test]
fn round_trip_every_link_family_and_transport() {
    for (src, dst) in [(v4(1), v4(2)), (v6(1), v6(2))] {
        let is_v6 = src.is_ipv6();
        let ip_header = if is_v6 { 40 } else { 20 };
        for link in family_links(is_v6) {
            let base = FrameBuilder::new(src, dst)
                .link(link)
                .packet_type(4)
                .ifindex(7);
            let expect_pkttype = matches!(link, LinkType::LinuxSll | LinkType::LinuxSll2)
                .then_some(PacketType::Outgoing);
            let expect_ifindex = (link == LinkType::LinuxSll2).then_some(7);

            let frame = base
                .clone()
                .tcp(40000, 80)
                .seq(0xdead_beef)
                .ack(42)
                .flags(TcpFlags::SYN | TcpFlags::ACK)
                .payload(b"GET / HTTP/1.1\r\n")
                .build();
            let packet = decode(link, &frame).unwrap();
            assert_eq!((packet.src, packet.dst), (src, dst), "{link:?}");
            assert_eq!(packet.packet_type, expect_pkttype, "{link:?}");
            assert_eq!(packet.ifindex, expect_ifindex, "{link:?}");
            assert_eq!(packet.ip_len as usize, ip_header + 20 + 16);
            let s = tcp(&packet);
            assert_eq!((s.src_port, s.dst_port), (40000, 80));
            assert_eq!((s.seq, s.ack), (0xdead_beef, 42));
            assert!(s.flags.syn() && s.flags.ack() && !s.flags.fin() && !s.flags.rst());
            assert_eq!(s.payload, b"GET / HTTP/1.1\r\n");
            assert_eq!(s.payload_len, 16);

            let frame = base.clone().udp(5353, 53).payload(b"query").build();
            let packet = decode(link, &frame).unwrap();
            assert_eq!((packet.src, packet.dst), (src, dst), "{link:?}");
            assert_eq!(packet.packet_type, expect_pkttype);
            let d = udp(&packet);
            assert_eq!((d.src_port, d.dst_port), (5353, 53));
            assert_eq!((d.payload, d.payload_len), (&b"query"[..], 5));

            let original = FrameBuilder::new(dst, src).udp(5353, 53).payload(b"q");
            let frame = base.clone().icmp_port_unreachable(&original).build();
            let packet = decode(link, &frame).unwrap();
            assert_eq!(
                packet.transport,
                Transport::IcmpError(IcmpError {
                    kind: IcmpErrorKind::PortUnreachable,
                    original_src: dst,
                    original_dst: src,
                    original_protocol: 17,
                    original_src_port: 5353,
                    original_dst_port: 53,
                }),
                "{link:?}"
            );
        }
    }
}

#[test]
fn family_fixed_by_link_type_must_match() {
    let v6_frame = FrameBuilder::new(v6(1), v6(2))
        .link(LinkType::Ipv4)
        .udp(1, 2)
        .build();
    assert_eq!(
        decode(LinkType::Ipv4, &v6_frame),
        Err(DecodeError::Malformed(Layer::Ipv4))
    );
    let v4_frame = FrameBuilder::new(v4(1), v4(2))
        .link(LinkType::Raw)
        .udp(1, 2)
        .build();
    assert_eq!(
        decode(LinkType::Ipv6, &v4_frame),
        Err(DecodeError::Malformed(Layer::Ipv6))
    );
}

#[test]
fn vlan_single_and_double_tag() {
    for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2] {
        let single = FrameBuilder::new(v4(1), v4(2))
            .link(link)
            .vlan(TPID_8021Q, 100)
            .udp(1000, 53)
            .payload(b"x")
            .build();
        assert_eq!(single.len(), link_header_len(link) + 4 + 20 + 8 + 1);
        assert_eq!(udp(&decode(link, &single).unwrap()).dst_port, 53);

        let double = FrameBuilder::new(v6(1), v6(2))
            .link(link)
            .vlan(TPID_8021AD, 10)
            .vlan(TPID_8021Q, 20)
            .tcp(1000, 443)
            .build();
        let packet = decode(link, &double).unwrap();
        assert_eq!(packet.src, v6(1));
        assert_eq!(tcp(&packet).dst_port, 443);

        let triple = FrameBuilder::new(v4(1), v4(2))
            .link(link)
            .vlan(TPID_8021AD, 10)
            .vlan(TPID_8021Q, 20)
            .vlan(TPID_8021Q, 30)
            .udp(1, 2)
            .build();
        assert_eq!(
            decode(link, &triple),
            Err(DecodeError::Malformed(Layer::Link))
        );
    }
}

#[test]
fn non_ip_frames_are_not_ip() {
    let mut arp = FrameBuilder::new(v4(1), v4(2)).udp(1, 2).build();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(decode(LinkType::Ethernet, &arp), Err(DecodeError::NotIp));

    let mut sll = FrameBuilder::new(v4(1), v4(2))
        .link(LinkType::LinuxSll)
        .udp(1, 2)
        .build();
    sll[14..16].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(decode(LinkType::LinuxSll, &sll), Err(DecodeError::NotIp));

    let mut sll2 = FrameBuilder::new(v4(1), v4(2))
        .link(LinkType::LinuxSll2)
        .udp(1, 2)
        .build();
    sll2[0..2].copy_from_slice(&0x88ccu16.to_be_bytes()); // LLDP
    assert_eq!(decode(LinkType::LinuxSll2, &sll2), Err(DecodeError::NotIp));

    let mut null = FrameBuilder::new(v4(1), v4(2))
        .link(LinkType::Null)
        .udp(1, 2)
        .build();
    null[0..4].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(decode(LinkType::Null, &null), Err(DecodeError::NotIp));

    let mut raw = FrameBuilder::new(v4(1), v4(2)).link(LinkType::Raw).build();
    raw[0] = 0x55;
    assert_eq!(decode(LinkType::Raw, &raw), Err(DecodeError::NotIp));
    assert_eq!(
        decode(LinkType::Raw, &[]),
        Err(DecodeError::Truncated(Layer::Link))
    );
}

#[test]
fn null_accepts_both_byte_orders_and_every_inet6_value() {
    for big_endian in [false, true] {
        let frame = FrameBuilder::new(v4(1), v4(2))
            .link(LinkType::Null)
            .null_big_endian(big_endian)
            .udp(1, 2)
            .build();
        assert_eq!(decode(LinkType::Null, &frame).unwrap().src, v4(1));
    }
    let frame = FrameBuilder::new(v6(1), v6(2))
        .link(LinkType::Null)
        .udp(1, 2)
        .build();
    for af in [24u32, 28, 30] {
        for bytes in [af.to_le_bytes(), af.to_be_bytes()] {
            let mut f = frame.clone();
            f[0..4].copy_from_slice(&bytes);
            assert_eq!(decode(LinkType::Null, &f).unwrap().src, v6(1), "AF {af}");
        }
    }
    // LOOP is network order only.
    let mut looped = frame.clone();
    looped[0..4].copy_from_slice(&30u32.to_le_bytes());
    assert_eq!(decode(LinkType::Loop, &looped), Err(DecodeError::NotIp));
    looped[0..4].copy_from_slice(&30u32.to_be_bytes());
    assert_eq!(decode(LinkType::Loop, &looped).unwrap().dst, v6(2));
}

#[test]
fn ipv4_options_are_skipped() {
    let options = [0x01, 0x01, 0x07, 0x07, 0x04, 0, 0, 0, 0, 0, 0, 0x00];
    let frame = FrameBuilder::new(v4(1), v4(2))
        .ipv4_options(&options)
        .tcp(1234, 80)
        .tcp_options(&[0x02, 0x04, 0x05, 0xb4])
        .payload(b"hello")
        .build();
    assert_eq!(frame[14], 0x48, "IHL 8");
    let packet = decode(LinkType::Ethernet, &frame).unwrap();
    assert_eq!(packet.ip_len, 32 + 24 + 5);
    let s = tcp(&packet);
    assert_eq!((s.src_port, s.dst_port), (1234, 80));
    assert_eq!((s.payload, s.payload_len), (&b"hello"[..], 5));
}

#[test]
fn ipv6_extension_chain_is_followed() {
    let frame = FrameBuilder::new(v6(1), v6(2))
        .link(LinkType::Raw)
        .ipv6_ext(Ipv6Ext::HopByHop { len: 0 })
        .ipv6_ext(Ipv6Ext::DestinationOptions { len: 1 })
        .ipv6_ext(Ipv6Ext::Routing { len: 2 })
        .ipv6_ext(Ipv6Ext::Fragment {
            offset: 0,
            more: false,
        })
        .ipv6_ext(Ipv6Ext::Ah { len: 4 })
        .udp(999, 53)
        .payload(b"abc")
        .build();
    let ext_len = 8 + 16 + 24 + 8 + 24;
    let packet = decode(LinkType::Raw, &frame).unwrap();
    assert_eq!(packet.ip_len as usize, 40 + ext_len + 8 + 3);
    let d = udp(&packet);
    assert_eq!((d.src_port, d.dst_port, d.payload), (999, 53, &b"abc"[..]));
}

#[test]
fn ipv6_extension_chain_limit() {
    let chain = |n: usize| {
        (0..n)
            .fold(
                FrameBuilder::new(v6(1), v6(2)).link(LinkType::Raw),
                |b, _| b.ipv6_ext(Ipv6Ext::DestinationOptions { len: 0 }),
            )
            .tcp(1, 2)
            .build()
    };
    assert_eq!(tcp(&decode(LinkType::Raw, &chain(8)).unwrap()).dst_port, 2);
    assert_eq!(
        decode(LinkType::Raw, &chain(9)),
        Err(DecodeError::ExtensionChain)
    );
}

#[test]
fn ipv6_no_next_header_is_other() {
    let frame = FrameBuilder::new(v6(1), v6(2))
        .ipv6_ext(Ipv6Ext::HopByHop { len: 0 })
        .protocol(59)
        .build();
    let packet = decode(LinkType::Ethernet, &frame).unwrap();
    assert_eq!(packet.transport, Transport::Other { protocol: 59 });
    assert_eq!(packet.ip_len, 48);
}

#[test]
fn ipv6_extension_header_beyond_payload_length_is_malformed() {
    let mut frame = FrameBuilder::new(v6(1), v6(2))
        .link(LinkType::Raw)
        .ipv6_ext(Ipv6Ext::HopByHop { len: 0 })
        .tcp(1, 2)
        .build();
    frame[41] = 200; // hop-by-hop claims 1608 bytes
    assert_eq!(
        decode(LinkType::Raw, &frame),
        Err(DecodeError::Malformed(Layer::Ipv6))
    );
}

#[test]
fn fragments_are_held_for_reassembly() {
    for (offset, more) in [(0, true), (185, true), (185, false)] {
        let v4_frag = FrameBuilder::new(v4(1), v4(2))
            .ipv4_fragment(offset, more)
            .udp(1, 2)
            .build();
        assert_eq!(
            entry(LinkType::Ethernet, &v4_frag, &mut Vec::new()),
            Decoded::Held
        );
        let v6_frag = FrameBuilder::new(v6(1), v6(2))
            .ipv6_ext(Ipv6Ext::Fragment { offset, more })
            .udp(1, 2)
            .build();
        assert_eq!(
            entry(LinkType::Ethernet, &v6_frag, &mut Vec::new()),
            Decoded::Held
        );
    }
    // DF alone is not a fragment.
    let mut df = FrameBuilder::new(v4(1), v4(2)).udp(1, 2).build();
    df[14 + 6] = 0x40;
    assert!(decode(LinkType::Ethernet, &df).is_ok());
}

#[test]
fn ethernet_padding_is_not_payload() {
    let udp_frame = FrameBuilder::new(v4(1), v4(2))
        .udp(1, 53)
        .payload(b"ab")
        .pad_to(60)
        .build();
    assert_eq!(udp_frame.len(), 60);
    let packet = decode(LinkType::Ethernet, &udp_frame).unwrap();
    assert_eq!(packet.ip_len, 30);
    assert_eq!(udp(&packet).payload, b"ab");

    let tcp_frame = FrameBuilder::new(v4(1), v4(2))
        .tcp(1, 80)
        .flags(TcpFlags::ACK)
        .pad_to(60)
        .build();
    let s = tcp(&decode(LinkType::Ethernet, &tcp_frame).unwrap());
    assert_eq!((s.payload, s.payload_len), (&b""[..], 0));

    let v6_frame = FrameBuilder::new(v6(1), v6(2))
        .tcp(1, 80)
        .payload(b"z")
        .pad_to(100)
        .build();
    let s = tcp(&decode(LinkType::Ethernet, &v6_frame).unwrap());
    assert_eq!((s.payload, s.payload_len), (&b"z"[..], 1));
}

#[test]
fn truncated_payload_keeps_header_lengths() {
    let body = [b'x'; 100];
    for (src, dst) in [(v4(1), v4(2)), (v6(1), v6(2))] {
        let ip_header = if src.is_ipv6() { 40 } else { 20 };
        let frame = FrameBuilder::new(src, dst)
            .tcp(1, 80)
            .payload(&body)
            .build();
        let cut = &frame[..14 + ip_header + 20 + 10];
        let packet = decode(LinkType::Ethernet, cut).unwrap();
        assert_eq!(packet.ip_len as usize, ip_header + 20 + 100);
        let s = tcp(&packet);
        assert_eq!((s.payload.len(), s.payload_len), (10, 100));

        let frame = FrameBuilder::new(src, dst)
            .udp(1, 53)
            .payload(&body)
            .build();
        let cut = &frame[..14 + ip_header + 8 + 30];
        let d = udp(&decode(LinkType::Ethernet, cut).unwrap());
        assert_eq!((d.payload.len(), d.payload_len), (30, 100));
    }
}

#[test]
fn udp_length_field_bounds_payload() {
    let mut frame = FrameBuilder::new(v4(1), v4(2))
        .link(LinkType::Raw)
        .udp(1, 53)
        .payload(b"abcdef")
        .build();
    frame[24..26].copy_from_slice(&10u16.to_be_bytes());
    let d = udp(&decode(LinkType::Raw, &frame).unwrap());
    assert_eq!((d.payload, d.payload_len), (&b"ab"[..], 2));

    // Longer than the IP packet: clamped to it.
    frame[24..26].copy_from_slice(&1000u16.to_be_bytes());
    let d = udp(&decode(LinkType::Raw, &frame).unwrap());
    assert_eq!((d.payload, d.payload_len), (&b"abcdef"[..], 6));

    frame[24..26].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(
        decode(LinkType::Raw, &frame),
        Err(DecodeError::Malformed(Layer::Udp))
    );
}

#[test]
fn malformed_headers() {
    let base = FrameBuilder::new(v4(1), v4(2)).link(LinkType::Raw);
    let mut ihl = base.clone().udp(1, 2).build();
    ihl[0] = 0x44;
    assert_eq!(
        decode(LinkType::Raw, &ihl),
        Err(DecodeError::Malformed(Layer::Ipv4))
    );
    let mut total = base.clone().udp(1, 2).build();
    total[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        decode(LinkType::Raw, &total),
        Err(DecodeError::Malformed(Layer::Ipv4))
    );
    let mut offset = base.clone().tcp(1, 2).build();
    offset[20 + 12] = 0x40;
    assert_eq!(
        decode(LinkType::Raw, &offset),
        Err(DecodeError::Malformed(Layer::Tcp))
    );
    let mut beyond = base.clone().tcp(1, 2).build();
    beyond[20 + 12] = 0xf0; // 60-byte header in a 20-byte segment
    assert_eq!(
        decode(LinkType::Raw, &beyond),
        Err(DecodeError::Malformed(Layer::Tcp))
    );
}

#[test]
fn ipv4_total_length_zero_uses_captured_length() {
    let mut frame = FrameBuilder::new(v4(1), v4(2))
        .link(LinkType::Raw)
        .tcp(1, 2)
        .payload(&[7; 50])
        .build();
    frame[2..4].copy_from_slice(&[0, 0]);
    let packet = decode(LinkType::Raw, &frame).unwrap();
    assert_eq!(packet.ip_len, 90);
    assert_eq!(tcp(&packet).payload_len, 50);
}

#[test]
fn icmp_kinds() {
    let original = FrameBuilder::new(v4(1), v4(9)).tcp(40000, 443);
    let from_router = FrameBuilder::new(v4(254), v4(1));
    let time_exceeded = from_router.clone().icmp_error(11, 0, &original).build();
    let Transport::IcmpError(e) = decode(LinkType::Ethernet, &time_exceeded)
        .unwrap()
        .transport
    else {
        panic!("expected an ICMP error");
    };
    assert_eq!(e.kind, IcmpErrorKind::Other);
    assert_eq!((e.original_src, e.original_dst), (v4(1), v4(9)));
    assert_eq!(
        (
            e.original_protocol,
            e.original_src_port,
            e.original_dst_port
        ),
        (6, 40000, 443)
    );

    let host_unreachable = from_router.clone().icmp_error(3, 1, &original).build();
    let packet = decode(LinkType::Ethernet, &host_unreachable).unwrap();
    assert!(matches!(
        packet.transport,
        Transport::IcmpError(IcmpError {
            kind: IcmpErrorKind::Unreachable,
            ..
        })
    ));

    let echo = from_router.clone().icmp(8, 0).payload(b"ping").build();
    assert_eq!(
        decode(LinkType::Ethernet, &echo).unwrap().transport,
        Transport::Other { protocol: 1 }
    );
    let echo6 = FrameBuilder::new(v6(1), v6(2)).icmp(128, 0).build();
    assert_eq!(
        decode(LinkType::Ethernet, &echo6).unwrap().transport,
        Transport::Other { protocol: 58 }
    );

    let original6 = FrameBuilder::new(v6(1), v6(2))
        .ipv6_ext(Ipv6Ext::DestinationOptions { len: 0 })
        .udp(5000, 53);
    for (kind, code, expect) in [
        (1, 4, IcmpErrorKind::PortUnreachable),
        (1, 0, IcmpErrorKind::Unreachable),
        (2, 0, IcmpErrorKind::Other),
        (3, 0, IcmpErrorKind::Other),
    ] {
        let frame = FrameBuilder::new(v6(2), v6(1))
            .icmp_error(kind, code, &original6)
            .build();
        assert_eq!(
            decode(LinkType::Ethernet, &frame).unwrap().transport,
            Transport::IcmpError(IcmpError {
                kind: expect,
                original_src: v6(1),
                original_dst: v6(2),
                original_protocol: 17,
                original_src_port: 5000,
                original_dst_port: 53,
            })
        );
    }
}

#[test]
fn icmp_error_quoting_too_little_is_truncated() {
    let original = FrameBuilder::new(v4(1), v4(2)).udp(1, 2);
    let frame = FrameBuilder::new(v4(2), v4(1))
        .link(LinkType::Raw)
        .icmp_port_unreachable(&original)
        .build();
    // IP 20 + ICMP 8 + quoted IP 20 + 2 bytes of the UDP header.
    let mut cut = frame[..50].to_vec();
    cut[2..4].copy_from_slice(&50u16.to_be_bytes());
    assert_eq!(
        decode(LinkType::Raw, &cut),
        Err(DecodeError::Truncated(Layer::Icmp))
    );
}

fn sample_frames() -> Vec<(LinkType, Vec<u8>)> {
    let original = FrameBuilder::new(v4(1), v4(2)).udp(5353, 53).payload(b"q");
    let original6 = FrameBuilder::new(v6(1), v6(2)).tcp(1, 2);
    vec![
        (
            LinkType::Ethernet,
            FrameBuilder::new(v4(1), v4(2))
                .vlan(TPID_8021AD, 1)
                .vlan(TPID_8021Q, 2)
                .ipv4_options(&[1, 1, 1, 0])
                .tcp(1, 2)
                .tcp_options(&[1, 1, 1, 1])
                .payload(b"payload")
                .pad_to(80)
                .build(),
        ),
        (
            LinkType::LinuxSll2,
            FrameBuilder::new(v6(1), v6(2))
                .link(LinkType::LinuxSll2)
                .ipv6_ext(Ipv6Ext::HopByHop { len: 1 })
                .ipv6_ext(Ipv6Ext::Ah { len: 1 })
                .udp(1, 2)
                .payload(b"data")
                .build(),
        ),
        (
            LinkType::LinuxSll,
            FrameBuilder::new(v4(2), v4(1))
                .link(LinkType::LinuxSll)
                .icmp_port_unreachable(&original)
                .build(),
        ),
        (
            LinkType::Null,
            FrameBuilder::new(v6(2), v6(1))
                .link(LinkType::Null)
                .icmp_port_unreachable(&original6)
                .build(),
        ),
    ]
}

#[test]
fn every_prefix_decodes_or_errors() {
    for (link, frame) in sample_frames() {
        let full = decode(link, &frame).unwrap();
        for n in 0..frame.len() {
            match decode(link, &frame[..n]) {
                Ok(p) => {
                    assert!(n >= link_header_len(link) + 20, "{link:?} prefix {n}");
                    assert_eq!((p.src, p.dst, p.ip_len), (full.src, full.dst, full.ip_len));
                }
                Err(e) => assert!(
                    matches!(e, DecodeError::Truncated(_)),
                    "{link:?} prefix {n}: {e:?}"
                ),
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        link in proptest::sample::select(LinkType::ALL.to_vec()),
    ) {
        if let Ok(p) = decode(link, &bytes) {
            let payload = match p.transport {
                Transport::Tcp(s) => Some((s.payload.len(), s.payload_len)),
                Transport::Udp(d) => Some((d.payload.len(), d.payload_len)),
                _ => None,
            };
            if let Some((captured, declared)) = payload {
                prop_assert!(captured as u64 <= u64::from(declared));
                prop_assert!(captured < bytes.len());
            }
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        sample in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let (link, mut frame) = sample_frames().swap_remove(sample);
        for (at, value) in edits {
            let len = frame.len();
            frame[at % len] = value;
        }
        let len = frame.len();
        let frame = &frame[..=cut % len];
        if let Ok(p) = decode(link, frame) {
            if let Transport::Tcp(s) = p.transport {
                prop_assert!(s.payload.len() as u64 <= u64::from(s.payload_len));
            }
        }
    }
}
