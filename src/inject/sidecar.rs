//! The podpath container as `inject` writes it.
//!
//! It must stay identical to the container in `deploy/sidecar/` (the
//! kustomize components); a test compares the two.

use super::{InjectError, InjectOptions};

pub const CONTAINER_NAME: &str = "podpath";
pub const METRICS_PORT_NAME: &str = "podpath-metrics";
pub const DEFAULT_METRICS_PORT: u16 = 9809;
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
            "  resources:",
            "    requests:",
            "      cpu: 10m",
            "      memory: 32Mi",
            "    limits:",
            "      cpu: 200m",
            "      memory: 64Mi",
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
