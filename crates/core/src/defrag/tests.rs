use super::*;
use crate::decode::build::{FrameBuilder, Ipv6Ext};
use crate::decode::{LinkType, Transport};

const T0: Timestamp = Timestamp(1_000_000_000_000);

fn udp_fragments(v6: bool, payload_len: usize, chunk: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        ("fd00::53".parse().unwrap(), "fd00::1".parse().unwrap())
    } else {
        ("10.96.0.10".parse().unwrap(), "10.0.0.1".parse().unwrap())
    };
    let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
    let frames = FrameBuilder::new(src, dst)
        .udp(53, 40000)
        .payload(&payload)
        .build_fragments(chunk);
    (payload, frames)
}

fn decode<'f, 'b>(d: &mut Defrag, frame: &'f [u8], buf: &'b mut Vec<u8>) -> Decoded<'f, 'b> {
    let mut ev = Expired::default();
    d.decode(T0, LinkType::Ethernet, frame, buf, &mut ev)
}

/// Feeds frames in the given order through the entry point; returns what
/// the last one came to.
fn feed<'f, 'b>(
    d: &mut Defrag,
    frames: &'f [Vec<u8>],
    order: &[usize],
    buf: &'b mut Vec<u8>,
) -> Decoded<'f, 'b> {
    let (&last, rest) = order.split_last().expect("a frame");
    for &i in rest {
        decode(d, &frames[i], &mut Vec::new());
    }
    decode(d, &frames[last], buf)
}

