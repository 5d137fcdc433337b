//! Peak memory of what `podpath run` holds (engine + metrics), fed from
//! capture files instead of sockets: `cargo run --release --example
//! engine_rss -- [--max-flows N] [--max-dns-names N] [--max-series N] FILE...`. Prints packets, flows left, evictions, the size of
//! one scrape, and VmHWM (peak RSS) from /proc/self/status.
//!
//! `podpath analyze` holds a report (per-connection records, up to
//! `Limits::max_records` per kind) on top of this; the sidecar does not.

use std::sync::Arc;

use podpath::capture::file::FileSource;
use podpath::capture::{Next, PacketSource};
use podpath::config::PodConfig;
use podpath::engine::Engine;
use podpath::metrics::{Metrics, MetricsSink};

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

fn main() -> anyhow::Result<()> {
    let mut cfg = PodConfig {
        service_cidrs: vec!["10.96.0.0/12".parse()?],
        pod_cidrs: vec!["10.244.0.0/16".parse()?],
        ..PodConfig::default()
    };
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> anyhow::Result<usize> {
            Ok(args
                .next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))?
                .parse()?)
        };
        match arg.as_str() {
            "--max-flows" => cfg.limits.max_flows = value()?,
            "--max-dns-names" => cfg.limits.max_dns_names = value()?,
            "--max-series" => cfg.limits.max_series = value()?,
            _ => files.push(arg),
        }
    }
    anyhow::ensure!(
        !files.is_empty(),
        "usage: engine_rss [--max-flows N] [--max-dns-names N] [--max-series N] FILE..."
    );
    let limits = cfg.limits.clone();
    let metrics = Arc::new(Metrics::new());
    let mut sink = MetricsSink::new(metrics.clone(), limits.max_label_values, limits.max_series);
    let mut engine = Engine::new(cfg);
    let mut source = FileSource::open(&files)?;
    let mut packets = 0u64;
    loop {
        match source.next_packet()? {
            Next::Packet(p) => {
                packets += 1;
                engine.process(&p, &mut sink);
            }
            Next::Idle { now } => engine.advance(now, &mut sink),
            Next::End => break,
        }
    }
    let flows = engine.flow_count();
    let scrape = metrics.encode(false).len();
    println!(
        "packets={packets} flows_at_end={flows} flow_evictions={} scrape_bytes={scrape} vm_hwm_kib={} vm_rss_kib={}",
        engine.stats().flow_evictions,
        status_kib("VmHWM:").unwrap_or(0),
        status_kib("VmRSS:").unwrap_or(0),
    );
    engine.finish(&mut sink);
    Ok(())
}
