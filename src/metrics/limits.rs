//! podpath's own bounds: what the caps folded, what full tables evicted,
//! how large the tables are and the memory they were sized for.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::add;
use super::label::Capped;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverflowLabels {
    /// The family as its samples spell it (`label::Name::exposed`).
    pub metric: &'static str,
    pub label: Capped,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub table: &'static str,
}

#[derive(Clone, Debug)]
pub struct LimitMetrics {
    pub label_overflow: Family<OverflowLabels, Counter>,
    pub table_evictions: Family<TableLabels, Counter>,
    pub table_capacity: Family<TableLabels, Gauge>,
    pub memory_limit: Gauge,
    pub memory_budget: Gauge,
}

impl LimitMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        LimitMetrics {
            label_overflow: add(
                reg,
                "podpath_label_overflow",
                "Label values folded into ~other by the per-metric cardinality caps",
                Family::default(),
            ),
            table_evictions: add(
                reg,
                "podpath_table_evictions",
                "Entries evicted from a full state table",
                Family::default(),
            ),
            table_capacity: add(
                reg,
                "podpath_table_capacity",
                "Entries a bounded table holds at most (series: per metric family; label_values: per label), as sized at start from the memory budget",
                Family::default(),
            ),
            memory_limit: add(
                reg,
                "podpath_memory_limit_bytes",
                "The container's memory limit read from its cgroup (0: none found)",
                Gauge::default(),
            ),
            memory_budget: add(
                reg,
                "podpath_memory_budget_bytes",
                "Memory the tables were sized to stay within (0: not sized, --memory-budget off or no limit)",
                Gauge::default(),
            ),
        }
    }
}
