//! The capture sockets (per interface: packets, kernel drops, up, why not)
//! and the frames that could not be decoded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{add, ReasonLabels};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InterfaceLabels {
    pub interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CaptureErrorLabels {
    pub interface: String,
    /// `crate::capture::health::FailReason::as_str`.
    pub reason: &'static str,
}

#[derive(Clone, Debug)]
pub struct CaptureMetrics {
    pub packets: Family<InterfaceLabels, Counter>,
    pub drops: Family<InterfaceLabels, Counter>,
    /// Per interface; interfaces are chosen at start, so the series are few.
    pub up: Family<InterfaceLabels, Gauge>,
    /// One series per failing interface, removed when it captures again.
    pub error_info: Family<CaptureErrorLabels, Gauge>,
    pub decode_skipped: Family<ReasonLabels, Counter>,
}

impl CaptureMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        CaptureMetrics {
            packets: add(
                reg,
                "podpath_capture_packets",
                "Packets the kernel passed to podpath's capture socket, per interface",
                Family::default(),
            ),
            drops: add(
                reg,
                "podpath_capture_drops",
                "Packets the kernel dropped because podpath's capture socket buffer was full, per interface",
                Family::default(),
            ),
            up: add(
                reg,
                "podpath_capture_up",
                "1 while podpath captures on the interface, 0 while it cannot (podpath_capture_error_info says why; it retries with backoff and keeps serving)",
                Family::default(),
            ),
            error_info: add(
                reg,
                "podpath_capture_error_info",
                "Why capture on an interface is down, while it is: reason permission_denied (no CAP_NET_RAW), interface_missing, interface_down, ring_refused (--capture-mode ring) or socket_error",
                Family::default(),
            ),
            decode_skipped: add(
                reg,
                "podpath_decode_skipped",
                "Frames not decoded, by reason (non-IP, truncated, malformed, fragment, unsupported link type)",
                Family::default(),
            ),
        }
    }
}
