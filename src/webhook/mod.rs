//! `podpath webhook`: a mutating admission webhook that adds the podpath
//! sidecar to pods at creation, for workloads whose manifests the user does
//! not own (Helm charts, operators, CI pipelines).
//!
//! Wire format (admission.k8s.io/v1): the API server POSTs
//! `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":…,"kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":<Pod>,…}}`
//! and expects
//! `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":<same>,"allowed":true,"patchType":"JSONPatch","patch":<base64 of a JSON Patch (RFC 6902)>}}`.
//!
//! The webhook is fail-open: every review it can read is answered
//! `allowed: true`, with a patch or without one (the reason is logged and
//! counted). Only a body that is not an AdmissionReview gets a 400, and the
//! `failurePolicy: Ignore` of the webhook configuration lets the pod through
//! then too. The container added is `inject`'s ([`crate::inject::container_json`]).

pub mod metrics;
#[cfg(feature = "webhook")]
pub mod server;
#[cfg(feature = "webhook")]
pub mod tls;

#[cfg(test)]
mod tests;

use base64::Engine as _;
use serde_json::{json, Value};
use thiserror::Error;

use crate::inject::{container_json, InjectError, InjectOptions, CONTAINER_NAME};
pub use crate::inject::{INJECT_KEY, VERSION_ANNOTATION};

pub const OPT_OUT_VALUE: &str = "disabled";
/// `app.kubernetes.io/name` of the webhook's own pods, never injected.
pub const OWN_NAME: &str = "podpath-webhook";
/// [`VERSION_ANNOTATION`] as a JSON Pointer token (`/` is written `~1`).
const VERSION_ANNOTATION_TOKEN: &str = "podpath.io~1injected-version";

const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// What the webhook did with one review; the `outcome` label of
/// `podpath_webhook_reviews_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Injected,
    AlreadyInjected,
    OptedOut,
    HostNetwork,
    OwnPod,
    /// Not a Pod CREATE (the webhook configuration should not send these).
    Ignored,
    /// A Pod whose spec cannot take the sidecar (no containers, or
    /// initContainers that is not a list); the API server rejects most of
    /// these itself.
    InvalidPod,
    /// Not an AdmissionReview, or larger than the body limit: HTTP 400/413.
    BadRequest,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Injected,
        Outcome::AlreadyInjected,
        Outcome::OptedOut,
        Outcome::HostNetwork,
        Outcome::OwnPod,
        Outcome::Ignored,
        Outcome::InvalidPod,
        Outcome::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Injected => "injected",
            Outcome::AlreadyInjected => "already_injected",
            Outcome::OptedOut => "opted_out",
            Outcome::HostNetwork => "host_network",
            Outcome::OwnPod => "own_pod",
            Outcome::Ignored => "ignored",
            Outcome::InvalidPod => "invalid_pod",
            Outcome::BadRequest => "bad_request",
        }
    }

    /// Why nothing was injected, for the log and the response's warnings.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Injected => "sidecar added",
            Outcome::AlreadyInjected => "the pod already has a container named podpath",
            Outcome::OptedOut => "the pod carries podpath.io/inject: disabled",
            Outcome::HostNetwork => {
                "the pod uses hostNetwork: podpath would capture the node's traffic"
            }
            Outcome::OwnPod => "the pod is podpath's own webhook",
            Outcome::Ignored => "not a Pod CREATE",
            Outcome::InvalidPod => {
                "the pod spec has no containers list or a malformed initContainers"
            }
            Outcome::BadRequest => "not an AdmissionReview",
        }
    }
}

/// A request body that cannot be answered at all (no `request.uid` to echo).
#[derive(Debug, Error)]
pub enum ReviewError {
    #[error("the body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error(
        "not an {REVIEW_API_VERSION} AdmissionReview (apiVersion {api_version:?}, kind {kind:?})"
    )]
    NotAdmissionReview { api_version: String, kind: String },
    #[error("the AdmissionReview has no request.uid")]
    NoUid,
}

/// The answer to one review.
#[derive(Debug)]
pub struct Answer {
    /// The AdmissionReview response, as the API server wants it.
    pub body: Value,
    pub outcome: Outcome,
    /// `namespace/name` (or `namespace/generateName*` before the API server
    /// has named the pod), for the log.
    pub pod: String,
    pub uid: String,
}

/// The reviewer: the sidecar container is built once, at start.
#[derive(Debug, Clone)]
pub struct Webhook {
    container: Value,
    native_sidecar: bool,
}

impl Webhook {
    pub fn new(opts: &InjectOptions) -> Result<Webhook, InjectError> {
        Ok(Webhook {
            container: container_json(opts)?,
            native_sidecar: opts.native_sidecar,
        })
    }

