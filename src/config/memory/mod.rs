//! Sizing the bounded tables from the memory podpath may use.
//!
//! The budget is either given (`--memory-budget 96Mi`) or three quarters of
//! the container's memory limit, read from the cgroup (v2 `memory.max`, v1
//! `memory.limit_in_bytes`, the smallest along the path to the root). The
//! quarter left over is the margin for what the model below does not count:
//! allocator slack beyond the measured, the kernel's socket buffers, a scrape
//! in flight.
//!
//! Worst-case memory is modelled as fixed costs plus a per-entry cost for
//! each table whose size traffic drives, every figure measured with
//! generated floods (`bench/gen_flood.py`, `examples/engine_rss.rs`; the
//! arithmetic is in docs/memory.md):
//!
//! ```text
//! peak ≈ PROCESS_BASE + rings
//!      + FLOW_BUCKET × buckets(max_flows)        buckets: hashbrown, 7/8 full, power of two
//!      + FLOW_STATE × max_flows                  a pending TLS first flight per flow
//!      + NAME_SLOT × max_dns_names               address → name and latest-answer tables
//!      + SERIES × max_series × SERIES_FAMILIES   label-capped metric families and one scrape
//! ```
//!
//! When the defaults do not fit, flows get the largest capacity that
//! costs at most half of what is left after the fixed costs, and names and
//! series share the rest in proportion to their default costs.

use std::path::{Path, PathBuf};

use super::Limits;

/// The process without rings or tables: binary, allocator, tokio runtime,
/// HTTP server, registry, the other small tables (DNS pending queries, TCP
/// streams, lookups, fragments). `podpath run` idle on `lo` in the debug
/// build: 12.3 MiB besides its ring; the release build is smaller.
pub const PROCESS_BASE: u64 = 12 << 20;
/// Peak bytes per flow-table bucket under a flood of distinct flows: the
/// live table (272-byte entries), the transient of its last resize (both
/// tables), and the heap the smaller tables before it leave behind. Slope of
/// VmHWM over 1M distinct SYNs at 7 168 … 57 344 flows (8 192 … 65 536
/// buckets): 837 bytes.
pub const FLOW_BUCKET: u64 = 840;
/// Peak bytes per flow of the state a connection carries past its table
/// entry, when every flow holds the first ~1 000 bytes of a TLS ClientHello
/// that never completes (a large post-quantum hello whose second segment
/// never comes): 1 058 bytes per flow over a flood of 200 000 such
/// connections at 7 168 and 28 672 flows (`gen_flood.py hellos`). Hellos
/// sent in many small segments cannot hold more: the engine's
/// `tls::FlightPool` caps all first-flight buffers together at
/// `tls::FLIGHT_BYTES_PER_FLOW` (1 000) per flow. HTTP/1 state is smaller;
/// HTTP/2 state is not modelled (docs/memory.md).
pub const FLOW_STATE: u64 = 1_100;
/// Peak bytes per address → name slot under a flood of distinct names each
/// answered with 64 addresses (the most one answer set keeps): the address
/// map, the latest answer set per name, the set of every answered address.
/// Slope of VmHWM between 8 192 and 16 384 slots: 2 221 bytes.
pub const NAME_SLOT: u64 = 2_300;
/// Bytes per metric series at the label caps, the exposition text of one
/// scrape included. See docs/memory.md.
pub const SERIES: u64 = 600;
/// Metric families whose series count traffic drives (each up to
/// `max_series`).
pub const SERIES_FAMILIES: u64 = 20;
/// Smallest tables podpath runs with, however small the budget.
pub const MIN_FLOWS: usize = 896;
pub const MIN_NAMES: usize = 256;
pub const MIN_SERIES: usize = 100;
/// Smallest ring per interface.
pub const MIN_RING: usize = 1 << 20;

/// A limit on the memory the process may use and where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    pub bytes: u64,
    pub source: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error(
        "memory budget {0:?}: expected auto, off, or a size such as 96Mi, 100M, 1Gi or 67108864"
    )]
    Invalid(String),
}

