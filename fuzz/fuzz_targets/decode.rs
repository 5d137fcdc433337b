//! The decode pipeline's entry point (`Defrag::decode`) for every link type:
//! first byte picks the link type, the rest is one frame, fed twice through
//! one reassembly table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podpath::defrag::testkit::check_entry_point;

fuzz_target!(|data: &[u8]| {
    let Some((&l, frame)) = data.split_first() else {
        return;
    };
    if let Err(broken) = check_entry_point(podpath_fuzz::link(l), frame) {
        panic!("{broken}");
    }
});
