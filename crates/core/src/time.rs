//! Packet time. The engine never reads the wall clock: every timeout, TTL and
//! latency is measured in the timestamps that came with the packets.

use std::fmt;

/// Nanoseconds since the Unix epoch, as stamped on a captured packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub fn from_secs_nanos(secs: u64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(nanos as u64),
        )
    }

    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs.max(0.0) * 1e9) as u64)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self - earlier` in seconds, zero when `earlier` is later (time went backwards).
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1e9
    }

    pub fn add_secs(self, secs: f64) -> Timestamp {
        Timestamp(self.0.saturating_add((secs.max(0.0) * 1e9) as u64))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}
