//! The HTTP/1 tracker fed arbitrary request/response data at arbitrary sequence numbers.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use podpath::http::Http1;
use podpath::Timestamp;
use podpath_fuzz::Payload;

#[derive(Arbitrary, Debug)]
struct Step {
    request: bool,
    seq: u32,
    payload: Payload,
}

fuzz_target!(|steps: Vec<Step>| {
    let mut h = Http1::new(4);
    let mut ts = Timestamp::from_secs_nanos(1, 0);
    for s in steps.iter().take(128) {
        ts = ts.add_secs(0.001);
        let bytes = s.payload.bytes();
        if s.request {
            let _ = h.on_request_data(ts, s.seq, &bytes);
        } else if let Some(ex) = h.on_response_data(ts, s.seq, &bytes) {
            assert!(ex.latency_secs >= 0.0);
        }
        assert!(h.pending() <= 4);
    }
});
