//! DNS over UDP: the wire parser alone, then the tracker in both directions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podpath::dns::{wire, DnsConfig, DnsTracker};
use podpath::Timestamp;
use podpath_fuzz::{CLIENT, SERVER};

fuzz_target!(|data: &[u8]| {
    let _ = wire::parse(data);
    let mut dns = DnsTracker::new(DnsConfig::default());
    let mut out = Vec::new();
    let t = Timestamp::from_secs_nanos(1000, 0);
    dns.on_udp(t, CLIENT, SERVER, data, &mut out);
    dns.on_udp(t.add_secs(0.001), SERVER, CLIENT, data, &mut out);
    dns.advance(t.add_secs(100.0), &mut out);
    dns.flush(&mut out);
    let _ = dns.resolve("10.96.0.1".parse().unwrap(), t);
});