/// `--memory-budget`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BudgetArg {
    /// Three quarters of the cgroup limit; no budget when there is none.
    #[default]
    Auto,
    /// Keep the configured tables whatever the limit.
    Off,
    Bytes(u64),
}

impl std::str::FromStr for BudgetArg {
    type Err = BudgetError;

    /// `auto`, `off`, or a Kubernetes-style quantity: plain bytes, or a
    /// number with a suffix k/M/G (powers of 1000) or Ki/Mi/Gi (of 1024).
    fn from_str(s: &str) -> Result<Self, BudgetError> {
        let invalid = || BudgetError::Invalid(s.to_string());
        match s.trim() {
            "auto" => return Ok(BudgetArg::Auto),
            "off" => return Ok(BudgetArg::Off),
            _ => {}
        }
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, suffix) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        let unit: u64 = match suffix {
            "" => 1,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            _ => return Err(invalid()),
        };
        n.checked_mul(unit)
            .filter(|&b| b > 0)
            .map(BudgetArg::Bytes)
            .ok_or_else(invalid)
    }
}

/// Values at or above this mean "no limit" (cgroup v1 writes
/// PAGE_COUNTER_MAX × page size, ~2^63).
const UNLIMITED: u64 = 1 << 62;

/// The memory limit of the cgroup `proc_self_cgroup` (the text of
/// `/proc/self/cgroup`) names, under the cgroup filesystem at `root`
/// (normally `/sys/fs/cgroup`): the smallest limit on the path from the
/// process's cgroup up to the root. Inside a container with a cgroup
/// namespace the path is `/` and the container's own limit is
/// `root/memory.max`; without one the host path may not exist under the
/// container's mount, and the walk reaches that same file. `None`: no
/// limit, or no cgroup filesystem.
pub fn cgroup_limit(proc_self_cgroup: &str, root: &Path) -> Option<MemoryLimit> {
    let mut best: Option<MemoryLimit> = None;
    for line in proc_self_cgroup.lines() {
        // hierarchy-ID:controller-list:cgroup-path
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (dir, file) = if id == "0" && controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut at = Path::new(path.trim());
        loop {
            let rel = at.strip_prefix("/").unwrap_or(at);
            let candidate = dir.join(rel).join(file);
            if let Some(bytes) = read_limit(&candidate) {
                if best.as_ref().is_none_or(|b| bytes < b.bytes) {
                    best = Some(MemoryLimit {
                        bytes,
                        source: candidate,
                    });
                }
            }
            match at.parent() {
                Some(parent) => at = parent,
                None => break,
            }
        }
    }
    best
}

fn read_limit(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let bytes: u64 = text.trim().parse().ok()?; // "max" fails: no limit
    (bytes > 0 && bytes < UNLIMITED).then_some(bytes)
}

/// The limit of the running process's cgroup.
pub fn container_limit() -> Option<MemoryLimit> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroup_limit(&text, Path::new("/sys/fs/cgroup"))
}

/// Memory that is not a table: the process itself and the capture rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed {
    /// Capture interfaces (each gets a ring); 0 for `analyze`.
    pub interfaces: usize,
    /// Ring bytes per interface as configured.
    pub ring_size: usize,
    /// Other fixed bytes (`analyze`: its report).
    pub extra: u64,
}

/// Tables that were set explicitly and must not be resized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pinned {
    pub flows: bool,
    pub names: bool,
    pub series: bool,
}

/// What the budget allows.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The budget the tables were sized for; `None`: not sized.
    pub budget: Option<u64>,
    pub limits: Limits,
    pub ring_size: usize,
    /// Modelled worst case of the chosen sizes.
    pub estimate: u64,
}

/// Hash buckets a hashbrown map holding `n` entries ends with.
pub fn buckets(n: usize) -> u64 {
    if n < 8 {
        return 8;
    }
    ((n as u64 * 8).div_ceil(7)).next_power_of_two()
}

pub fn flows_cost(n: usize) -> u64 {
    FLOW_BUCKET * buckets(n) + FLOW_STATE * n as u64
}

