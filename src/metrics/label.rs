//! Label values and names shared by the families: the cheaply cloned
//! [`Label`], the names of the labels that pass a cap, and a family's name
//! as its samples spell it.

use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// The value traffic-derived labels fold into past their cap.
pub const OVERFLOW: &str = "~other";

/// A cheaply cloned label value: a static string (status codes, `~other`)
/// or one shared with the caps. Compared, ordered and hashed as its text.
#[derive(Clone, Debug)]
pub struct Label(LabelText);

#[derive(Clone, Debug)]
enum LabelText {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Label {
    pub(super) fn from_static(s: &'static str) -> Label {
        Label(LabelText::Static(s))
    }

    pub(super) fn shared(s: Arc<str>) -> Label {
        Label(LabelText::Shared(s))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            LabelText::Static(s) => s,
            LabelText::Shared(s) => s,
        }
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Label) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Label) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Label {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// A label whose values come from traffic and pass a cap; `Series` stands
/// for a whole label set folded by the per-family series cap. `as_str` is
/// the `label` value of `podpath_label_overflow_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capped {
    DnsName,
    Service,
    Namespace,
    Port,
    Address,
    Sni,
    Alpn,
    Pod,
    Name,
    Series,
}

impl Capped {
    pub fn as_str(self) -> &'static str {
        match self {
            Capped::DnsName => "dns_name",
            Capped::Service => "service",
            Capped::Namespace => "namespace",
            Capped::Port => "port",
            Capped::Address => "address",
            Capped::Sni => "sni",
            Capped::Alpn => "alpn",
            Capped::Pod => "pod",
            Capped::Name => "name",
            Capped::Series => "series",
        }
    }

    /// Whether the label holds a DNS name (redacted by `--dns-names`).
    pub fn is_name(self) -> bool {
        matches!(self, Capped::DnsName | Capped::Sni | Capped::Name)
    }
}

impl EncodeLabelValue for Capped {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// A family's name as registered and as its samples spell it (counters get
/// `_total` from the encoder): the second is the `metric` label of
/// `podpath_label_overflow_total` and keys the family's caps. Written once,
/// with [`counter_name!`] or [`gauge_name!`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    pub registered: &'static str,
    pub exposed: &'static str,
}

/// The [`Name`] of a counter family.
macro_rules! counter_name {
    ($name:literal) => {
        $crate::metrics::label::Name {
            registered: $name,
            exposed: concat!($name, "_total"),
        }
    };
}

/// The [`Name`] of a gauge family.
macro_rules! gauge_name {
    ($name:literal) => {
        $crate::metrics::label::Name {
            registered: $name,
            exposed: $name,
        }
    };
}

pub(crate) use {counter_name, gauge_name};

/// HTTP status codes as static label values: the 100–599 range is bounded,
/// anything else is `other`.
pub(super) fn status_label(status: u16) -> &'static str {
    static CODES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let codes = CODES.get_or_init(|| (100..600).map(|c: u16| c.to_string()).collect());
    match status.checked_sub(100).and_then(|i| codes.get(i as usize)) {
        Some(s) => s.as_str(),
        None => "other",
    }
}

/// gRPC status codes 0–16 as static label values; anything else is
/// `other`, no status `none`.
pub(super) fn grpc_status_label(status: Option<u32>) -> &'static str {
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    match status {
        None => "none",
        Some(c) => CODES.get(c as usize).copied().unwrap_or("other"),
    }
}
