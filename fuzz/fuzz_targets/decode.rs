//! Link-layer decoding for every link type: first byte picks the link type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podpath::decode::{decode, decode_network, decode_transport};

fuzz_target!(|data: &[u8]| {
    let Some((&l, frame)) = data.split_first() else {
        return;
    };
    let link = podpath_fuzz::link(l);
    let whole = decode(link, frame);
    // The two-step path (network header, then transport from the IP payload)
    // must agree with the one-step path on unfragmented packets.
    if let Ok(net) = decode_network(link, frame) {
        if net.fragment.is_none() {
            let t = decode_transport(&net, net.payload, net.payload_len);
            match (whole, t) {
                (Ok(p), Ok(t)) => assert_eq!(p.transport, t),
                (Err(a), Err(b)) => assert_eq!(a, b),
                (a, b) => panic!("decode {a:?} vs two-step {b:?}"),
            }
        }
    }
});