    /// Answers one AdmissionReview body.
    pub fn review(&self, body: &[u8]) -> Result<Answer, ReviewError> {
        let review: Value = serde_json::from_slice(body).map_err(ReviewError::NotJson)?;
        let api_version = review.get("apiVersion").and_then(Value::as_str);
        let kind = review.get("kind").and_then(Value::as_str);
        if api_version != Some(REVIEW_API_VERSION) || kind != Some("AdmissionReview") {
            return Err(ReviewError::NotAdmissionReview {
                api_version: api_version.unwrap_or_default().to_owned(),
                kind: kind.unwrap_or_default().to_owned(),
            });
        }
        let request = review.get("request").unwrap_or(&Value::Null);
        let uid = request
            .get("uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or(ReviewError::NoUid)?;
        let object = request.get("object").unwrap_or(&Value::Null);
        let pod = pod_name(request, object);
        let is_pod_create = request.get("operation").and_then(Value::as_str) == Some("CREATE")
            && request.pointer("/kind/kind").and_then(Value::as_str) == Some("Pod")
            && request
                .pointer("/kind/group")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty();
        let (outcome, patch) = if is_pod_create {
            match self.patch(object) {
                Ok(ops) => (Outcome::Injected, Some(ops)),
                Err(skip) => (skip, None),
            }
        } else {
            (Outcome::Ignored, None)
        };
        let mut response = json!({ "uid": uid, "allowed": true });
        if let Some(ops) = patch {
            let text = serde_json::to_vec(&ops).unwrap_or_default();
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        } else if matches!(outcome, Outcome::HostNetwork | Outcome::InvalidPod) {
            // Shown by kubectl to whoever created the pod: these are the
            // skips a user who labelled the namespace would not expect.
            response["warnings"] = json!([format!("podpath not injected: {}", outcome.reason())]);
        }
        Ok(Answer {
            body: json!({
                "apiVersion": REVIEW_API_VERSION,
                "kind": "AdmissionReview",
                "response": response,
            }),
            outcome,
            pod,
            uid: uid.to_owned(),
        })
    }

    /// The JSON Patch operations that add the sidecar to `pod`, or why none
    /// are needed. Injecting into a pod this patch produced yields no patch
    /// (`reinvocationPolicy: IfNeeded` may call the webhook twice).
    pub fn patch(&self, pod: &Value) -> Result<Vec<Value>, Outcome> {
        let meta = pod.get("metadata");
        let label = |key: &str| meta.and_then(|m| m.get("labels")?.get(key)?.as_str());
        let annotation = |key: &str| meta.and_then(|m| m.get("annotations")?.get(key)?.as_str());
        let spec = pod
            .get("spec")
            .filter(|s| s.is_object())
            .ok_or(Outcome::InvalidPod)?;
        let named_podpath = |list: &str| {
            spec.get(list).and_then(Value::as_array).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.get("name").and_then(Value::as_str) == Some(CONTAINER_NAME))
            })
        };
        if named_podpath("initContainers") || named_podpath("containers") {
            return Err(Outcome::AlreadyInjected);
        }
        if label("app.kubernetes.io/name") == Some(OWN_NAME) {
            return Err(Outcome::OwnPod);
        }
        if label(INJECT_KEY) == Some(OPT_OUT_VALUE) || annotation(INJECT_KEY) == Some(OPT_OUT_VALUE)
        {
            return Err(Outcome::OptedOut);
        }
        if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            return Err(Outcome::HostNetwork);
        }
        if spec
            .get("containers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            return Err(Outcome::InvalidPod);
        }
        let op = if self.native_sidecar {
            // First among the init containers, as `inject` puts it, so
            // podpath already captures while the others run.
            match spec.get("initContainers") {
                None | Some(Value::Null) => {
                    json!({ "op": "add", "path": "/spec/initContainers", "value": [self.container] })
                }
                Some(Value::Array(_)) => {
                    json!({ "op": "add", "path": "/spec/initContainers/0", "value": self.container })
                }
                Some(_) => return Err(Outcome::InvalidPod),
            }
        } else {
            json!({ "op": "add", "path": "/spec/containers/-", "value": self.container })
        };
        let version = env!("CARGO_PKG_VERSION");
        let record = match meta.and_then(|m| m.get("annotations")) {
            Some(Value::Object(_)) => json!({
                "op": "add",
                "path": format!("/metadata/annotations/{VERSION_ANNOTATION_TOKEN}"),
                "value": version,
            }),
            _ if meta.is_some_and(Value::is_object) => json!({
                "op": "add",
                "path": "/metadata/annotations",
                "value": { VERSION_ANNOTATION: version },
            }),
            _ => json!({
                "op": "add",
                "path": "/metadata",
                "value": { "annotations": { VERSION_ANNOTATION: version } },
            }),
        };
        Ok(vec![op, record])
    }
}

/// `namespace/name`, or `namespace/generateName*` for pods that controllers
/// create (they carry only `generateName` at admission).
fn pod_name(request: &Value, object: &Value) -> String {
    let ns = request
        .get("namespace")
        .or_else(|| object.pointer("/metadata/namespace"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name")?.as_str())
        .filter(|n| !n.is_empty());
    match name {
        Some(name) => format!("{ns}/{name}"),
        None => {
            let generate = meta
                .and_then(|m| m.get("generateName")?.as_str())
                .unwrap_or("");
            format!("{ns}/{generate}*")
        }
    }
}
