//! The decode pipeline's entry point (`Defrag::decode`) for every link type:
//! first byte picks the link type, the rest is one frame, fed twice through
//! one reassembly table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podpath::decode::Transport;
use podpath::defrag::{Decoded, Defrag, DropReason, Expired};
use podpath::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Some((&l, frame)) = data.split_first() else {
        return;
    };
    let link = podpath_fuzz::link(l);
    let mut defrag = Defrag::new(4, 5.0);
    let (mut first_buf, mut second_buf) = (Vec::new(), Vec::new());
    let mut evicted = Expired::default();
    let t = Timestamp::from_secs_nanos(1, 0);
    let first = defrag.decode(t, link, frame, &mut first_buf, &mut evicted);
    let second = defrag.decode(t, link, frame, &mut second_buf, &mut evicted);
    assert_eq!(evicted, Expired::default());
    if let Some(p) = first.packet() {
        let lengths = match p.transport {
            Transport::Tcp(s) => Some((s.payload.len(), s.payload_len)),
            Transport::Udp(u) => Some((u.payload.len(), u.payload_len)),
            _ => None,
        };
        if let Some((captured, declared)) = lengths {
            assert!(captured as u64 <= u64::from(declared));
            assert!(captured < frame.len());
        }
    }
    // Decoding keeps no state but held fragments: the same frame again
    // decodes the same, and a held fragment is then an exact duplicate.
    match first {
        Decoded::Held => assert_eq!(
            second,
            Decoded::Skipped {
                reason: DropReason::Duplicate,
                count: 1
            }
        ),
        Decoded::Reassembled(p) => panic!("one frame reassembled: {p:?}"),
        _ => assert_eq!(second, first),
    }
});