pub fn names_cost(n: usize) -> u64 {
    NAME_SLOT * n as u64
}

pub fn series_cost(n: usize) -> u64 {
    SERIES * SERIES_FAMILIES * n as u64
}

/// Modelled worst case of `limits` with `fixed`.
pub fn estimate(limits: &Limits, fixed: Fixed, ring_size: usize) -> u64 {
    PROCESS_BASE
        + fixed.extra
        + (fixed.interfaces * ring_size) as u64
        + flows_cost(limits.max_flows)
        + names_cost(limits.max_dns_names)
        + series_cost(limits.max_series)
}

/// Sizes `limits` (flows, DNS names, series) and the ring for `budget`
/// bytes. Tables only shrink: a budget larger than the defaults need
/// leaves them as they are.
pub fn plan(budget: u64, limits: &Limits, fixed: Fixed, pinned: Pinned) -> Plan {
    let mut out = limits.clone();
    let mut ring_size = fixed.ring_size;
    if estimate(limits, fixed, ring_size) <= budget {
        return Plan {
            budget: Some(budget),
            estimate: estimate(limits, fixed, ring_size),
            limits: out,
            ring_size,
        };
    }
    // Rings take at most a quarter of the budget.
    if let Some(share) = ((budget / 4) as usize).checked_div(fixed.interfaces) {
        if ring_size > share {
            // A power of two, so the ring is whole blocks.
            ring_size = prev_power_of_two(share).max(MIN_RING);
        }
    }
    let used = PROCESS_BASE + fixed.extra + (fixed.interfaces * ring_size) as u64;
    let mut left = budget.saturating_sub(used);
    for (is_pinned, cost) in [
        (pinned.flows, flows_cost(out.max_flows)),
        (pinned.names, names_cost(out.max_dns_names)),
        (pinned.series, series_cost(out.max_series)),
    ] {
        if is_pinned {
            left = left.saturating_sub(cost);
        }
    }
    // Flows first: the largest capacity that fills its buckets to 7/8 (the
    // map's most) and costs at most half of what is left (all of it when
    // names and series are pinned).
    let mut flows = limits.max_flows;
    if !pinned.flows {
        let share = if pinned.names && pinned.series {
            left
        } else {
            left / 2
        };
        let mut f = MIN_FLOWS;
        while f * 2 <= limits.max_flows && flows_cost(f * 2) <= share {
            f *= 2;
        }
        if flows_cost(limits.max_flows) > share {
            flows = f.min(limits.max_flows);
        }
    }
    loop {
        out.max_flows = flows;
        let rest = if pinned.flows {
            left
        } else {
            left.saturating_sub(flows_cost(flows))
        };
        let want = if pinned.names {
            0
        } else {
            names_cost(limits.max_dns_names)
        } + if pinned.series {
            0
        } else {
            series_cost(limits.max_series)
        };
        if want > rest {
            // Both shrink by the same factor (want > 0 here).
            let scale = |n: usize, min: usize| {
                ((n as u128 * rest as u128 / want as u128) as usize)
                    .max(min)
                    .min(n)
            };
            if !pinned.names {
                out.max_dns_names = scale(limits.max_dns_names, MIN_NAMES);
            }
            if !pinned.series {
                out.max_series = scale(limits.max_series, MIN_SERIES);
            }
        }
        // Names or series held at their minimum can overshoot: flows give
        // way, down to their own minimum.
        if pinned.flows || flows <= MIN_FLOWS || estimate(&out, fixed, ring_size) <= budget {
            break;
        }
        flows /= 2;
    }
    // Series held at their minimum can still overshoot: names give way.
    let over = estimate(&out, fixed, ring_size).saturating_sub(budget);
    if over > 0 && !pinned.names {
        let fewer = over.div_ceil(NAME_SLOT) as usize;
        out.max_dns_names = out.max_dns_names.saturating_sub(fewer).max(MIN_NAMES);
    }
    Plan {
        budget: Some(budget),
        estimate: estimate(&out, fixed, ring_size),
        limits: out,
        ring_size,
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

#[cfg(test)]
mod tests;
