//! DNS over a TCP stream: arbitrary segment sequences (SYN/FIN/RST, gaps,
//! overlaps, retransmissions, snap-length cuts) through the tracker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podpath::dns::{DnsConfig, DnsTracker};
use podpath::Timestamp;
use podpath_fuzz::{TcpStep, CLIENT, SERVER};

fuzz_target!(|input: (u32, u32, Vec<TcpStep>)| {
    let (client_isn, server_isn, steps) = input;
    let mut dns = DnsTracker::new(DnsConfig {
        max_streams: 2,
        ..DnsConfig::default()
    });
    let mut out = Vec::new();
    let mut ts = Timestamp::from_secs_nanos(1000, 0);
    for step in steps.iter().take(128) {
        ts = ts.add_secs(f64::from(step.millis) / 1000.0);
        let bytes = step.payload.bytes();
        let (src, dst, isn) = if step.from_client {
            (CLIENT, SERVER, client_isn)
        } else {
            (SERVER, CLIENT, server_isn)
        };
        let seg = step.segment(isn, &bytes);
        dns.on_tcp(ts, src, dst, &seg, &mut out);
        dns.advance(ts, &mut out);
        out.clear();
    }
    dns.flush(&mut out);
    assert!(dns.stats().streams.evicted <= steps.len() as u64);
});
