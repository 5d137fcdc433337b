//! The podpath container as `inject` writes it.
//!
//! It must stay identical to the container in `deploy/sidecar/` (the
//! kustomize components); a test compares the two.

use super::{InjectError, InjectOptions};

pub const CONTAINER_NAME: &str = "podpath";
pub const METRICS_PORT_NAME: &str = "podpath-metrics";
pub const DEFAULT_METRICS_PORT: u16 = 9809;
/// The image's name without registry or tag: what the kustomize patches in
/// deploy/sidecar/ write, so that an `images:` entry for it sets the image.
pub const IMAGE_NAME: &str = "podpath";
/// The default image reference, `IMAGE_NAME:<version>`; the kustomize
/// components' `images:` entry gives the same (a test checks both).
pub const DEFAULT_IMAGE: &str = concat!("podpath:", env!("CARGO_PKG_VERSION"));

pub(crate) fn validate(opts: &InjectOptions) -> Result<(), InjectError> {
    // The image is written as a plain YAML scalar, so it must not carry YAML
    // syntax; image references never need more than these characters.
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@');
    if opts.image.is_empty()
        || !opts.image.chars().all(allowed)
        || opts.image.starts_with(['-', ':', '@'])
    {
        return Err(InjectError::InvalidImage(opts.image.clone()));
    }
    if opts.metrics_port == 0 {
        return Err(InjectError::InvalidPort);
    }
    Ok(())
}

/// The container as one block sequence item whose `-` sits at column
/// `indent`; every line ends with `eol`.
pub(crate) fn container_lines(opts: &InjectOptions, indent: usize, eol: &str) -> String {
    let port = opts.metrics_port;
    let mut lines = vec![
        format!("- name: {CONTAINER_NAME}"),
        format!("  image: {}", opts.image),
        "  args: [\"run\"]".to_owned(),
    ];
    if opts.native_sidecar {
        lines.push("  restartPolicy: Always".to_owned());
    }
    lines.extend(
        [
            "  env:",
            "  - name: POD_NAME",
            "    valueFrom:",
            "      fieldRef:",
            "        fieldPath: metadata.name",
            "  - name: POD_NAMESPACE",
            "    valueFrom:",
            "      fieldRef:",
            "        fieldPath: metadata.namespace",
            "  - name: POD_IP",
            "    valueFrom:",
            "      fieldRef:",
            "        fieldPath: status.podIP",
            "  - name: POD_IPS",
            "    valueFrom:",
            "      fieldRef:",
            "        fieldPath: status.podIPs",
            "  - name: PODPATH_LOG_FORMAT",
            "    value: json",
            "  - name: PODPATH_LISTEN",
        ]
        .map(str::to_owned),
    );
    // Dual stack: probes and scrapes reach it on IPv4-only and IPv6-only clusters alike.
    lines.push(format!("    value: \"[::]:{port}\""));
    lines.extend(
        [
            "  ports:",
            &format!("  - name: {METRICS_PORT_NAME}"),
            &format!("    containerPort: {port}"),
            "    protocol: TCP",
            "  livenessProbe:",
            "    httpGet:",
            "      path: /healthz",
            &format!("      port: {METRICS_PORT_NAME}"),
            "    periodSeconds: 10",
            "    failureThreshold: 3",
            // From the measurements (docs/memory.md): ~2-3 µs of CPU per
            // packet, steady RSS ~22 MiB; no CPU limit (throttling in a burst
            // is when the kernel drops); the memory limit sizes the tables
            // (three quarters of it is their budget).
            "  resources:",
            "    requests:",
            "      cpu: 50m",
            "      memory: 32Mi",
            "    limits:",
            "      memory: 128Mi",
            "  securityContext:",
            "    runAsNonRoot: true",
            "    runAsUser: 65532",
            "    runAsGroup: 65532",
            "    readOnlyRootFilesystem: true",
            "    allowPrivilegeEscalation: false",
            "    capabilities:",
            "      drop: [\"ALL\"]",
            "      add: [\"NET_RAW\"]",
            "    seccompProfile:",
            "      type: RuntimeDefault",
        ]
        .map(str::to_owned),
    );
    let mut out = String::new();
    for line in lines {
        out.push_str(&" ".repeat(indent));
        out.push_str(&line);
        out.push_str(eol);
    }
    out
}

/// The container `container_lines` writes, as JSON: what `podpath webhook`
/// adds to a pod. Derived from the same lines, so `inject`, the webhook and
/// (by the kustomize test) `deploy/sidecar/` add one and the same container.
pub fn container_json(opts: &InjectOptions) -> Result<serde_json::Value, InjectError> {
    validate(opts)?;
    match super::json::yaml_to_json(&container_lines(opts, 0, "\n"))? {
        serde_json::Value::Array(items) if items.len() == 1 => {
            Ok(items.into_iter().next().unwrap_or_default())
        }
        other => Err(InjectError::Yaml {
            line: 1,
            column: 1,
            message: format!("the sidecar's lines are not one sequence item: {other}"),
        }),
    }
}
