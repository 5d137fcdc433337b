//! The whole engine fed arbitrary frame sequences with arbitrary time steps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podpath::config::{Limits, PodConfig};
use podpath::engine::{Engine, NullSink};

fuzz_target!(|run: podpath_fuzz::Run| {
    let cfg = PodConfig {
        limits: Limits {
            max_flows: 8,
            max_dns_pending: 8,
            max_dns_names: 8,
            max_dns_streams: 2,
            max_http_pending: 2,
            ..Limits::default()
        },
        ..PodConfig::default()
    };
    let mut engine = Engine::new(cfg);
    let mut sink = NullSink;
    run.replay(|p| engine.process(p, &mut sink));
    assert!(engine.flow_count() <= 8);
    engine.finish(&mut sink);
});
