//! Capture health per interface: a failure is a state, not an exit.
//!
//! An interface that cannot be captured (no CAP_NET_RAW, no such interface,
//! interface down, ring refused, a socket error later) is `Failed` with a
//! [`FailReason`]; the source retries it with exponential backoff
//! ([`Backoff`]: 1 s, 2 s, 4 s … capped at 60 s) and keeps capturing on the
//! others. A cause is logged once when it starts (and again only when it
//! changes or after a recovery), never once per retry: a pod without the
//! capability would otherwise log every minute forever.
//!
//! Time here is the monotonic clock, passed in, so the state machine is a
//! pure function of its inputs.

use std::time::{Duration, Instant};

/// Why an interface is not captured. The label values are stable: alerts
/// and dashboards match on them (`podpath_capture_error_info{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// `socket(AF_PACKET)` refused: the process lacks CAP_NET_RAW.
    PermissionDenied,
    /// No interface of that name in the network namespace (never was, or it
    /// was deleted).
    InterfaceMissing,
    /// The interface exists but is down; the kernel resumes the socket when
    /// it comes back up.
    InterfaceDown,
    /// `--capture-mode ring` and the kernel refused the TPACKET_V3 ring.
    RingRefused,
    /// Any other error from the socket, when opened or later.
    SocketError,
}

impl FailReason {
    pub const ALL: [FailReason; 5] = [
        FailReason::PermissionDenied,
        FailReason::InterfaceMissing,
        FailReason::InterfaceDown,
        FailReason::RingRefused,
        FailReason::SocketError,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::PermissionDenied => "permission_denied",
            FailReason::InterfaceMissing => "interface_missing",
            FailReason::InterfaceDown => "interface_down",
            FailReason::RingRefused => "ring_refused",
            FailReason::SocketError => "socket_error",
        }
    }

    /// What the operator can do about it (logged with the cause).
    pub fn remedy(self) -> &'static str {
        match self {
            FailReason::PermissionDenied => {
                "as the cause names (docs/deploy.md#runtimes: the one setting per container \
                 runtime); podpath keeps serving and retries"
            }
            FailReason::InterfaceMissing => {
                "check --interface (PODPATH_INTERFACE); podpath captures on it once it appears"
            }
            FailReason::InterfaceDown => "none needed: capture resumes when the interface is up",
            FailReason::RingRefused => {
                "use --capture-mode auto (falls back to recvmsg) or a smaller --ring-size"
            }
            FailReason::SocketError => "podpath reopens the socket; see the error",
        }
    }
}

impl std::fmt::Display for FailReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Retry delays: `initial` doubled per failed attempt, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait after the `attempt`-th failure in a row (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// The current failure of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: FailReason,
    /// The error as the kernel or the lookup gave it, with its remedy.
    pub detail: String,
    /// Failed attempts in a row, the first included.
    pub attempts: u32,
    pub retry_at: Instant,
}

/// What a transition asks the caller to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// Nothing new: the same cause again (a failed retry).
    Quiet,
    /// A new cause (first failure, a different one, or failing again after
    /// a recovery): log it with its remedy.
    Failed,
    /// Capturing again after a failure.
    Recovered { after: FailReason, attempts: u32 },
}

/// One interface's capture state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    failure: Option<Failure>,
    backoff: Backoff,
}

impl Health {
    pub fn new(backoff: Backoff) -> Health {
        Health {
            failure: None,
            backoff,
        }
    }

