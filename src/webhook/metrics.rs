//! The webhook's metrics, served on its plain-HTTP health port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::Outcome;
use crate::metrics::ProcessCollector;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Well under the webhook configuration's `timeoutSeconds` (5 s), where a
/// review that slow would already have let the pod through uninjected.
const DURATION_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
];

pub struct WebhookMetrics {
    registry: Registry,
    pub reviews: Family<OutcomeLabels, Counter>,
    pub review_duration: Histogram,
    pub tls_reloads: Family<ResultLabels, Counter>,
}

impl WebhookMetrics {
    pub fn new() -> WebhookMetrics {
        let mut registry = Registry::default();
        let reviews = Family::<OutcomeLabels, Counter>::default();
        // Every outcome exists from the start, so rate() and absent() work
        // before the first pod of a kind arrives.
        for outcome in Outcome::ALL {
            let _ = reviews.get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            });
        }
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        for result in ["ok", "error"] {
            let _ = tls_reloads.get_or_create(&ResultLabels { result });
        }
        let review_duration = Histogram::new(DURATION_BUCKETS);
        registry.register(
            "podpath_webhook_reviews",
            "Admission reviews answered, by outcome: injected, or why not (already_injected, opted_out, host_network, own_pod, ignored, invalid_pod, bad_request)",
            reviews.clone(),
        );
        registry.register(
            "podpath_webhook_review_duration_seconds",
            "Time from a review's complete body to its answer",
            review_duration.clone(),
        );
        registry.register(
            "podpath_webhook_tls_reloads",
            "Certificate and key reloads after the files changed, by result (error: unreadable, or key and certificate do not match; the previous pair stays in use)",
            tls_reloads.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        WebhookMetrics {
            registry,
            reviews,
            review_duration,
            tls_reloads,
        }
    }

    pub fn count(&self, outcome: Outcome) {
        self.reviews
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            out.push_str(&format!("# encoding error: {e}\n"));
        }
        out
    }
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        WebhookMetrics::new()
    }
}
