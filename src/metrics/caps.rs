//! The cardinality caps: past `max_values` distinct values of a label, new
//! ones fold into `~other`; past `max_series` label sets of a family, the
//! traffic-derived labels of new ones fold. Every fold is counted in
//! `podpath_label_overflow_total`.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::label::{Capped, Label, Name, OVERFLOW};
use super::limits::OverflowLabels;
use crate::config::NamePolicy;
use crate::hash::{HashMap, HashSet};

/// A label set with traffic-derived labels, and how it folds past its
/// family's series cap.
pub(super) trait Folds: Hash {
    /// Replaces the traffic-derived labels with `overflow`.
    fn fold(&mut self, overflow: &Label);
}

/// Caps for every traffic-derived label, and the interned empty/overflow values.
#[derive(Debug)]
pub(super) struct Caps {
    /// Values admitted, by family (its exposed name) and label.
    values: HashMap<(&'static str, Capped), HashSet<Arc<str>>>,
    max_values: usize,
    max_series: usize,
    series: HashMap<&'static str, HashSet<u64>>,
    /// Fingerprints label sets for `series` (randomly seeded: see `crate::hash`).
    fingerprint: crate::hash::RandomState,
    empty: Label,
    overflow: Label,
    names: NamePolicy,
    salt: String,
    /// `podpath_label_overflow_total`.
    overflows: Family<OverflowLabels, Counter>,
}

impl Caps {
    pub(super) fn new(
        overflows: Family<OverflowLabels, Counter>,
        max_values: usize,
        max_series: usize,
    ) -> Caps {
        Caps {
            values: HashMap::default(),
            max_values: max_values.max(1),
            max_series: max_series.max(1),
            series: HashMap::default(),
            fingerprint: Default::default(),
            empty: Label::from_static(""),
            overflow: Label::from_static(OVERFLOW),
            names: NamePolicy::Keep,
            salt: String::new(),
            overflows,
        }
    }

    /// Applies `policy` to every `dns_name`, `sni` and `name` label.
    pub(super) fn with_names(mut self, policy: NamePolicy, salt: &str) -> Caps {
        self.names = policy;
        self.salt = salt.to_string();
        self
    }

    /// Counts one value (or label set) of `metric` folded into `~other`.
    pub(super) fn overflowed(&self, metric: Name, label: Capped) {
        self.overflows
            .get_or_create(&OverflowLabels {
                metric: metric.exposed,
                label,
            })
            .inc();
    }

    /// The label value to use for `value`: itself while under the cap (or
    /// already admitted), `~other` past it (counted).
    pub(super) fn admit(&mut self, metric: Name, label: Capped, value: &str) -> Label {
        if value.is_empty() {
            return self.empty.clone();
        }
        let redacted;
        let value = if label.is_name() && self.names != NamePolicy::Keep {
            redacted = self.names.apply(value, &self.salt);
            &*redacted
        } else {
            value
        };
        let values = self.values.entry((metric.exposed, label)).or_default();
        if let Some(v) = values.get(value) {
            return Label::shared(v.clone());
        }
        if values.len() >= self.max_values {
            self.overflowed(metric, label);
            return self.overflow.clone();
        }
        let v: Arc<str> = Arc::from(value);
        values.insert(v.clone());
        Label::shared(v)
    }

    /// Whether `value` was admitted (not folded) for `metric`'s `label`.
    pub(super) fn admitted(&self, metric: Name, label: Capped, value: &str) -> bool {
        self.values
            .get(&(metric.exposed, label))
            .is_some_and(|c| c.contains(value))
    }

    /// Admits `labels` as a series of `metric`, or folds them (counted) when
    /// the family is at `max_series`: whether they were admitted. Series are
    /// remembered by hash.
    pub(super) fn fold<L: Folds>(&mut self, metric: Name, labels: &mut L) -> bool {
        let key = self.fingerprint.hash_one(&*labels);
        let seen = self.series.entry(metric.exposed).or_default();
        if seen.contains(&key) {
            return true;
        }
        if seen.len() < self.max_series {
            seen.insert(key);
            return true;
        }
        labels.fold(&self.overflow);
        self.overflowed(metric, Capped::Series);
        false
    }
}