    pub fn is_up(&self) -> bool {
        self.failure.is_none()
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    pub fn reason(&self) -> Option<FailReason> {
        self.failure.as_ref().map(|f| f.reason)
    }

    /// Capture works (opened, or a frame arrived).
    pub fn up(&mut self) -> Log {
        match self.failure.take() {
            Some(f) => Log::Recovered {
                after: f.reason,
                attempts: f.attempts,
            },
            None => Log::Quiet,
        }
    }

    /// An attempt failed (or a working capture broke) at `now`.
    pub fn failed(&mut self, reason: FailReason, detail: String, now: Instant) -> Log {
        let (attempts, log) = match &self.failure {
            Some(f) if f.reason == reason => (f.attempts.saturating_add(1), Log::Quiet),
            Some(f) => (f.attempts.saturating_add(1), Log::Failed),
            None => (1, Log::Failed),
        };
        let retry_at = now + self.backoff.delay(attempts - 1);
        self.failure = Some(Failure {
            reason,
            detail,
            attempts,
            retry_at,
        });
        log
    }

    /// Whether a retry is due at `now`.
    pub fn retry_due(&self, now: Instant) -> bool {
        self.failure.as_ref().is_some_and(|f| now >= f.retry_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_up_to_the_cap_and_never_overflows() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..9).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
        let tiny = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(250),
        };
        assert_eq!(tiny.delay(0), Duration::from_millis(100));
        assert_eq!(tiny.delay(1), Duration::from_millis(200));
        assert_eq!(tiny.delay(2), Duration::from_millis(250));
    }

    #[test]
    fn a_cause_is_logged_once_and_retried_with_backoff() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert!(h.is_up());
        assert!(!h.retry_due(t0 + 1000 * S));
        let denied = FailReason::PermissionDenied;
        assert_eq!(h.failed(denied, "EPERM".into(), t0), Log::Failed);
        assert_eq!(h.reason(), Some(denied));
        assert!(!h.retry_due(t0));
        assert!(h.retry_due(t0 + S));
        // Retries that fail the same way are quiet, each waiting twice as long.
        let mut now = t0 + S;
        for (attempt, wait) in [(2, 2), (3, 4), (4, 8), (5, 16), (6, 32), (7, 60), (8, 60)] {
            assert_eq!(h.failed(denied, "EPERM".into(), now), Log::Quiet);
            let f = h.failure().cloned().unwrap();
            assert_eq!((f.attempts, f.retry_at - now), (attempt, wait * S));
            assert!(!h.retry_due(now + wait * S - Duration::from_millis(1)));
            now += wait * S;
            assert!(h.retry_due(now));
        }
    }

    #[test]
    fn a_new_cause_is_logged_and_keeps_the_backoff() {
        let t0 = Instant::now();
        let mut h = Health::default();
        h.failed(FailReason::InterfaceDown, "down".into(), t0);
        h.failed(FailReason::InterfaceDown, "down".into(), t0 + S);
        assert_eq!(
            h.failed(FailReason::InterfaceMissing, "gone".into(), t0 + 3 * S),
            Log::Failed
        );
        let f = h.failure().unwrap();
        assert_eq!((f.reason, f.attempts), (FailReason::InterfaceMissing, 3));
        assert_eq!(f.detail, "gone");
        assert_eq!(f.retry_at, t0 + 7 * S);
    }

    #[test]
    fn recovery_is_logged_once_and_resets_the_backoff() {
        let t0 = Instant::now();
        let mut h = Health::default();
        assert_eq!(h.up(), Log::Quiet);
        h.failed(FailReason::SocketError, "EIO".into(), t0);
        h.failed(FailReason::SocketError, "EIO".into(), t0 + S);
        assert_eq!(
            h.up(),
            Log::Recovered {
                after: FailReason::SocketError,
                attempts: 2
            }
        );
        assert!(h.is_up());
        assert_eq!(h.up(), Log::Quiet);
        // Failing again after a recovery is a new outage: logged, 1 s first.
        assert_eq!(
            h.failed(FailReason::SocketError, "EIO".into(), t0 + 10 * S),
            Log::Failed
        );
        assert_eq!(h.failure().unwrap().retry_at, t0 + 11 * S);
    }

    #[test]
    fn reasons_have_distinct_stable_labels() {
        let labels: Vec<&str> = FailReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels,
            [
                "permission_denied",
                "interface_missing",
                "interface_down",
                "ring_refused",
                "socket_error"
            ]
        );
        assert!(FailReason::ALL.iter().all(|r| !r.remedy().is_empty()));
    }
}
