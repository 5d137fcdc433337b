//! `podpath analyze`: the engine over capture files.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Args;

use super::{Format, PodArgs};
use crate::capture::file::{FileSource, ReadAhead};
use crate::capture::{CaptureError, Next, PacketSource};
use crate::engine::{Engine, Sink, Tee};
use crate::metrics::{Metrics, MetricsSink};
use crate::report::cluster_names::ClusterNames;
use crate::report::{Context, Report};
use crate::Timestamp;

/// The seed walkthrough recorded in the lab (`tcpdump -i any` in demo-app-2),
/// analysed when no file is given.
pub const SEED_CAPTURE: &[u8] = include_bytes!("../../tests/captures/seed-any.pcap");
/// The lab's cluster, for the embedded capture.
pub const SEED_SERVICE_CIDR: &str = "10.96.0.0/12";
pub const SEED_POD_CIDR: &str = "10.244.0.0/16";

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// pcap or pcapng files, merged in timestamp order. None: the embedded seed capture.
    #[arg(env = "PODPATH_FILES", value_delimiter = ',')]
    pub files: Vec<String>,
    /// Output format.
    #[arg(
        long,
        short,
        env = "PODPATH_FORMAT",
        value_enum,
        default_value = "table"
    )]
    pub format: super::Format,
    /// The cluster's objects as `kubectl get services,endpointslices,pods -A -o json`
    /// prints them: names the literal destinations the capture leaves unnamed
    /// (read from the file; no network request).
    #[arg(long = "names", env = "PODPATH_NAMES_FILE")]
    pub names: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub pod: PodArgs,
    /// 1: files are read and parsed on the engine's thread; 2: on a thread
    /// of their own (`ReadAhead`), which did not pay on 2 shared cores (its
    /// doc has the numbers) and is kept to measure elsewhere. The output is
    /// the same either way (tests/read_ahead.rs).
    #[arg(
        long,
        env = "PODPATH_ANALYZE_THREADS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(1..=2),
        hide = true
    )]
    pub threads: u8,
}

/// Runs every frame of `source` through the engine; the first frame's time.
fn feed<S: PacketSource>(
    source: &mut S,
    engine: &mut Engine,
    sink: &mut dyn Sink,
) -> Result<Option<Timestamp>, CaptureError> {
    let mut first = None;
    loop {
        match source.next_packet()? {
            Next::Packet(p) => {
                first.get_or_insert(p.ts);
                engine.process(&p, sink);
            }
            Next::Idle { now } => engine.advance(now, sink),
            Next::End => return Ok(first),
        }
    }
}

pub fn run(mut args: AnalyzeArgs) -> Result<i32> {
    let embedded = args.files.is_empty();
    if embedded {
        if args.pod.service_cidrs.is_empty() {
            args.pod.service_cidrs = vec![SEED_SERVICE_CIDR.parse()?];
        }
        if args.pod.pod_cidrs.is_empty() {
            args.pod.pod_cidrs = vec![SEED_POD_CIDR.parse()?];
        }
    }
    let mut cfg = args.pod.to_config()?;
    let fixed = crate::config::memory::Fixed {
        interfaces: 0,
        ring_size: 0,
        extra: 0,
    };
    let before = cfg.limits.clone();
    let sizing =
        args.pod
            .size_for_memory(&mut cfg, fixed, crate::config::memory::container_limit());
    let mut source = if embedded {
        FileSource::from_bytes(
            "embedded seed capture (tests/captures/seed-any.pcap)",
            SEED_CAPTURE,
        )?
    } else {
        FileSource::open(&args.files)?
    };
    let inputs = if embedded {
        vec!["embedded seed capture (tests/captures/seed-any.pcap)".to_string()]
    } else {
        args.files.clone()
    };
    let l = &cfg.limits;
    if (l.max_flows, l.max_dns_names, l.max_series)
        != (before.max_flows, before.max_dns_names, before.max_series)
    {
        eprintln!(
            "podpath: tables sized down to {} flows, {} DNS names, {} series per metric: {}",
            l.max_flows,
            l.max_dns_names,
            l.max_series,
            sizing.describe()
        );
    }
    let configured = PodArgs::describe(&cfg);
    let limits = cfg.limits.clone();
    let metrics = Arc::new(Metrics::new());
    super::export_sizing(&metrics, &cfg, &sizing);
    let mut metrics_sink =
        MetricsSink::new(metrics.clone(), limits.max_label_values, limits.max_series)
            .with_names(cfg.names, &cfg.name_salt);
    let mut report = Report::new(limits.max_records);
    let mut engine = Engine::new(cfg);
    let first: Option<Timestamp>;
    {
        // Each output format reads one sink: feeding the other would be
        // work thrown away.
        let exposition = matches!(args.format, Format::Prometheus | Format::Openmetrics);
        let sinks: Vec<&mut dyn Sink> = if exposition {
            vec![&mut metrics_sink]
        } else {
            vec![&mut report]
        };
        let mut tee = Tee(sinks);
        if args.threads > 1 {
            let mut ahead = ReadAhead::spawn(source).context("starting the reader thread")?;
            first = feed(&mut ahead, &mut engine, &mut tee)?;
            source = ahead.finish();
        } else {
            first = feed(&mut source, &mut engine, &mut tee)?;
        }
        engine.finish(&mut tee);
        for (reason, count) in source.skipped() {
            tee.on_event(&crate::engine::Event::Skipped { reason, count });
        }
    }
    for &(link, n) in source.unsupported() {
        tracing::warn!(
            link_type = link,
            frames = n,
            "frames of an unsupported link type skipped"
        );
    }
    for f in source.truncated_files() {
        eprintln!("podpath: {f}: file ends in the middle of a packet record; the partial record was skipped");
    }
    if let Some(path) = &args.names {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --names {}", path.display()))?;
        let domain = engine
            .dns()
            .inferred()
            .cluster_domain
            .unwrap_or_else(|| "cluster.local".into());
        let names = ClusterNames::parse(&text, &domain)
            .with_context(|| format!("--names {}", path.display()))?;
        report.name_from_cluster(&names);
        report.names_file = Some(path.display().to_string());
    }
    report.settle_names();
    let span = first.map_or(0.0, |f| engine.now().secs_since(f));
    let inferred = engine.inferences();
    let context = Context {
        inputs,
        span_secs: span,
        stats: engine.stats(),
        inferred: &inferred,
        local: engine.local_addresses(),
        configured,
        dns: engine.dns().stats(),
        namespace: engine.dns().inferred().namespace,
    };
    let text = match args.format {
        Format::Table => report.to_table(&context),
        Format::Prometheus => metrics.encode(false),
        Format::Openmetrics => metrics.encode(true),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&report.to_json(&context))?;
            s.push('\n');
            s
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    // The process exits next: freeing up to 100 000 records per kind and
    // every table entry one by one would only add to `analyze`'s run time.
    std::mem::forget(report);
    std::mem::forget(engine);
    Ok(0)
}