fn check_udp(decoded: Decoded<'_, '_>, payload: &[u8]) {
    let Decoded::Reassembled(packet) = decoded else {
        panic!("not reassembled: {decoded:?}");
    };
    match packet.transport {
        Transport::Udp(u) => {
            assert_eq!((u.src_port, u.dst_port), (53, 40000));
            assert_eq!(u.payload, payload);
            assert_eq!(u.payload_len as usize, payload.len());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ipv4_and_ipv6_reassemble_in_any_order() {
    for v6 in [false, true] {
        let (payload, frames) = udp_fragments(v6, 3000, 1232);
        assert_eq!(frames.len(), 3);
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut d = Defrag::new(4, 5.0);
            check_udp(feed(&mut d, &frames, &order, &mut Vec::new()), &payload);
            assert!(d.is_empty());
            assert_eq!(d.stats().reassembled, 1);
        }
    }
}

#[test]
fn duplicates_are_ignored_overlaps_drop_the_datagram() {
    let (payload, frames) = udp_fragments(false, 2000, 512);
    let mut d = Defrag::new(4, 5.0);
    assert_eq!(
        feed(&mut d, &frames, &[0, 0], &mut Vec::new()),
        Decoded::Skipped {
            reason: DropReason::Duplicate,
            count: 1
        }
    );
    let last = frames.len() - 1;
    let order: Vec<usize> = (1..=last).collect();
    check_udp(feed(&mut d, &frames, &order, &mut Vec::new()), &payload);

    // Same offset, different bytes: the classic overlap evasion.
    let mut altered = frames[1].clone();
    let end = altered.len() - 1;
    altered[end] ^= 0xff;
    let mut d = Defrag::new(4, 5.0);
    feed(&mut d, &frames, &[0, 1], &mut Vec::new());
    assert_eq!(
        decode(&mut d, &altered, &mut Vec::new()),
        Decoded::Skipped {
            reason: DropReason::Overlap,
            count: 3
        }
    );
    assert!(d.is_empty());
    assert_eq!(d.stats().overlaps, 1);
}

#[test]
fn partial_overlap_with_a_different_size_is_dropped() {
    let (_, small) = udp_fragments(true, 2000, 256);
    let (_, large) = udp_fragments(true, 2000, 512);
    let mut d = Defrag::new(4, 5.0);
    feed(&mut d, &small, &[0, 1], &mut Vec::new());
    // Bytes 0..512 again, covering two held fragments.
    assert_eq!(
        decode(&mut d, &large[0], &mut Vec::new()),
        Decoded::Skipped {
            reason: DropReason::Overlap,
            count: 3
        }
    );
}

#[test]
fn table_is_bounded_and_evicts_the_oldest() {
    let mut d = Defrag::new(2, 5.0);
    let mut evictions = 0;
    for id in 0..5u32 {
        let frag = Fragment {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            protocol: 17,
            is_v6: false,
            info: FragmentInfo {
                id,
                offset: 0,
                more: true,
            },
            data: &[0; 8],
            wire_len: 8,
        };
        let mut ev = Expired::default();
        assert_eq!(
            d.insert(Timestamp(u64::from(id)), &frag, &mut ev),
            Outcome::Held
        );
        evictions += ev.datagrams;
        assert!(d.len() <= 2);
    }
    assert_eq!(evictions, 3);
    assert_eq!(d.stats().evicted, 3);
    assert_eq!(d.flush().fragments, 2);
}

#[test]
fn incomplete_datagrams_time_out_in_packet_time() {
    let (_, frames) = udp_fragments(false, 3000, 1024);
    let mut d = Defrag::new(4, 5.0);
    feed(&mut d, &frames, &[0, 2], &mut Vec::new());
    assert_eq!(d.expire(T0.add_secs(4.9)), Expired::default());
    assert_eq!(
        d.expire(T0.add_secs(5.0)),
        Expired {
            datagrams: 1,
            fragments: 2
        }
    );
    assert!(d.is_empty());
}

#[test]
fn oversized_misaligned_and_cut_fragments_are_malformed() {
    let base = Fragment {
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.0.0.2".parse().unwrap(),
        protocol: 17,
        is_v6: false,
        info: FragmentInfo {
            id: 9,
            offset: 65_528,
            more: true,
        },
        data: &[0; 16],
        wire_len: 16,
    };
    let mut d = Defrag::new(4, 5.0);
    let mut ev = Expired::default();
    let dropped = |o: Outcome| {
        matches!(
            o,
            Outcome::Dropped {
                reason: DropReason::Malformed,
                ..
            }
        )
    };
    assert!(dropped(d.insert(T0, &base, &mut ev)));
    let misaligned = Fragment {
        info: FragmentInfo {
            offset: 0,
            ..base.info
        },
        data: &[0; 12],
        wire_len: 12,
        ..base
    };
    assert!(dropped(d.insert(T0, &misaligned, &mut ev)));
    let cut = Fragment {
        info: FragmentInfo {
            offset: 0,
            ..base.info
        },
        data: &[0; 8],
        wire_len: 16,
        ..base
    };
    assert!(dropped(d.insert(T0, &cut, &mut ev)));
    assert!(d.is_empty());
}

#[test]
fn too_many_fragments_drop_the_datagram() {
    let mut d = Defrag::new(4, 5.0);
    let mut ev = Expired::default();
    let mut last = Outcome::Held;
    for i in 0..=MAX_FRAGMENTS as u32 {
        let frag = Fragment {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            protocol: 17,
            is_v6: false,
            info: FragmentInfo {
                id: 1,
                offset: 8 + i * 8,
                more: true,
            },
            data: &[0; 8],
            wire_len: 8,
        };
        last = d.insert(T0, &frag, &mut ev);
    }
    assert_eq!(
        last,
        Outcome::Dropped {
            reason: DropReason::Malformed,
            fragments: MAX_FRAGMENTS as u64 + 1
        }
    );
    assert!(d.is_empty());
}

#[test]
fn a_conflicting_last_fragment_drops_the_datagram() {
    let (_, frames) = udp_fragments(false, 3000, 1024);
    let (_, shorter) = udp_fragments(false, 2500, 1024);
    let mut d = Defrag::new(4, 5.0);
    feed(&mut d, &frames, &[2], &mut Vec::new());
    let mut buf = Vec::new();
    let out = decode(&mut d, &shorter[2], &mut buf);
    assert!(matches!(out, Decoded::Skipped { count: 2, .. }), "{out:?}");
}

#[test]
fn ipv6_extension_headers_after_the_fragment_header_are_walked() {
    let (src, dst): (IpAddr, IpAddr) = ("fd00::53".parse().unwrap(), "fd00::1".parse().unwrap());
    let payload = [7u8; 100];
    let frames = FrameBuilder::new(src, dst)
        .ipv6_ext(Ipv6Ext::DestinationOptions { len: 1 })
        .udp(53, 40000)
        .payload(&payload)
        .build_fragments(48);
    // 16 bytes of destination options, 8 of UDP header, 100 of data.
    assert_eq!(frames.len(), 3);
    let mut d = Defrag::new(4, 5.0);
    check_udp(feed(&mut d, &frames, &[2, 0, 1], &mut Vec::new()), &payload);

    // A second fragment header inside the reassembled datagram: the
    // datagram completes, but it is not a packet.
    let nested = FrameBuilder::new(src, dst)
        .ipv6_ext(Ipv6Ext::Fragment {
            offset: 0,
            more: true,
        })
        .udp(53, 40000)
        .payload(&payload)
        .build_fragments(64);
    let order: Vec<usize> = (0..nested.len()).collect();
    assert_eq!(
        feed(&mut d, &nested, &order, &mut Vec::new()),
        Decoded::Invalid(DecodeError::Fragment)
    );
    assert_eq!(d.stats().reassembled, 2);
}

#[test]
fn a_whole_packet_does_not_touch_the_table() {
    let frame = FrameBuilder::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
        .udp(40000, 53)
        .payload(b"q")
        .build();
    let mut d = Defrag::new(4, 5.0);
    let mut buf = Vec::new();
    let Decoded::Packet(p) = decode(&mut d, &frame, &mut buf) else {
        panic!("not a whole packet");
    };
    assert!(matches!(p.transport, Transport::Udp(u) if u.payload == b"q"));
    assert!(d.is_empty());
    assert_eq!(buf.capacity(), 0, "the buffer is for reassembly only");
    assert_eq!(d.stats(), DefragStats::default());
}
