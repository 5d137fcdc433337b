//! `podpath inject FILE|-`: Kubernetes YAML in, the same YAML with the
//! podpath sidecar added to every pod template out; on standard error, what
//! was done to each workload and why the others were skipped.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use anyhow::{Context as _, Result};
use clap::Args;

use crate::inject::{inject_report, Action, InjectOptions, Outcome, Selection, Skip};

#[derive(Args, Debug)]
pub struct InjectArgs {
    /// A YAML file (multi-document, or a List), or `-` for standard input.
    pub file: String,
    #[command(flatten)]
    pub sidecar: SidecarArgs,
    /// Inject only workloads labelled (or annotated) podpath.io/inject=enabled, as the kustomize components do. Without it every workload is injected unless opted out with podpath.io/inject=disabled.
    #[arg(long)]
    pub opt_in: bool,
}

/// The sidecar's settings, shared by `inject` and `webhook`.
#[derive(Args, Debug)]
pub struct SidecarArgs {
    /// Add podpath as a native sidecar: an init container with `restartPolicy: Always` (Kubernetes >= 1.29). The default.
    #[arg(long, conflicts_with = "classic")]
    pub native_sidecar: bool,
    /// Add podpath as a plain container, for clusters older than 1.29.
    #[arg(long, env = "PODPATH_CLASSIC")]
    pub classic: bool,
    /// The podpath image, e.g. registry.example/podpath:0.1.0 or …@sha256:…; the default is the
    /// kustomize components' default too (docs/deploy.md#image).
    #[arg(long, env = "PODPATH_IMAGE", default_value = crate::inject::DEFAULT_IMAGE)]
    pub image: String,
    /// Port of podpath's /metrics, /healthz and /readyz in the pod.
    #[arg(long, env = "PODPATH_METRICS_PORT", default_value_t = crate::inject::DEFAULT_METRICS_PORT)]
    pub metrics_port: u16,
}

impl SidecarArgs {
    pub fn options(&self) -> InjectOptions {
        InjectOptions {
            image: self.image.clone(),
            native_sidecar: !self.classic,
            metrics_port: self.metrics_port,
        }
    }
}

pub fn run(args: InjectArgs) -> Result<i32> {
    let mut input = String::new();
    if args.file == "-" {
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading standard input")?;
    } else {
        input = std::fs::read_to_string(&args.file)
            .with_context(|| format!("{}: cannot read", args.file))?;
    }
    let opts = args.sidecar.options();
    let selection = if args.opt_in {
        Selection::OptedIn
    } else {
        Selection::AllButOptedOut
    };
    let injection = inject_report(&input, &opts, selection)
        .with_context(|| format!("{}: cannot inject", args.file))?;
    std::io::stdout()
        .lock()
        .write_all(injection.output.as_bytes())?;
    let mut stderr = std::io::stderr().lock();
    for line in report(&injection.outcomes) {
        writeln!(stderr, "podpath inject: {line}")?;
    }
    Ok(0)
}

/// One line per workload, then a summary that also counts the objects
/// without a pod template (named by kind, not one by one: an install
/// manifest has dozens).
fn report(outcomes: &[Outcome]) -> Vec<String> {
    let mut lines = Vec::new();
    let (mut injected, mut upgraded, mut skipped) = (0, 0, 0);
    let mut others: BTreeMap<&str, usize> = BTreeMap::new();
    for outcome in outcomes {
        match &outcome.action {
            Action::Skipped(Skip::NoPodTemplate) => {
                *others.entry(outcome.kind.as_str()).or_default() += 1;
                continue;
            }
            Action::Injected => injected += 1,
            Action::Upgraded { .. } => upgraded += 1,
            Action::Skipped(_) => skipped += 1,
        }
        lines.push(outcome.to_string());
    }
    let mut summary = format!("{injected} injected, {upgraded} upgraded, {skipped} skipped");
    if !others.is_empty() {
        let kinds: Vec<String> = others
            .iter()
            .map(|(kind, n)| {
                let kind = if kind.is_empty() { "(no kind)" } else { kind };
                format!("{kind} ×{n}")
            })
            .collect();
        let total: usize = others.values().sum();
        let objects = if total == 1 { "object" } else { "objects" };
        summary.push_str(&format!(
            "; {total} {objects} without a pod template left as they are ({})",
            kinds.join(", ")
        ));
    }
    lines.push(summary);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::inject_report;

    #[test]
    fn report_lists_workloads_and_counts_the_rest_by_kind() {
        let input = include_str!("../../ci/testdata/inject/ingress-nginx.yaml");
        let injection = inject_report(input, &InjectOptions::default(), Selection::AllButOptedOut)
            .expect("injects");
        let lines = report(&injection.outcomes);
        assert_eq!(
            lines,
            [
                "injected Deployment ingress-nginx/ingress-nginx-controller (line 138)",
                "injected Job ingress-nginx/ingress-nginx-admission-create (line 250)",
                "injected Job ingress-nginx/ingress-nginx-admission-patch (line 297)",
                "3 injected, 0 upgraded, 0 skipped; 9 objects without a pod template left as \
                 they are (ConfigMap ×1, IngressClass ×1, Namespace ×1, Role ×1, Service ×2, \
                 ServiceAccount ×2, ValidatingWebhookConfiguration ×1)",
            ]
        );
        let node_exporter = include_str!("../../ci/testdata/inject/node-exporter.yaml");
        let injection = inject_report(
            node_exporter,
            &InjectOptions::default(),
            Selection::AllButOptedOut,
        )
        .expect("injects");
        assert_eq!(
            report(&injection.outcomes),
            [
                "skipped DaemonSet monitoring/node-exporter (line 4): hostNetwork is true: \
                 podpath would capture the node's traffic, not the pod's",
                "0 injected, 0 upgraded, 1 skipped",
            ]
        );
    }
}
