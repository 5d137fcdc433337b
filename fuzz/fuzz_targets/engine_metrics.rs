//! The engine feeding the Prometheus exporter, then encoding: label caps and
//! series caps under arbitrary traffic.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use podpath::config::{Limits, PodConfig};
use podpath::engine::Engine;
use podpath::metrics::{Metrics, MetricsSink};

fuzz_target!(|run: podpath_fuzz::Run| {
    let cfg = PodConfig {
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
        pod_cidrs: vec!["10.0.0.0/16".parse().unwrap()],
        limits: Limits {
            max_flows: 16,
            max_label_values: 3,
            max_series: 8,
            ..Limits::default()
        },
        ..PodConfig::default()
    };
    let mut engine = Engine::new(cfg);
    let mut sink = MetricsSink::new(Arc::new(Metrics::new()), 3, 8);
    run.replay(|p| engine.process(p, &mut sink));
    engine.finish(&mut sink);
    let text = sink.metrics().encode(true);
    assert!(text.ends_with("# EOF\n"));
});
