//! Standard process metrics (`process_resident_memory_bytes`,
//! `process_cpu_seconds_total`, …) read from /proc at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux reports CPU times in /proc in USER_HZ units, 100 per second on every
/// architecture Kubernetes runs on.
const USER_HZ: f64 = 100.0;

#[derive(Debug)]
pub struct ProcessCollector;

struct Sample {
    rss_bytes: i64,
    vsize_bytes: i64,
    cpu_seconds: f64,
    threads: i64,
    open_fds: i64,
}

fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // Field numbers from proc(5), minus the 3 before `rest` (pid, comm) and 1-based.
    let get = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let utime = get(14)?;
    let stime = get(15)?;
    let threads = get(20)? as i64;
    let vsize = get(23)? as i64;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as i64)
        .unwrap_or(0);
    Some(Sample {
        rss_bytes: rss_kb * 1024,
        vsize_bytes: vsize,
        cpu_seconds: (utime + stime) / USER_HZ,
        threads,
        open_fds,
    })
}

/// Peak resident set size in bytes (VmHWM), for reports and benchmarks.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(s) = sample() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.rss_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.vsize_bytes,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                s.threads,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds,
            ),
        ] {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}
