use super::*;
use crate::decode::build::FrameBuilder;
use crate::decode::{decode_network, decode_transport, LinkType, Network, Transport};

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

fn fragment<'a>(net: &'a Network<'a>) -> Fragment<'a> {
    Fragment {
        src: net.src,
        dst: net.dst,
        protocol: net.protocol,
        is_v6: net.is_v6,
        info: net.fragment.expect("a fragment"),
        data: net.payload,
        wire_len: net.payload_len,
    }
}

/// Feeds frames in the given order; returns the last outcome.
fn feed(d: &mut Defrag, frames: &[Vec<u8>], order: &[usize]) -> Outcome {
    let mut last = Outcome::Held;
    for &i in order {
        let net = decode_network(LinkType::Ethernet, &frames[i]).unwrap();
        let mut ev = Expired::default();
        last = d.insert(T0, &fragment(&net), &mut ev);
    }
    last
}

fn check_udp(frames: &[Vec<u8>], outcome: Outcome, payload: &[u8]) {
    let net = decode_network(LinkType::Ethernet, &frames[0]).unwrap();
    let Outcome::Complete {
        protocol,
        payload: bytes,
    } = outcome
    else {
        panic!("not complete: {outcome:?}");
    };
    let net = Network { protocol, ..net };
    match decode_transport(&net, &bytes, bytes.len() as u32).unwrap() {
        Transport::Udp(u) => {
            assert_eq!((u.src_port, u.dst_port), (53, 40000));
            assert_eq!(u.payload, payload);
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
            let out = feed(&mut d, &frames, &order);
            check_udp(&frames, out, &payload);
            assert!(d.is_empty());
            assert_eq!(d.stats().reassembled, 1);
        }
    }
}

#[test]
fn duplicates_are_ignored_overlaps_drop_the_datagram() {
    let (payload, frames) = udp_fragments(false, 2000, 512);
    let mut d = Defrag::new(4, 5.0);
    assert_eq!(feed(&mut d, &frames, &[0, 0]), Outcome::Duplicate);
    let last = frames.len() - 1;
    let order: Vec<usize> = (1..=last).collect();
    check_udp(&frames, feed(&mut d, &frames, &order), &payload);

    // Same offset, different bytes: the classic overlap evasion.
    let mut altered = frames[1].clone();
    let end = altered.len() - 1;
    altered[end] ^= 0xff;
    let mut d = Defrag::new(4, 5.0);
    feed(&mut d, &frames, &[0, 1]);
    let out = feed(&mut d, &[altered], &[0]);
    assert_eq!(
        out,
        Outcome::Dropped {
            reason: DropReason::Overlap,
            fragments: 3
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
    feed(&mut d, &small, &[0, 1]);
    // Bytes 0..512 again, covering two held fragments.
    let out = feed(&mut d, &large, &[0]);
    assert!(matches!(
        out,
        Outcome::Dropped {
            reason: DropReason::Overlap,
            ..
        }
    ));
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
    feed(&mut d, &frames, &[0, 2]);
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
    feed(&mut d, &frames, &[2]);
    let out = feed(&mut d, &shorter, &[2]);
    assert!(matches!(out, Outcome::Dropped { .. }), "{out:?}");
}
